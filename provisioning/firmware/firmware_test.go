package firmware_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"edgebroker/provisioning/firmware"
)

var now = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

type fixture struct {
	key        ed25519.PrivateKey
	root, boot []byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	root := bytes.Repeat([]byte("hsqs root file system "), 1000)
	boot := bytes.Repeat([]byte("FAT boot "), 500)
	return &fixture{key: key, root: root, boot: boot}
}

func (f *fixture) manifest(version string) firmware.Manifest {
	return firmware.Manifest{Version: version, Built: now.Add(-time.Hour), Board: "qemu",
		Root: firmware.PartOf(f.root), Boot: firmware.PartOf(f.boot)}
}

// file returns a whole update file for m signed with key, carrying root
// and boot.
func file(t *testing.T, m firmware.Manifest, key ed25519.PrivateKey, root, boot []byte) []byte {
	t.Helper()
	h, err := firmware.Sign(m, key)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Join([][]byte{h, root, boot}, nil)
}

func (f *fixture) policy(running string) firmware.Policy {
	return firmware.Policy{Trust: []ed25519.PublicKey{f.key.Public().(ed25519.PublicKey)}, Board: "qemu",
		Running: running, Now: now, MaxRoot: 1 << 20, MaxBoot: 1 << 20}
}

// install runs a device's checks on an update file: the header, Verify,
// then both file systems copied into buffers, then the end.
func install(b []byte, p firmware.Policy) (root, boot []byte, err error) {
	r := bytes.NewReader(b)
	s, err := firmware.ReadHeader(r)
	if err != nil {
		return nil, nil, err
	}
	if err := s.Verify(p); err != nil {
		return nil, nil, err
	}
	var rb, bb bytes.Buffer
	if err := firmware.CopyPart(&rb, r, "root", s.Manifest.Root); err != nil {
		return nil, nil, err
	}
	if err := firmware.CopyPart(&bb, r, "boot", s.Manifest.Boot); err != nil {
		return nil, nil, err
	}
	if err := firmware.ExpectEnd(r); err != nil {
		return nil, nil, err
	}
	return rb.Bytes(), bb.Bytes(), nil
}

func TestInstallAccepts(t *testing.T) {
	f := newFixture(t)
	root, boot, err := install(file(t, f.manifest("1.3"), f.key, f.root, f.boot), f.policy("1.2.9"))
	if err != nil {
		t.Fatalf("newer update refused: %v", err)
	}
	if !bytes.Equal(root, f.root) || !bytes.Equal(boot, f.boot) {
		t.Errorf("file systems differ from what was signed")
	}
}

// TestRefusals: each update a device must refuse, with its reason.
func TestRefusals(t *testing.T) {
	f := newFixture(t)
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	good := f.manifest("2.0")
	goodFile := file(t, good, f.key, f.root, f.boot)
	tamper := func(b []byte, off int) []byte {
		b = bytes.Clone(b)
		b[off] ^= 1
		return b
	}
	hdrLen := len(goodFile) - len(f.root) - len(f.boot)
	downgrade := f.manifest("1.0")
	downgrade.AllowDowngrade, downgrade.Expires = true, now.Add(-time.Minute)
	board := f.manifest("2.0")
	board.Board = "rpi"
	big := f.manifest("2.0")
	big.Root.Size = 2 << 20
	for _, c := range []struct {
		name    string
		file    []byte
		running string
		want    firmware.Reason
	}{
		{"tampered root", tamper(goodFile, hdrLen+100), "1.0", firmware.ReasonHash},
		{"tampered boot", tamper(goodFile, len(goodFile)-1), "1.0", firmware.ReasonHash},
		{"tampered manifest", bytes.Replace(goodFile, []byte(`"2.0"`), []byte(`"9.0"`), 1), "1.0", firmware.ReasonSignature},
		{"tampered signature", tamper(goodFile, hdrLen-1), "1.0", firmware.ReasonSignature},
		{"wrong key", file(t, good, other, f.root, f.boot), "1.0", firmware.ReasonUntrusted},
		{"wrong board", file(t, board, f.key, f.root, f.boot), "1.0", firmware.ReasonBoard},
		{"downgrade", file(t, f.manifest("1.9.9"), f.key, f.root, f.boot), "2.0", firmware.ReasonDowngrade},
		{"replayed running version", goodFile, "2.0", firmware.ReasonNotNewer},
		{"replayed old image", goodFile, "2.1", firmware.ReasonDowngrade},
		{"expired downgrade", file(t, downgrade, f.key, f.root, f.boot), "2.0", firmware.ReasonExpired},
		{"truncated in root", goodFile[:hdrLen+10], "1.0", firmware.ReasonTruncated},
		{"truncated in boot", goodFile[:len(goodFile)-1], "1.0", firmware.ReasonTruncated},
		{"truncated header", goodFile[:hdrLen-1], "1.0", firmware.ReasonTruncated},
		{"trailing data", append(bytes.Clone(goodFile), 0), "1.0", firmware.ReasonTrailing},
		{"not an update", f.root, "1.0", firmware.ReasonFormat},
		{"root larger than its partition", file(t, big, f.key, f.root, f.boot), "1.0", firmware.ReasonOversize},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := install(c.file, f.policy(c.running))
			if got := firmware.ReasonOf(err); got != c.want {
				t.Fatalf("got %v (reason %q), want reason %q", err, got, c.want)
			}
			if !errors.Is(err, c.want) {
				t.Errorf("errors.Is(%v, %q) is false", err, c.want)
			}
			var r *firmware.Refusal
			if !errors.As(err, &r) || r.Detail == "" {
				t.Errorf("%v: no *Refusal with a detail", err)
			}
		})
	}
}

