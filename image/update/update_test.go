package update

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"edgebroker/image/build"
)

// device answers like gokrazy's update handlers (update.go in
// github.com/gokrazy/gokrazy): basic auth as user gokrazy, PUT bodies
// written and answered with their SHA-256, POSTs for switch and reboot.
type device struct {
	password string
	badHash  bool

	mu    sync.Mutex
	calls []string
	got   map[string][]byte
}

func (d *device) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pw, ok := r.BasicAuth()
	if !ok || user != "gokrazy" || pw != d.password {
		http.Error(w, "invalid username/password", http.StatusUnauthorized)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, r.Method+" "+r.URL.Path)
	switch r.URL.Path {
	case "/update/features":
		io.WriteString(w, "partuuid,updatehash,")
	case "/update/root", "/update/boot":
		if r.Method != http.MethodPut {
			http.Error(w, "expected a PUT request", http.StatusBadRequest)
			return
		}
		b, _ := io.ReadAll(r.Body)
		d.got[r.URL.Path] = b
		sum := sha256.Sum256(b)
		if d.badHash {
			sum[0]++
		}
		fmt.Fprintf(w, "%x", sum)
	case "/update/switch", "/reboot":
		if r.Method != http.MethodPost {
			http.Error(w, "expected a POST request", http.StatusBadRequest)
		}
	default:
		http.NotFound(w, r)
	}
}

func newDevice(t *testing.T, d *device) *Device {
	d.got = map[string][]byte{}
	srv := httptest.NewServer(d) // 127.0.0.1
	t.Cleanup(srv.Close)
	return &Device{BaseURL: srv.URL, Password: d.password}
}

func TestPush(t *testing.T) {
	d := &device{password: "pw"}
	dev := newDevice(t, d)
	p := &Parts{Boot: []byte("boot fs"), Root: bytes.Repeat([]byte("root"), 4096)}
	var progress bytes.Buffer
	if err := Push(context.Background(), dev, p, true, &progress); err != nil {
		t.Fatal(err)
	}
	want := []string{"GET /update/features", "PUT /update/root", "PUT /update/boot", "POST /update/switch", "POST /reboot"}
	if fmt.Sprint(d.calls) != fmt.Sprint(want) {
		t.Errorf("calls = %q; want %q", d.calls, want)
	}
	if !bytes.Equal(d.got["/update/root"], p.Root) || !bytes.Equal(d.got["/update/boot"], p.Boot) {
		t.Error("device did not receive the root and boot file systems unchanged")
	}
	if !strings.Contains(progress.String(), "rebooting") {
		t.Errorf("progress = %q", progress.String())
	}
}

func TestPushNoReboot(t *testing.T) {
	d := &device{password: "pw"}
	if err := Push(context.Background(), newDevice(t, d), &Parts{Boot: []byte("b"), Root: []byte("r")}, false, nil); err != nil {
		t.Fatal(err)
	}
	if last := d.calls[len(d.calls)-1]; last != "POST /update/switch" {
		t.Errorf("last call %q; want the switch and no reboot", last)
	}
}

func TestPushErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    *device
		pw   string
		want string
	}{
		{"wrong password", &device{password: "pw"}, "nope", "401 Unauthorized"},
		{"hash mismatch", &device{password: "pw", badHash: true}, "pw", "device wrote SHA-256"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := newDevice(t, tc.d)
			dev.Password = tc.pw
			err := Push(context.Background(), dev, &Parts{Boot: []byte("b"), Root: []byte("r")}, true, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
			for _, c := range tc.d.calls {
				if c == "POST /update/switch" || c == "POST /reboot" {
					t.Errorf("%s after a failed write", c)
				}
			}
		})
	}
}

// TestReadImage reads the partitions of a synthetic image laid out like
// build.Build's.
func TestReadImage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.img")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(build.DefaultSize); err != nil {
		t.Fatal(err)
	}
	l := build.LayoutFor(build.DefaultSize)
	boot := make([]byte, 3000)
	boot[510], boot[511], boot[2999] = 0x55, 0xaa, 1
	f.WriteAt(boot, l.Start[build.PartBoot])
	sb := make([]byte, 96)
	copy(sb, "hsqs")
	binary.LittleEndian.PutUint64(sb[40:], 5000)
	f.WriteAt(sb, l.Start[build.PartRootA])
	f.WriteAt([]byte{7}, l.Start[build.PartRootA]+4999)
	f.Close()

	p, err := ReadImage(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Boot) != 3072 || p.Boot[2999] != 1 {
		t.Errorf("boot: %d bytes; want 3072 (the used sectors)", len(p.Boot))
	}
	if len(p.Root) != 8192 || p.Root[4999] != 7 || string(p.Root[:4]) != "hsqs" {
		t.Errorf("root: %d bytes; want 8192 (bytes_used rounded up to 4 KiB)", len(p.Root))
	}

	// Not a SquashFS: refused.
	f, _ = os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt([]byte("xxxx"), l.Start[build.PartRootA])
	f.Close()
	if _, err := ReadImage(path); err == nil || !strings.Contains(err.Error(), "not a SquashFS") {
		t.Errorf("err = %v; want not a SquashFS", err)
	}
}
