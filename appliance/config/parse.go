package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// kindInfo says which apiVersions serve a kind and how to make one.
type kindInfo struct {
	apiVersions []string
	new         func() Resource
	ignoreSpec  []string // spec fields AIO carries that mean nothing here
}

var (
	aioVersions          = []string{APIVersionAIO, APIVersionAIOBeta}
	connectivityVersions = []string{APIVersionConnectivity, APIVersionConnectivityBeta}
)

var kinds = map[string]kindInfo{
	"Broker":               {aioVersions, func() Resource { return new(Broker) }, nil}, // see aioIgnored
	"BrokerListener":       {aioVersions, func() Resource { return new(BrokerListener) }, []string{"brokerRef"}},
	"BrokerAuthentication": {aioVersions, func() Resource { return new(BrokerAuthentication) }, []string{"brokerRef"}},
	"BrokerAuthorization":  {aioVersions, func() Resource { return new(BrokerAuthorization) }, []string{"brokerRef"}},
	// profileRef names the DataflowProfile (a cluster's dataflow pods) a
	// Dataflow runs in; like brokerRef it means nothing on one device.
	"DataflowEndpoint": {connectivityVersions, func() Resource { return new(DataflowEndpoint) }, nil},
	"Dataflow":         {connectivityVersions, func() Resource { return new(Dataflow) }, []string{"profileRef"}},
	"Issuer":           {[]string{APIVersionCertManager}, func() Resource { return new(Issuer) }, nil},
	"ClusterIssuer":    {[]string{APIVersionCertManager}, func() Resource { return new(Issuer) }, nil},
	"Certificate":      {[]string{APIVersionCertManager}, func() Resource { return new(Certificate) }, nil},
	"Secret":           {[]string{APIVersionCore}, func() Resource { return new(Secret) }, nil},
	"ConfigMap":        {[]string{APIVersionCore}, func() Resource { return new(ConfigMap) }, nil},
	"Device":           {[]string{APIVersionAppliance}, func() Resource { return new(Device) }, nil},
}

// ignoredMeta are metadata fields the API server sets; a manifest exported
// with kubectl carries them, and they are dropped.
var ignoredMeta = []string{
	"generateName", "selfLink", "uid", "resourceVersion", "generation",
	"creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds",
	"ownerReferences", "finalizers", "managedFields",
}

// LoadPath loads the configuration in path: one YAML file, or a folder
// whose *.yaml and *.yml files (in subfolders too, hidden ones skipped) are
// read in lexical order, and whose secrets folder holds Secrets as files
// (see SecretsDir). Error messages name files as path/name.
func LoadPath(p string) (*Set, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if !fi.IsDir() {
		return Load(os.DirFS(filepath.Dir(p)), filepath.Base(p))
	}
	s, err := Load(os.DirFS(p), ".")
	var es Errors
	if errors.As(err, &es) {
		for _, e := range es {
			if e.File != "" {
				e.File = filepath.Join(p, filepath.FromSlash(e.File))
			}
		}
	}
	return s, err
}

