package main

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/provisioning/atomicfile"
	"edgebroker/provisioning/bundle"
)

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

const usage = `usage:
  edgebundle keygen -o NAME
  edgebundle pack -key K.key -serial N [-expires 720h] [-device-serial S] [-device-model M]
                  [-enrol K.pub,...] [-retire K.pub,...] [-o edgebroker.bundle] FOLDER
  edgebundle verify -trust K.pub[,...] [-last-serial N] [-device-serial S] [-device-model M] FILE
  edgebundle inspect FILE
  edgebundle lint FOLDER|FILE
  edgebundle push [-cacert DATA/ca.crt | -pin SHA256] [-json] https://GATEWAY:PORT FILE
`

// cmd is one run of the tool: its output streams and the clock.
type cmd struct {
	stdout, stderr io.Writer
	now            time.Time
}

// errUsage marks errors that should print the usage.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	c := &cmd{stdout: stdout, stderr: stderr, now: time.Now()}
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	subs := map[string]func([]string) error{
		"keygen": c.keygen, "pack": c.pack, "verify": c.verify, "inspect": c.inspect, "lint": c.lint, "push": c.push,
	}
	f, ok := subs[args[0]]
	if !ok {
		if args[0] == "help" || args[0] == "-h" || args[0] == "-help" {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "edgebundle: unknown command %q\n%s", args[0], usage)
		return exitUsage
	}
	err := f(args[1:])
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "edgebundle %s: %v\n%s", args[0], err, usage)
		return exitUsage
	case errors.Is(err, flag.ErrHelp):
		return exitUsage
	}
	fmt.Fprintf(stderr, "edgebundle %s: %v\n", args[0], err)
	return exitFail
}

// parse parses flags and exactly one positional argument (flags may follow it).
func (c *cmd) parse(fl *flag.FlagSet, args []string, what string) (string, error) {
	fl.SetOutput(c.stderr)
	var pos []string
	for {
		if err := fl.Parse(args); err != nil {
			return "", err
		}
		if fl.NArg() == 0 {
			break
		}
		pos = append(pos, fl.Arg(0))
		args = fl.Args()[1:]
	}
	if what == "" {
		if len(pos) > 0 {
			return "", fmt.Errorf("%w: unexpected argument %q", errUsage, pos[0])
		}
		return "", nil
	}
	if len(pos) != 1 {
		return "", fmt.Errorf("%w: want one %s, got %d arguments", errUsage, what, len(pos))
	}
	return pos[0], nil
}

// list is a flag taking file names, comma-separated or repeated.
type list []string

func (l *list) String() string { return strings.Join(*l, ",") }
func (l *list) Set(s string) error {
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			*l = append(*l, f)
		}
	}
	return nil
}

func readPublicKeys(files []string) ([]ed25519.PublicKey, error) {
	var out []ed25519.PublicKey
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		k, err := bundle.ParsePublicKey(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, k)
	}
	return out, nil
}

func (c *cmd) keygen(args []string) error {
	fl := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fl.String("o", "", "write NAME.key and NAME.pub")
	if _, err := c.parse(fl, args, ""); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: -o NAME is required", errUsage)
	}
	keyFile, pubFile := *out+".key", *out+".pub"
	for _, f := range []string{keyFile, pubFile} {
		if _, err := os.Lstat(f); err == nil {
			return fmt.Errorf("%s exists; not overwriting a key", f)
		}
	}
	priv, err := bundle.GenerateKey()
	if err != nil {
		return err
	}
	pemKey, err := bundle.MarshalPrivateKey(priv)
	if err != nil {
		return err
	}
	pub := priv.Public().(ed25519.PublicKey)
	if err := atomicfile.WriteFile(keyFile, pemKey, 0o600); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(pubFile, bundle.MarshalPublicKey(pub), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s (secret: keep it off the gateway) and %s\nkey id %s\npublic key %s\n",
		keyFile, pubFile, bundle.KeyID(pub), bundle.PublicKeyString(pub))
	return nil
}

