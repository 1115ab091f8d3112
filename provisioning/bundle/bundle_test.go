package bundle

import (
	"archive/tar"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// testKey derives a fixed key from a seed byte, so tests are reproducible.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func pub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var folder = fstest.MapFS{
	"listeners.yaml":        {Data: []byte("kind: BrokerListener\n")},
	"secrets/srv/tls.crt":   {Data: []byte("CERT")},
	"secrets/srv/tls.key":   {Data: []byte("KEY")},
	".DS_Store":             {Data: []byte("junk")},
	".git/config":           {Data: []byte("junk")},
	"sub/deeper/empty.yaml": {Data: nil},
}

var folderFiles = []string{"listeners.yaml", "secrets/srv/tls.crt", "secrets/srv/tls.key", "sub/deeper/empty.yaml"}

func opts(serial uint64) PackOptions {
	return PackOptions{Key: testKey(1), Serial: serial, Created: t0, Expires: t0.Add(24 * time.Hour)}
}

func pack(t testing.TB, fsys fs.FS, o PackOptions) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Pack(&buf, fsys, o); err != nil {
		t.Fatalf("Pack: %v", err)
	}
	return buf.Bytes()
}

func TestPackOpenVerify(t *testing.T) {
	o := opts(7)
	o.Device = &Device{Model: "Raspberry Pi 4 Model B Rev 1.4"}
	o.Enrol = []ed25519.PublicKey{pub(testKey(2))}
	data := pack(t, folder, o)
	b, err := Open(bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	m := b.Manifest()
	if m.Serial != 7 || m.KeyID != KeyID(pub(testKey(1))) || !m.Created.Equal(t0) || len(m.Enrol) != 1 || !m.Enrol[0].Equal(pub(testKey(2))) {
		t.Errorf("manifest: %+v", m)
	}
	var got []string
	for _, f := range m.Files {
		got = append(got, f.Path)
	}
	if strings.Join(got, " ") != strings.Join(folderFiles, " ") {
		t.Errorf("files: got %v, want %v (hidden ones left out)", got, folderFiles)
	}
	if err := fstest.TestFS(b.FS(), folderFiles...); err != nil {
		t.Errorf("FS: %v", err)
	}
	for _, name := range folderFiles {
		if got, _ := fs.ReadFile(b.FS(), name); !bytes.Equal(got, folder[name].Data) {
			t.Errorf("%s: got %q, want %q", name, got, folder[name].Data)
		}
	}
	dev := &Device{Serial: "10000000abcdef", Model: "Raspberry Pi 4 Model B Rev 1.4"}
	if err := b.Verify(TrustSet{pub(testKey(3)), pub(testKey(1))}, 6, t0.Add(time.Hour), dev); err != nil {
		t.Errorf("Verify: %v", err)
	}
}

// entry is one archive entry for crafted bundles.
type entry struct {
	name string
	typ  byte
	data []byte
	link string
	size int64 // if > 0, the header's size (data may be shorter: a truncated entry)
}

// craft writes a bundle entry by entry: m signed by key, then files.
func craft(t testing.TB, key ed25519.PrivateKey, m *Manifest, files ...entry) []byte {
	t.Helper()
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return craftRaw(t, raw, ed25519.Sign(key, raw), files...)
}

func craftRaw(t testing.TB, raw, sig []byte, files ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	all := append([]entry{{name: manifestName, data: raw}, {name: sigName, data: sig}}, files...)
	for _, e := range all {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Size: int64(len(e.data)), Linkname: e.link, Mode: 0o644}
		if e.typ == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if hdr.Typeflag != tar.TypeReg {
			hdr.Size = 0
		}
		if e.size > 0 {
			hdr.Size = e.size
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
		if e.size > int64(len(e.data)) {
			return buf.Bytes() // cut here, mid-entry
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func manifest(files ...entry) *Manifest {
	m := &Manifest{Format: FormatVersion, Serial: 5, Created: t0, Expires: t0.Add(time.Hour), KeyID: KeyID(pub(testKey(1)))}
	for _, f := range files {
		sum := sha256.Sum256(f.data)
		m.Files = append(m.Files, File{Path: strings.TrimPrefix(f.name, configDir), Size: int64(len(f.data)), SHA256: hex.EncodeToString(sum[:])})
	}
	return m
}

var (
	fileA = entry{name: "config/a.yaml", data: []byte("kind: Broker\n")}
	fileB = entry{name: "config/d/b.yaml", data: []byte("kind: BrokerListener\n")}
)

func TestOpenRejects(t *testing.T) {
	key := testKey(1)
	with := func(f func(m *Manifest)) *Manifest {
		m := manifest(fileA, fileB)
		f(m)
		return m
	}
	small := Limits{MaxTotal: 100, MaxFiles: 2, MaxFileSize: 50}
	good := craft(t, key, manifest(fileA, fileB), fileA, fileB)
	for _, tt := range []struct {
		name string
		data []byte
		lim  Limits
		want error
		msg  string
	}{
		{"empty file", nil, Limits{}, ErrFormat, "empty file"},
		{"not a tar", []byte(strings.Repeat("garbage!", 200)), Limits{}, ErrFormat, ""},
		{"format 2", craft(t, key, with(func(m *Manifest) { m.Format = 2 }), fileA, fileB), Limits{}, ErrVersion, "2 (this device reads format 1)"},
		{"manifest traversal", craft(t, key, with(func(m *Manifest) { m.Files[0].Path = "../../etc/passwd" }), fileA, fileB), Limits{}, ErrPath, `"../../etc/passwd": climbs out with ..`},
		{"manifest absolute", craft(t, key, with(func(m *Manifest) { m.Files[0].Path = "/etc/passwd" }), fileA, fileB), Limits{}, ErrPath, "absolute"},
		{"entry traversal", craft(t, key, manifest(fileA), fileA, entry{name: "config/d/../../x", data: []byte("x")}), Limits{}, ErrPath, "climbs out"},
		{"entry outside config", craft(t, key, manifest(fileA), fileA, entry{name: "/etc/passwd", data: []byte("x")}), Limits{}, ErrPath, "outside config/"},
		{"entry absolute", craft(t, key, manifest(fileA), fileA, entry{name: "config//etc/passwd", data: []byte("x")}), Limits{}, ErrPath, "absolute"},
		{"symlink", craft(t, key, manifest(fileA), fileA, entry{name: "config/l", typ: tar.TypeSymlink, link: "/etc/shadow"}), Limits{}, ErrFileType, "symbolic link to /etc/shadow"},
		{"hard link", craft(t, key, manifest(fileA), fileA, entry{name: "config/l", typ: tar.TypeLink, link: "config/a.yaml"}), Limits{}, ErrFileType, "hard link"},
		{"device", craft(t, key, manifest(fileA), fileA, entry{name: "config/sda", typ: tar.TypeBlock}), Limits{}, ErrFileType, "device"},
		{"duplicate entry", craft(t, key, manifest(fileA), fileA, fileA), Limits{}, ErrDuplicate, "a.yaml"},
		{"duplicate in manifest", craft(t, key, manifest(fileA, fileA), fileA), Limits{}, ErrDuplicate, "a.yaml"},
		{"file and folder", craft(t, key, manifest(fileA, entry{name: "config/a.yaml/x", data: []byte("x")}), fileA), Limits{}, ErrDuplicate, "a.yaml is a file and a folder"},
		{"unlisted file", craft(t, key, manifest(fileA), fileA, fileB), Limits{}, ErrUnlisted, "d/b.yaml"},
		{"missing file", craft(t, key, manifest(fileA, fileB), fileA), Limits{}, ErrMissing, "d/b.yaml"},
		{"hash mismatch", craft(t, key, manifest(fileA, fileB), fileA, entry{name: fileB.name, data: bytes.ToUpper(fileB.data)}), Limits{}, ErrHash, "d/b.yaml has SHA-256"},
		{"size mismatch", craft(t, key, manifest(fileA, fileB), fileA, entry{name: fileB.name, data: []byte("short")}), Limits{}, ErrHash, "d/b.yaml is 5 bytes, the manifest says 21"},
		{"truncated mid-file", good[:1536+512+700], Limits{}, ErrTruncated, ""},
		{"truncated mid-entry", craft(t, key, manifest(fileA, fileB), fileA, entry{name: fileB.name, data: fileB.data[:5], size: int64(len(fileB.data))}), Limits{}, ErrTruncated, "d/b.yaml ends after 5 of 21 bytes"},
		{"truncated at entry boundary", good[:len(good)-1024], Limits{}, ErrTruncated, "without its end marker"},
		{"cut before the signature", good[:512+roundUp(len(craftManifest(t, key)))], Limits{}, ErrTruncated, "ends before manifest.sig"},
		{"too many files", craft(t, key, manifest(fileA, fileB, entry{name: "config/c", data: []byte("c")})), small, ErrOversize, "3 files, more than 2"},
		{"file too large", craft(t, key, manifest(entry{name: "config/big", data: make([]byte, 51)})), small, ErrOversize, "big is 51 bytes, more than 50"},
		{"total too large", craft(t, key, manifest(entry{name: "config/x", data: make([]byte, 50)}, entry{name: "config/y", data: make([]byte, 51)})), Limits{MaxTotal: 100, MaxFiles: 2, MaxFileSize: 100}, ErrOversize, "more than 100 bytes"},
		{"entry larger than listed", craft(t, key, manifest(fileA), entry{name: fileA.name, data: fileA.data, size: 1 << 40}), Limits{}, ErrOversize, "a.yaml is 1099511627776 bytes"},
		{"bad sha256", craft(t, key, with(func(m *Manifest) { m.Files[0].SHA256 = "zz" }), fileA, fileB), Limits{}, ErrFormat, "SHA-256"},
		{"serial 2^64-1", craft(t, key, with(func(m *Manifest) { m.Serial = math.MaxUint64 }), fileA, fileB), Limits{}, ErrFormat, "serial 18446744073709551615 is above 9007199254740992 (2^53)"},
		{"serial 2^53+1", craft(t, key, with(func(m *Manifest) { m.Serial = MaxSerial + 1 }), fileA, fileB), Limits{}, ErrFormat, "serial 9007199254740993 is above"},
		{"a byte after the end", append(slices.Clip(good), 'x'), Limits{}, ErrFormat, fmt.Sprintf("a byte 0x78 at offset %d", len(good))},
		{"a byte after zeros", append(append(slices.Clip(good), make([]byte, 100)...), 1), Limits{}, ErrFormat, fmt.Sprintf("a byte 0x01 at offset %d", len(good)+100)},
		{"a second archive", append(slices.Clip(good), good...), Limits{}, ErrFormat, "data after the archive's end marker"},
		{"zeros past the record", append(slices.Clip(good), make([]byte, padTo(len(good), recordSize)+1)...), Limits{}, ErrFormat, "after the archive's end marker and its padding"},
		{"enrol and retire one key", craft(t, key, with(func(m *Manifest) {
			m.Enrol = []ed25519.PublicKey{pub(testKey(2))}
			m.Retire = m.Enrol
		}), fileA, fileB), Limits{}, ErrKeys, "both enrolled and retired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(bytes.NewReader(tt.data), tt.lim)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: got %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Open: got %q, want it to contain %q", err, tt.msg)
			}
		})
	}
}

// endless is a reader that never ends: after prefix, zeros forever.
type endless struct {
	prefix []byte
	n      int64
}

func (e *endless) Read(p []byte) (int, error) {
	n := copy(p, e.prefix)
	e.prefix = e.prefix[n:]
	clear(p[n:])
	e.n += int64(len(p))
	return len(p), nil
}

// TestOpenBounded: an oversize entry is rejected from its header, and an
// endless stream after a valid start is cut at the limit.
func TestOpenBounded(t *testing.T) {
	key := testKey(1)
	big := entry{name: "config/big", data: make([]byte, 4096), size: 1 << 40}
	hdrOnly := craft(t, key, manifest(big), big)
	r := &endless{prefix: hdrOnly}
	if _, err := Open(r, Limits{}); !errors.Is(err, ErrOversize) {
		t.Fatalf("Open: got %v, want ErrOversize", err)
	}
	if r.n > 1<<20 {
		t.Errorf("read %d bytes of an oversize entry, want it rejected from the header", r.n)
	}

	// A listed file of 16 MiB whose header claims so, then zeros forever:
	// the size matches, so Open reads it, but never more than its limit.
	lim := Limits{MaxTotal: 1 << 20, MaxFiles: 4, MaxFileSize: 1 << 20}
	m := manifest(entry{name: "config/z", data: make([]byte, 1<<20)})
	start := craft(t, key, m, entry{name: "config/z", data: nil, size: 1 << 20})
	r = &endless{prefix: start}
	_, err := Open(r, lim)
	// The file is all zeros, as listed; then the "end marker" is zeros too,
	// and the record's padding; the zeros after that are data after the
	// archive's end, read no further than one byte.
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "after the archive's end marker and its padding") {
		t.Fatalf("Open over an endless stream of zeros: %v, want data after the end", err)
	}
	if r.n > 2<<20 {
		t.Errorf("read %d bytes; want at most about the limit", r.n)
	}
}