// Load reads the YAML files at paths in fsys (each a file or a folder, as
// in LoadPath; no paths means "."), parses every document and returns them
// as a Set, with the appliance's equivalents of AIO's built-in resources
// the documents refer to but do not define (BuiltinIssuer,
// BuiltinAuthentication). It does not validate: call Set.Validate. On parse errors the
// returned Set still holds the documents that parsed, so a linter can
// validate them too, and the error is an Errors.
func Load(fsys fs.FS, paths ...string) (*Set, error) {
	if len(paths) == 0 {
		paths = []string{"."}
	}
	var files []string
	for _, p := range paths {
		err := fs.WalkDir(fsys, p, func(name string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			hidden := name != p && strings.HasPrefix(d.Name(), ".")
			switch {
			case d.IsDir() && (hidden || isSecretsDir(p, name)):
				return fs.SkipDir
			case d.IsDir() || hidden:
				return nil
			case name == p || isYAML(name):
				files = append(files, name)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	s := new(Set)
	var rp report
	for _, name := range files {
		data, err := readFile(fsys, name)
		if err != nil {
			rp.errs = append(rp.errs, &Error{File: name, Msg: err.Error()})
			continue
		}
		rs, err := Parse(name, data)
		s.Add(rs...)
		var es Errors
		if errors.As(err, &es) {
			rp.errs = append(rp.errs, es...)
		}
	}
	for _, p := range paths {
		loadSecretsDir(fsys, p, s, &rp)
	}
	if len(s.All()) == 0 && len(rp.errs) == 0 {
		rp.errs = append(rp.errs, &Error{File: strings.Join(paths, ", "), Msg: "no configuration documents found"})
	}
	s.addBuiltins()
	return s, rp.err()
}

func isYAML(name string) bool {
	ext := path.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

func readFile(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	return data, nil
}

// Parse parses the YAML documents in data (separated by "---"; empty
// documents are skipped). name is used in error messages. Every document
// must be a known kind with a served apiVersion and only known fields.
// Defaults are filled in. All errors are returned, as Errors. A file past
// one of the limits (MaxFileSize, MaxDepth, ...) is rejected before any of
// it is parsed.
func Parse(name string, data []byte) ([]Resource, error) {
	var rp report
	var out []Resource
	if len(data) > MaxFileSize {
		rp.errs = append(rp.errs, &Error{File: name, Msg: fmt.Sprintf("larger than %d bytes", MaxFileSize)})
		return nil, rp.err()
	}
	if n, line := countTokens(data, MaxTokens); n > MaxTokens {
		rp.errs = append(rp.errs, &Error{File: name, Line: line, Msg: fmt.Sprintf("more than %d YAML tokens (keys, values, punctuation)", MaxTokens)})
		return nil, rp.err()
	}
	docs := splitDocuments(data)
	if len(docs) > MaxDocuments {
		rp.errs = append(rp.errs, &Error{File: name, Line: docs[MaxDocuments].offset + 1,
			Msg: fmt.Sprintf("more than %d documents", MaxDocuments)})
		return nil, rp.err()
	}
	var st scanState
	for _, d := range docs {
		tokens, err := scanDocument(d.data, &st)
		var le *limitError
		if errors.As(err, &le) {
			// Past a limit, later documents are not read either.
			rp.errs = append(rp.errs, &Error{File: name, Line: le.line + d.offset, Msg: le.msg})
			break
		}
		f, err := parser.Parse(tokens, 0)
		if err != nil {
			rp.errs = append(rp.errs, yamlError(name, d.offset, nil, err))
			continue
		}
		for _, doc := range f.Docs {
			if doc == nil || doc.Body == nil {
				continue
			}
			if r := parseDocument(name, d.offset, doc.Body, &rp); r != nil {
				out = append(out, r)
			}
		}
	}
	return out, rp.err()
}

type document struct {
	data   []byte
	offset int // lines before data in the file
}

// splitDocuments cuts data at lines starting with the "---" marker. The
// YAML spec forbids such a line inside any scalar, and parsing documents
// one by one keeps the YAML library from losing documents after an empty
// one ("---\n---\n").
func splitDocuments(data []byte) []document {
	var docs []document
	start, startLine, line := 0, 0, 0
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if end >= 0 {
			next = i + end + 1
		}
		l := data[i:next]
		if i > start && bytes.HasPrefix(l, []byte("---")) &&
			(len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\n' || l[3] == '\r') {
			docs = append(docs, document{data[start:i], startLine})
			start, startLine = i, line
		}
		i, line = next, line+1
	}
	return append(docs, document{data[start:], startLine})
}

// parseDocument decodes one document strictly into its kind's type.
// brokerRefWarning warns about a spec.brokerRef other than "default": AIO's
// one Broker is always named default, and so is the appliance's; the
// resource applies to it all the same.
func brokerRefWarning(hdr *Object, spec ast.Node, ignored []string) Errors {
	if !slices.Contains(ignored, "brokerRef") {
		return nil
	}
	ref := scalar(spec, "brokerRef")
	if ref == "" || ref == "default" {
		return nil
	}
	var rp report
	rp.add(hdr, "spec.brokerRef", "%q names no broker: the appliance has one, AIO's \"default\", and this resource applies to it", ref)
	return rp.errs
}

func parseDocument(file string, offset int, body ast.Node, rp *report) Resource {
	hdr := &Object{src: source{file: file, offset: offset, node: body}}
	if _, ok := unwrap(body).(*ast.MappingNode); !ok {
		rp.add(hdr, "", "a document must be a mapping with apiVersion, kind, metadata")
		return nil
	}
	hdr.APIVersion = scalar(body, "apiVersion")
	hdr.Kind = scalar(body, "kind")
	hdr.Metadata.Name = scalar(child1(body, "metadata"), "name")
	info, ok := kinds[hdr.Kind]
	switch {
	case hdr.Kind == "":
		rp.add(hdr, "kind", "required")
		return nil
	case !ok:
		k := hdr.Kind
		hdr.Kind = ""
		rp.add(hdr, "kind", "unknown kind %q (want one of %s)", k, strings.Join(kindNames(), ", "))
		return nil
	case !slices.Contains(info.apiVersions, hdr.APIVersion):
		rp.add(hdr, "apiVersion", "%q does not serve %s (want %s)", hdr.APIVersion, hdr.Kind, strings.Join(info.apiVersions, " or "))
		return nil
	}
	removeKeys(body, "status")
	removeKeys(child1(body, "metadata"), ignoredMeta...)
	refWarning := brokerRefWarning(hdr, child1(body, "spec"), info.ignoreSpec)
	removeKeys(child1(body, "spec"), info.ignoreSpec...)
	warnings := append(ignoredAIOFields(hdr), refWarning...)
	r := info.new()
	if unk := unknownFields(body, reflect.TypeOf(r), "", nil); len(unk) > 0 {
		// Every unknown field of the document at once, then what the
		// decoder finds besides (a wrong type).
		for _, u := range unk {
			if msg := aioUnsupportedMsg(hdr.Kind, u.path); msg != "" {
				rp.add(hdr, u.path, "%s", msg)
			} else if s := suggest(u.key, u.known); s != "" {
				rp.add(hdr, u.path, "unknown field (did you mean %q?)", s)
			} else {
				rp.add(hdr, u.path, "unknown field")
			}
		}
		if err := yaml.NodeToValue(body, r); err != nil {
			rp.errs = append(rp.errs, yamlError(file, offset, hdr, err))
		}
		return nil
	}
	if err := yaml.NodeToValue(body, r, yaml.DisallowUnknownField()); err != nil {
		rp.errs = append(rp.errs, yamlError(file, offset, hdr, err))
		return nil
	}
	o := r.object()
	o.src = hdr.src
	o.warnings = warnings
	if o.Metadata.Name == "" {
		rp.add(r, "metadata.name", "required")
		return nil
	}
	r.setDefaults()
	n := len(rp.errs)
	if d, ok := r.(interface{ decode(*report) }); ok {
		d.decode(rp)
	}
	if len(rp.errs) > n {
		return nil
	}
	return r
}

func kindNames() []string {
	var names []string
	for k := range kinds {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// atPosition is how go-yaml refers to another place in the document.
var atPosition = regexp.MustCompile(`at \[(\d+):\d+\]`)

// yamlError turns a go-yaml error into an *Error with line and field path.
func yamlError(file string, offset int, hdr *Object, err error) *Error {
	e := &Error{File: file, Msg: err.Error()}
	if hdr != nil {
		e.Kind, e.Name = hdr.Kind, hdr.Metadata.Name
	}
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return e
	}
	pos := ye.GetToken().Position
	e.Line = pos.Line + offset
	e.Msg = atPosition.ReplaceAllStringFunc(ye.GetMessage(), func(m string) string {
		line, _ := strconv.Atoi(atPosition.FindStringSubmatch(m)[1])
		return "at line " + strconv.Itoa(line+offset)
	})
	if hdr != nil {
		e.Path, _ = findPath(hdr.src.node, "", pos.Line, pos.Column)
	}
	var ue *yaml.UnknownFieldError
	var te *yaml.TypeError
	switch {
	case errors.As(err, &ue):
		e.Msg = "unknown field"
	case errors.As(err, &te):
		e.Msg = fmt.Sprintf("want %s, got %s", typeName(te.DstType), typeName(te.SrcType))
	}
	return e
}

func typeName(t reflect.Type) string {
	if t == nil {
		return "nothing"
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping"
	case reflect.Pointer:
		return typeName(t.Elem())
	}
	return t.String()
}

// child1 returns the value under key in mapping n, or nil.
func child1(n ast.Node, key string) ast.Node {
	if n == nil {
		return nil
	}
	c, _ := child(n, key)
	return c
}

// scalar returns the string value under key in mapping n.
func scalar(n ast.Node, key string) string {
	if s, ok := unwrap(child1(n, key)).(*ast.StringNode); ok {
		return s.Value
	}
	return ""
}

func removeKeys(n ast.Node, keys ...string) {
	m, ok := unwrap(n).(*ast.MappingNode)
	if !ok {
		return
	}
	m.Values = slices.DeleteFunc(m.Values, func(v *ast.MappingValueNode) bool {
		return slices.Contains(keys, keyString(v))
	})
}

// Marshal writes resources as YAML documents separated by "---"; Parse
// reads them back into equal resources.
func Marshal(rs ...Resource) ([]byte, error) {
	var buf bytes.Buffer
	for i, r := range rs {
		if i > 0 {
			buf.WriteString("---\n")
		}
		b, err := yaml.MarshalWithOptions(r, yaml.UseLiteralStyleIfMultiline(true))
		if err != nil {
			return nil, fmt.Errorf("config: marshal %s: %w", r.Ref(), err)
		}
		buf.Write(b)
	}
	return buf.Bytes(), nil
}
