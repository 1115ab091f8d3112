// Package update pushes a new image to a running gokrazy device over
// gokrazy's HTTP update protocol: PUT /update/root writes the inactive root
// partition, PUT /update/boot the boot partition, POST /update/switch makes
// the next boot use the freshly written root, and POST /reboot reboots.
// Every request carries HTTP basic auth (user "gokrazy" and the password
// the image was built with); the device answers each PUT with the SHA-256
// of what it wrote, which is checked.
package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"edgebroker/image/build"
)

// Device is a running gokrazy installation.
type Device struct {
	// BaseURL is the device's web/update interface, e.g.
	// "http://gokrazy:8080"; no trailing slash needed.
	BaseURL  string
	Password string
	// Client is the HTTP client; nil means one with a 10-minute timeout
	// per request (root images are tens of MiB over slow links).
	Client *http.Client
}

func (d *Device) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

func (d *Device) do(ctx context.Context, method, path string, body io.Reader, n int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(d.BaseURL, "/")+path, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = n
	}
	req.SetBasicAuth("gokrazy", d.Password)
	req.Header.Set("X-Gokrazy-Update-Hash", "sha256")
	resp, err := d.client().Do(req)
	if err != nil {
		return nil, fmt.Errorf("update: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("update: %s %s: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("update: %s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// Features returns the device's /update/features answer (e.g.
// "partuuid,updatehash,").
func (d *Device) Features(ctx context.Context) (string, error) {
	b, err := d.do(ctx, http.MethodGet, "/update/features", nil, 0)
	return string(b), err
}

// put streams b to path and checks the SHA-256 the device reports.
func (d *Device) put(ctx context.Context, path string, b []byte) error {
	got, err := d.do(ctx, http.MethodPut, path, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return err
	}
	want := sha256.Sum256(b)
	if string(bytes.TrimSpace(got)) != hex.EncodeToString(want[:]) {
		return fmt.Errorf("update: %s: device wrote SHA-256 %q, want %x", path, got, want)
	}
	return nil
}

// PutRoot writes a root file system image to the inactive root partition.
func (d *Device) PutRoot(ctx context.Context, b []byte) error { return d.put(ctx, "/update/root", b) }

// PutBoot writes a boot file system image to the boot partition.
func (d *Device) PutBoot(ctx context.Context, b []byte) error { return d.put(ctx, "/update/boot", b) }

// Switch makes the next boot use the inactive root partition.
func (d *Device) Switch(ctx context.Context) error {
	_, err := d.do(ctx, http.MethodPost, "/update/switch", nil, 0)
	return err
}

// Reboot stops the device's programs (SIGTERM, then SIGKILL after at most
// gokrazy's signal delay), unmounts /perm and reboots.
func (d *Device) Reboot(ctx context.Context) error {
	_, err := d.do(ctx, http.MethodPost, "/reboot", nil, 0)
	return err
}

// Parts are the partitions an update writes, read from a built image.
type Parts struct {
	Boot []byte // the boot FAT, without the all-zero tail
	Root []byte // the SquashFS, up to its bytes_used (rounded up to 4 KiB)
}

// maxPart bounds what ReadImage reads per partition.
const maxPart = build.RootSectors * build.SectorSize

// ReadImage reads the boot and root file systems out of an image written by
// build.Build.
func ReadImage(path string) (*Parts, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	l := build.LayoutFor(st.Size())
	boot := make([]byte, l.Size[build.PartBoot])
	if _, err := f.ReadAt(boot, l.Start[build.PartBoot]); err != nil {
		return nil, fmt.Errorf("update: %s: boot partition: %w", path, err)
	}
	boot = trimZeros(boot)
	if len(boot) < 512 || boot[510] != 0x55 || boot[511] != 0xaa {
		return nil, fmt.Errorf("update: %s: partition 1 is not a FAT file system", path)
	}
	var sb [96]byte
	if _, err := f.ReadAt(sb[:], l.Start[build.PartRootA]); err != nil {
		return nil, fmt.Errorf("update: %s: root partition: %w", path, err)
	}
	if string(sb[:4]) != "hsqs" {
		return nil, fmt.Errorf("update: %s: partition 2 is not a SquashFS", path)
	}
	used := int64(binary.LittleEndian.Uint64(sb[40:48]))
	used = (used + 4095) &^ 4095
	if used <= 0 || used > maxPart {
		return nil, fmt.Errorf("update: %s: SquashFS size %d out of range", path, used)
	}
	root := make([]byte, used)
	if _, err := f.ReadAt(root, l.Start[build.PartRootA]); err != nil {
		return nil, fmt.Errorf("update: %s: root partition: %w", path, err)
	}
	return &Parts{Boot: boot, Root: root}, nil
}

// trimZeros drops the all-zero tail of a FAT image, keeping whole sectors:
// free clusters need not be rewritten.
func trimZeros(b []byte) []byte {
	n := len(bytes.TrimRight(b, "\x00"))
	n = (n + build.SectorSize - 1) / build.SectorSize * build.SectorSize
	return b[:min(n, len(b))]
}

// Push writes p to the device (root, then boot, then switch) and, when
// reboot is set, reboots it into the new root. progress (nil: discard) gets
// one line per step.
func Push(ctx context.Context, d *Device, p *Parts, reboot bool, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	feat, err := d.Features(ctx)
	if err != nil {
		return err
	}
	if !strings.Contains(feat, "partuuid") {
		return errors.New("update: device does not support PARTUUID= root partitions (features " + feat + ")")
	}
	for _, s := range []struct {
		what string
		f    func() error
	}{
		{fmt.Sprintf("root file system (%d KiB) → inactive root partition", len(p.Root)>>10), func() error { return d.PutRoot(ctx, p.Root) }},
		{fmt.Sprintf("boot file system (%d KiB) → boot partition", len(p.Boot)>>10), func() error { return d.PutBoot(ctx, p.Boot) }},
		{"switch to the new root partition", func() error { return d.Switch(ctx) }},
	} {
		start := time.Now()
		if err := s.f(); err != nil {
			return err
		}
		fmt.Fprintf(progress, "%s (%.1fs)\n", s.what, time.Since(start).Seconds())
	}
	if !reboot {
		return nil
	}
	if err := d.Reboot(ctx); err != nil {
		return err
	}
	fmt.Fprintln(progress, "rebooting")
	return nil
}