func TestVerifyRejects(t *testing.T) {
	key, other := testKey(1), testKey(2)
	trust := TrustSet{pub(key)}
	open := func(m *Manifest) *Bundle {
		t.Helper()
		b, err := Open(bytes.NewReader(craft(t, key, m, fileA)), Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	m := func(f func(*Manifest)) *Manifest {
		m := manifest(fileA)
		f(m)
		return m
	}
	now := t0.Add(30 * time.Minute)
	dev := &Device{Serial: "abc", Model: "Raspberry Pi 5"}
	huge := open(manifest(fileA))
	huge.m.Serial = math.MaxUint64 // as if Open had let it through
	tampered := open(manifest(fileA))
	tampered.raw = bytes.Replace(tampered.raw, []byte(`"serial":5`), []byte(`"serial":9`), 1)
	for _, tt := range []struct {
		name  string
		b     *Bundle
		trust TrustSet
		last  uint64
		now   time.Time
		want  []error
		msg   string
	}{
		{"good", open(manifest(fileA)), trust, 4, now, nil, ""},
		{"bad signature", tampered, trust, 4, now, []error{ErrSignature}, "key " + KeyID(pub(key))},
		{"untrusted key", open(manifest(fileA)), TrustSet{pub(other)}, 4, now, []error{ErrUntrusted}, "signed by key " + KeyID(pub(key)) + ", the device trusts [" + KeyID(pub(other)) + "]"},
		{"replayed serial", open(manifest(fileA)), trust, 5, now, []error{ErrReplay}, "serial 5 is not above 5"},
		{"expired", open(manifest(fileA)), trust, 4, t0.Add(time.Hour), []error{ErrExpired}, "expired 2026-11-23T13:00:00Z"},
		{"not yet valid", open(manifest(fileA)), trust, 4, t0.Add(-time.Hour), []error{ErrNotYetValid}, "created 2026-11-23T12:00:00Z"},
		{"within clock skew", open(manifest(fileA)), trust, 4, t0.Add(-5 * time.Minute), nil, ""},
		{"other device", open(m(func(m *Manifest) { m.Device = &Device{Serial: "xyz"} })), trust, 4, now, []error{ErrDevice}, `for serial "xyz", this is model "Raspberry Pi 5", serial "abc"`},
		{"other model", open(m(func(m *Manifest) { m.Device = &Device{Model: "Raspberry Pi 4"} })), trust, 4, now, []error{ErrDevice}, ""},
		{"this device", open(m(func(m *Manifest) { m.Device = &Device{Serial: "abc", Model: "Raspberry Pi 5"} })), trust, 4, now, nil, ""},
		{"retire the last key", open(m(func(m *Manifest) { m.Retire = []ed25519.PublicKey{pub(key)} })), trust, 4, now, []error{ErrKeys}, "would leave no trusted key"},
		{"rotate the key", open(m(func(m *Manifest) {
			m.Enrol = []ed25519.PublicKey{pub(other)}
			m.Retire = []ed25519.PublicKey{pub(key)}
		})), trust, 4, now, nil, ""},
		{"serial above 2^53", huge, trust, 4, now, []error{ErrFormat}, "serial 18446744073709551615 is above 9007199254740992"},
		{"every reason", open(manifest(fileA)), trust, 9, t0.Add(2 * time.Hour), []error{ErrReplay, ErrExpired}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.Verify(tt.trust, tt.last, tt.now, dev)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			for _, w := range tt.want {
				if !errors.Is(err, w) {
					t.Errorf("Verify: got %v, want %v", err, w)
				}
			}
			if err != nil && !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Verify: got %q, want it to contain %q", err, tt.msg)
			}
		})
	}
	// Host-side: no device given, the selector is not checked.
	if err := open(m(func(m *Manifest) { m.Device = &Device{Serial: "xyz"} })).Verify(trust, 0, now, nil); err != nil {
		t.Errorf("Verify without a device: %v", err)
	}
}