// TestSignedDowngrade: a downgrade (or a reinstall of the running
// version) needs the signed allowDowngrade flag, and only until it expires.
func TestSignedDowngrade(t *testing.T) {
	f := newFixture(t)
	m := f.manifest("1.0")
	m.AllowDowngrade, m.Expires = true, now.Add(time.Hour)
	for _, running := range []string{"2.0", "1.0"} {
		if _, _, err := install(file(t, m, f.key, f.root, f.boot), f.policy(running)); err != nil {
			t.Errorf("signed downgrade from %s refused: %v", running, err)
		}
	}
	// The flag is inside the signature: setting it on an unflagged update
	// breaks the signature.
	plain := file(t, f.manifest("1.0"), f.key, f.root, f.boot)
	forged := bytes.Replace(plain, []byte(`"board"`), []byte(`"allowDowngrade":true,"expires":"2027-01-01T00:00:00Z","board"`), 1)
	n := binary.BigEndian.Uint32(plain[len(firmware.Magic):])
	binary.BigEndian.PutUint32(forged[len(firmware.Magic):], n+uint32(len(forged)-len(plain))) // fix the length field
	if _, _, err := install(forged, f.policy("2.0")); !errors.Is(err, firmware.ReasonSignature) {
		t.Errorf("forged allowDowngrade: got %v, want %q", err, firmware.ReasonSignature)
	}
	m.Expires = time.Time{}
	if _, err := firmware.Sign(m, f.key); !errors.Is(err, firmware.ReasonFormat) {
		t.Errorf("Sign with allowDowngrade and no expiry: got %v, want %q", err, firmware.ReasonFormat)
	}
}

func TestCopyPartWriteError(t *testing.T) {
	f := newFixture(t)
	err := firmware.CopyPart(failWriter{}, bytes.NewReader(f.root), "root", firmware.PartOf(f.root))
	if !errors.Is(err, firmware.ReasonWrite) {
		t.Errorf("got %v, want %q", err, firmware.ReasonWrite)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestVersionCompare(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.2", "1.2.0", 0}, {"1.10", "1.9", 1}, {"1", "1.0.1", -1}, {"20261203.2", "20261203.10", -1}, {"20261203.093015", "20261203.93015", 0}, {"20261203.093015", "20261203.100000", -1},
	} {
		a, err := firmware.ParseVersion(c.a)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := firmware.ParseVersion(c.b)
		if got := a.Compare(b); got != c.want {
			t.Errorf("%s vs %s: got %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, bad := range []string{"", "1..2", "+1.2", "v1", "1.-2", "1.2.3.4.5.6.7.8.9"} {
		if _, err := firmware.ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q): no error", bad)
		}
	}
}

// FuzzReadHeader: ReadHeader never panics and reads no more than the
// header it returns.
func FuzzReadHeader(f *testing.F) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	fx := &fixture{key: key, root: []byte("root"), boot: []byte("boot")}
	h, _ := firmware.Sign(fx.manifest("1.0"), key)
	f.Add(h)
	f.Add([]byte(firmware.Magic + "\x00\x00\x00\x02{}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		s, err := firmware.ReadHeader(r)
		if err != nil {
			if firmware.ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if read := int64(len(b)) - int64(r.Len()); read != s.Len() {
			t.Fatalf("read %d bytes, header is %d", read, s.Len())
		}
	})
}
