package main

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgebroker/image/build"
	"edgebroker/image/update"
	"edgebroker/provisioning/bundle"
	"edgebroker/provisioning/firmware"
)

// fakeImage writes a sparse image laid out like build.Build's, with a
// boot sector and a SquashFS superblock, and returns its path.
func fakeImage(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edgebroker-qemu.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(build.DefaultSize); err != nil {
		t.Fatal(err)
	}
	l := build.LayoutFor(build.DefaultSize)
	boot := make([]byte, 1024)
	boot[510], boot[511], boot[1000] = 0x55, 0xaa, 9
	f.WriteAt(boot, l.Start[build.PartBoot])
	sb := make([]byte, 96)
	copy(sb, "hsqs")
	binary.LittleEndian.PutUint64(sb[40:], 6000)
	f.WriteAt(sb, l.Start[build.PartRootA])
	return path
}

// TestSign: mkimage sign signs an image's file systems with a bundle
// signing key (as edgebundle keygen writes it); a device trusting that
// key accepts the update and gets the image's exact file systems.
func TestSign(t *testing.T) {
	img := fakeImage(t)
	key, err := bundle.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	pem, _ := bundle.MarshalPrivateKey(key)
	keyFile := filepath.Join(t.TempDir(), "site.key")
	os.WriteFile(keyFile, pem, 0o600)
	out := filepath.Join(t.TempDir(), "u.fwupdate")
	if err := signMain(context.Background(), []string{"-key", keyFile, "-target", "qemu", "-epoch", "1764756000", "-o", out, img}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := firmware.ReadHeader(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Manifest.Version, "20251203.100000"; got != want {
		t.Errorf("version %q, want %q (the epoch)", got, want)
	}
	p := firmware.Policy{Trust: []ed25519.PublicKey{key.Public().(ed25519.PublicKey)}, Board: "qemu", Running: "20251101", Now: time.Now()}
	if err := s.Verify(p); err != nil {
		t.Fatalf("a device trusting the bundle key refuses: %v", err)
	}
	parts, err := update.ReadImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := firmware.CopyPart(discard{}, f, "root", s.Manifest.Root); err != nil || s.Manifest.Root.Size != int64(len(parts.Root)) {
		t.Errorf("root: %v (size %d, image %d)", err, s.Manifest.Root.Size, len(parts.Root))
	}
	if err := firmware.CopyPart(discard{}, f, "boot", s.Manifest.Boot); err != nil || s.Manifest.Boot.Size != int64(len(parts.Boot)) {
		t.Errorf("boot: %v", err)
	}
	if err := firmware.ExpectEnd(f); err != nil {
		t.Error(err)
	}
	p.Board = "rpi"
	if err := s.Verify(p); !errors.Is(err, firmware.ReasonBoard) {
		t.Errorf("on a Pi: %v, want %q", err, firmware.ReasonBoard)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