func (c *cmd) pack(args []string) error {
	fl := flag.NewFlagSet("pack", flag.ContinueOnError)
	keyFile := fl.String("key", "", "signing key (from keygen)")
	serial := fl.Uint64("serial", 0, "bundle serial, 1 to 2^53; must exceed the last one the gateway applied")
	expires := fl.Duration("expires", 720*time.Hour, "validity from now")
	devSerial := fl.String("device-serial", "", "only for the gateway with this board serial")
	devModel := fl.String("device-model", "", "only for gateways of this board model")
	var enrol, retire list
	fl.Var(&enrol, "enrol", "public key files the gateway should trust from now on")
	fl.Var(&retire, "retire", "public key files the gateway should stop trusting")
	out := fl.String("o", bundle.FileName, "output file")
	folder, err := c.parse(fl, args, "FOLDER")
	if err != nil {
		return err
	}
	switch {
	case *keyFile == "":
		return fmt.Errorf("%w: -key is required", errUsage)
	case *serial == 0:
		return fmt.Errorf("%w: -serial N (N >= 1) is required", errUsage)
	case *serial > bundle.MaxSerial:
		return fmt.Errorf("%w: -serial %d is above %d (2^53), the largest a gateway accepts", errUsage, *serial, uint64(bundle.MaxSerial))
	}
	keyPEM, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	key, err := bundle.ParsePrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("%s: %w", *keyFile, err)
	}
	o := bundle.PackOptions{Key: key, Serial: *serial, Created: c.now, Expires: c.now.Add(*expires)}
	if *devSerial != "" || *devModel != "" {
		o.Device = &bundle.Device{Serial: *devSerial, Model: *devModel}
	}
	if o.Enrol, err = readPublicKeys(enrol); err != nil {
		return err
	}
	if o.Retire, err = readPublicKeys(retire); err != nil {
		return err
	}
	if fi, err := os.Stat(folder); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a folder", folder)
	}
	if set, base, err := loadPath(folder); !c.lintSet(set, err, base) {
		return fmt.Errorf("%s does not validate; no bundle written", folder)
	}
	var buf bytes.Buffer
	m, err := bundle.Pack(&buf, os.DirFS(folder), o)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: serial %d, %d files, %d bytes, signed by %s, for %s, expires %s\n",
		*out, m.Serial, len(m.Files), buf.Len(), m.KeyID, m.Device, m.Expires.Format(time.RFC3339))
	return nil
}

func (c *cmd) open(file string) (*bundle.Bundle, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return bundle.Open(f, bundle.Limits{})
}

func (c *cmd) verify(args []string) error {
	fl := flag.NewFlagSet("verify", flag.ContinueOnError)
	var trustFiles list
	fl.Var(&trustFiles, "trust", "trusted public key files (comma-separated or repeated)")
	last := fl.Uint64("last-serial", 0, "the last serial the gateway applied")
	devSerial := fl.String("device-serial", "", "check the selector against this board serial")
	devModel := fl.String("device-model", "", "check the selector against this board model")
	file, err := c.parse(fl, args, "FILE")
	if err != nil {
		return err
	}
	if len(trustFiles) == 0 {
		return fmt.Errorf("%w: -trust K.pub is required", errUsage)
	}
	trust, err := readPublicKeys(trustFiles)
	if err != nil {
		return err
	}
	b, err := c.open(file)
	if err != nil {
		return err
	}
	var dev *bundle.Device
	if *devSerial != "" || *devModel != "" {
		dev = &bundle.Device{Serial: *devSerial, Model: *devModel}
	}
	if err := b.Verify(trust, *last, c.now, dev); err != nil {
		return err
	}
	if set, err := config.Load(b.FS()); !c.lintSet(set, err, "") {
		return errors.New("the configuration does not validate")
	}
	m := b.Manifest()
	fmt.Fprintf(c.stdout, "%s: OK: serial %d signed by trusted key %s, for %s, valid until %s\n",
		file, m.Serial, m.KeyID, m.Device, m.Expires.Format(time.RFC3339))
	if dev == nil && m.Device != nil {
		fmt.Fprintf(c.stdout, "note: device selector not checked (give -device-serial/-device-model)\n")
	}
	return nil
}