func TestPackRejects(t *testing.T) {
	for _, tt := range []struct {
		name string
		fsys fs.FS
		o    func(*PackOptions)
		msg  string
	}{
		{"no key", folder, func(o *PackOptions) { o.Key = nil }, "no ed25519 signing key"},
		{"serial 0", folder, func(o *PackOptions) { o.Serial = 0 }, "serial must be at least 1"},
		{"serial 2^64-1", folder, func(o *PackOptions) { o.Serial = math.MaxUint64 }, "serial 18446744073709551615 is above 9007199254740992 (2^53)"},
		{"serial 2^53+1", folder, func(o *PackOptions) { o.Serial = MaxSerial + 1 }, "serial 9007199254740993 is above"},
		{"expired", folder, func(o *PackOptions) { o.Expires = t0 }, "is not after creation"},
		{"empty", fstest.MapFS{".hidden": {}}, nil, "no files to pack"},
		{"symlink", fstest.MapFS{"a": {Mode: fs.ModeSymlink, Data: []byte("/etc")}}, nil, "a is a symbolic link"},
		{"too big", fstest.MapFS{"a": {Data: make([]byte, 11)}}, func(o *PackOptions) { o.Limits = Limits{10, 10, 10} }, "a is larger than 10 bytes"},
		{"retire and enrol", folder, func(o *PackOptions) {
			o.Enrol = []ed25519.PublicKey{pub(testKey(2))}
			o.Retire = o.Enrol
		}, "both enrolled and retired"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o := opts(1)
			if tt.o != nil {
				tt.o(&o)
			}
			_, err := Pack(io.Discard, tt.fsys, o)
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Pack: got %v, want an error containing %q", err, tt.msg)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	priv, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := MarshalPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivateKey(pemKey)
	if err != nil || !back.Equal(priv) {
		t.Errorf("ParsePrivateKey: %v, equal %v", err, back.Equal(priv))
	}
	p := pub(priv)
	for _, enc := range [][]byte{MarshalPublicKey(p), []byte(" " + PublicKeyString(p) + "\n")} {
		got, err := ParsePublicKey(enc)
		if err != nil || !got.Equal(p) {
			t.Errorf("ParsePublicKey(%q): %v", enc, err)
		}
	}
	if len(KeyID(p)) != 16 || KeyID(p) == KeyID(pub(testKey(1))) {
		t.Errorf("KeyID: %q", KeyID(p))
	}
	for _, bad := range []string{"", "not base64!", "AAAA", string(pemKey)} {
		if _, err := ParsePublicKey([]byte(bad)); err == nil {
			t.Errorf("ParsePublicKey(%q): no error", bad)
		}
	}
	if _, err := ParsePrivateKey(MarshalPublicKey(p)); err == nil {
		t.Error("ParsePrivateKey(a public key): no error")
	}
	ts := TrustSet{pub(testKey(1)), pub(testKey(2))}
	got := ts.Change([]ed25519.PublicKey{pub(testKey(3)), pub(testKey(1))}, []ed25519.PublicKey{pub(testKey(2))})
	if want := (TrustSet{pub(testKey(1)), pub(testKey(3))}); len(got) != 2 || !got.Contains(want[0]) || !got.Contains(want[1]) {
		t.Errorf("Change: got %v, want %v", got.IDs(), want.IDs())
	}
}

// FuzzOpen: Open never panics, and whatever it accepts holds exactly the
// manifest's files with their hashes.
func FuzzOpen(f *testing.F) {
	f.Add(pack(f, folder, opts(1)))
	f.Add(craft(f, testKey(1), manifest(fileA, fileB), fileA, fileB))
	f.Add(craft(f, testKey(1), manifest(fileA), fileA, entry{name: "config/l", typ: tar.TypeSymlink, link: "/"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := Open(bytes.NewReader(data), Limits{MaxTotal: 1 << 16, MaxFiles: 16, MaxFileSize: 1 << 14})
		if err != nil {
			return
		}
		n := 0
		err = fs.WalkDir(b.FS(), ".", func(name string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			n++
			return nil
		})
		if err != nil || n != len(b.Manifest().Files) {
			t.Fatalf("walk: %v, %d files, manifest lists %d", err, n, len(b.Manifest().Files))
		}
		for _, fl := range b.Manifest().Files {
			data, err := fs.ReadFile(b.FS(), fl.Path)
			sum := sha256.Sum256(data)
			if err != nil || hex.EncodeToString(sum[:]) != fl.SHA256 {
				t.Fatalf("%s: %v, hash mismatch", fl.Path, err)
			}
		}
	})
}

func craftManifest(t testing.TB, key ed25519.PrivateKey) []byte {
	raw, err := json.Marshal(manifest(fileA, fileB))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func roundUp(n int) int { return (n + 511) / 512 * 512 }

// padTo returns how many bytes pad n to a multiple of size.
func padTo(n, size int) int { return (size - n%size) % size }

// TestOpenPadding: zeros that pad the archive to a whole tar record, as tar
// writers add them, are not data after the end; a serial of exactly 2^53
// is accepted.
func TestOpenPadding(t *testing.T) {
	o := opts(MaxSerial)
	data := pack(t, folder, o)
	for _, pad := range []int{0, 512, padTo(len(data), recordSize)} {
		padded := append(slices.Clip(data), make([]byte, pad)...)
		b, err := Open(bytes.NewReader(padded), Limits{})
		if err != nil {
			t.Fatalf("Open with %d bytes of zero padding: %v", pad, err)
		}
		if b.Manifest().Serial != MaxSerial {
			t.Errorf("serial %d, want %d", b.Manifest().Serial, uint64(MaxSerial))
		}
	}
}
