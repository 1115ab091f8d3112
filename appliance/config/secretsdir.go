package config

import (
	"encoding/base64"
	"errors"
	"io/fs"
	"path"
	"strings"
)

// SecretsDir is the folder, at the top of a configuration folder, that
// holds Secrets as plain files, in the layout in which Kubernetes mounts a
// Secret: secrets/NAME/KEY is data key KEY of Secret NAME. A folder with
// both tls.crt and tls.key is a kubernetes.io/tls Secret, any other an
// Opaque one. So a bundle carries certificates, private keys and password
// files as they are, without base64 in YAML.
//
// Load reads it beside the YAML documents (YAML files inside it are not
// documents); hidden files (".DS_Store", "..data") are skipped. Such a
// Secret is validated like an inline one, and a Secret document with the
// same name is an error.
const SecretsDir = "secrets"

// isSecretsDir reports whether name is the secrets folder of root.
func isSecretsDir(root, name string) bool { return name == path.Join(root, SecretsDir) }

// loadSecretsDir adds the Secrets in root's secrets folder to s. Secret
// documents must have been added already, to find duplicates.
func loadSecretsDir(fsys fs.FS, root string, s *Set, rp *report) {
	if fi, err := fs.Stat(fsys, root); err != nil || !fi.IsDir() {
		return
	}
	dir := path.Join(root, SecretsDir)
	fi, err := fs.Stat(fsys, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil:
		rp.errs = append(rp.errs, &Error{File: dir, Msg: err.Error()})
		return
	case !fi.IsDir():
		rp.errs = append(rp.errs, &Error{File: dir, Msg: "must be a folder of Secret folders (secrets/NAME/KEY)"})
		return
	}
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		rp.errs = append(rp.errs, &Error{File: dir, Msg: err.Error()})
		return
	}
	for _, e := range ents {
		name := path.Join(dir, e.Name())
		switch {
		case strings.HasPrefix(e.Name(), "."):
		case !e.IsDir():
			rp.errs = append(rp.errs, &Error{File: name, Msg: "a file directly in " + SecretsDir + "/ is not read: " +
				"put it in " + SecretsDir + "/NAME/ to make it a key of Secret NAME, and documents outside " + SecretsDir + "/"})
		default:
			if sec := readSecretDir(fsys, name, rp); sec != nil {
				addSecret(s, sec, rp)
			}
		}
	}
}

// readSecretDir reads one secrets/NAME folder into a Secret.
func readSecretDir(fsys fs.FS, dir string, rp *report) *Secret {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		rp.errs = append(rp.errs, &Error{File: dir, Msg: err.Error()})
		return nil
	}
	sec := &Secret{Data: map[string]string{}}
	sec.APIVersion, sec.Kind, sec.Metadata.Name = APIVersionCore, "Secret", path.Base(dir)
	sec.src = source{file: dir}
	n := len(rp.errs)
	for _, e := range ents {
		name := path.Join(dir, e.Name())
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if e.IsDir() {
			rp.errs = append(rp.errs, &Error{File: name, Kind: "Secret", Name: sec.Metadata.Name,
				Msg: "a Secret folder holds only files, one per key (" + SecretsDir + "/NAME/KEY)"})
			continue
		}
		data, err := readFile(fsys, name)
		if err != nil {
			rp.errs = append(rp.errs, &Error{File: name, Kind: "Secret", Name: sec.Metadata.Name, Msg: err.Error()})
			continue
		}
		sec.Data[e.Name()] = base64.StdEncoding.EncodeToString(data)
	}
	if len(rp.errs) > n {
		return nil
	}
	_, crt := sec.Data["tls.crt"]
	_, key := sec.Data["tls.key"]
	if crt && key {
		sec.Type = SecretTypeTLS
	}
	sec.setDefaults()
	sec.decode(rp)
	return sec
}

// addSecret adds sec to s unless a Secret of that name is there already.
func addSecret(s *Set, sec *Secret, rp *report) {
	if prev := s.Secret(sec.Metadata.Name); prev != nil {
		rp.add(sec, "", "defined twice: by the folder %s and by the document%s", sec.src.file, where(prev))
		return
	}
	s.Add(sec)
}