func (c *cmd) inspect(args []string) error {
	fl := flag.NewFlagSet("inspect", flag.ContinueOnError)
	file, err := c.parse(fl, args, "FILE")
	if err != nil {
		return err
	}
	b, err := c.open(file)
	if err != nil {
		return err
	}
	m := b.Manifest()
	w := c.stdout
	fmt.Fprintf(w, "format:   %d\nserial:   %d\nsigner:   key %s (signature not checked: use verify -trust)\n", m.Format, m.Serial, m.KeyID)
	fmt.Fprintf(w, "created:  %s\nexpires:  %s (%s)\ndevice:   %s\n",
		m.Created.Format(time.RFC3339), m.Expires.Format(time.RFC3339), validity(m, c.now), m.Device)
	for _, k := range m.Enrol {
		fmt.Fprintf(w, "enrol:    key %s %s\n", bundle.KeyID(k), bundle.PublicKeyString(k))
	}
	for _, k := range m.Retire {
		fmt.Fprintf(w, "retire:   key %s %s\n", bundle.KeyID(k), bundle.PublicKeyString(k))
	}
	fmt.Fprintf(w, "files:    %d\n", len(m.Files))
	for _, f := range m.Files {
		fmt.Fprintf(w, "  %s  %8d  %s\n", f.SHA256, f.Size, f.Path)
	}
	return nil
}

func validity(m *bundle.Manifest, now time.Time) string {
	switch {
	case now.Add(bundle.ClockSkew).Before(m.Created):
		return "not yet valid"
	case !now.Before(m.Expires):
		return "expired"
	}
	return "valid for " + m.Expires.Sub(now).Round(time.Minute).String()
}

func (c *cmd) lint(args []string) error {
	fl := flag.NewFlagSet("lint", flag.ContinueOnError)
	target, err := c.parse(fl, args, "FOLDER or FILE")
	if err != nil {
		return err
	}
	fi, err := os.Stat(target)
	if err != nil {
		return err
	}
	var ok bool
	switch ext := filepath.Ext(target); {
	case fi.IsDir() || ext == ".yaml" || ext == ".yml":
		set, base, err := loadPath(target)
		ok = c.lintSet(set, err, base)
	default:
		b, err := c.open(target)
		if err != nil {
			return err
		}
		set, err := config.Load(b.FS())
		ok = c.lintSet(set, err, "")
	}
	if !ok {
		return errors.New("configuration has errors")
	}
	return nil
}

// loadPath loads a folder or YAML file as the appliance does; the errors'
// file names are relative to the returned base.
func loadPath(p string) (s *config.Set, base string, err error) {
	if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
		s, err := config.Load(os.DirFS(filepath.Dir(p)), filepath.Base(p))
		return s, filepath.Dir(p), err
	}
	s, err = config.Load(os.DirFS(p))
	return s, p, err
}

// lintSet validates a loaded set, printing every error and warning (to
// stderr, file names under base) and every pending reference (to
// stdout), and reports whether it is valid (warnings do not count).
func (c *cmd) lintSet(s *config.Set, err error, base string) bool {
	if s != nil {
		for _, w := range s.Warnings() {
			if w.File != "" {
				w.File = filepath.Join(base, filepath.FromSlash(w.File))
			}
			fmt.Fprintf(c.stderr, "warning: %s\n", w)
		}
	}
	var errs config.Errors
	for _, e := range []error{err, validate(s)} {
		var es config.Errors
		switch {
		case errors.As(e, &es):
			errs = append(errs, es...)
		case e != nil:
			errs = append(errs, &config.Error{Msg: e.Error()})
		}
	}
	if len(errs) > 0 {
		for _, e := range errs {
			if e.File != "" {
				e.File = filepath.Join(base, filepath.FromSlash(e.File))
			}
			fmt.Fprintln(c.stderr, e)
		}
		return false
	}
	for _, w := range s.Pending() {
		fmt.Fprintf(c.stdout, "note: %s\n", w)
	}
	builtin := s.BuiltIns()
	for _, r := range builtin {
		fmt.Fprintf(c.stdout, "note: %s is AIO's built-in, not defined here: the appliance supplies its own\n", r.Ref())
	}
	fmt.Fprintf(c.stdout, "%d resources valid\n", len(s.All())-len(builtin))
	return true
}

func validate(s *config.Set) error {
	if s == nil {
		return nil
	}
	return s.Validate()
}
