package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"edgebroker/tools/ssclient"
)

// TestSIGTERMKeepsAcknowledgedWrites: state store clients write as fast
// as they can; SIGTERM arrives mid-load; the binary exits 0 within
// gokrazy's budget, and after a restart every write the store
// acknowledged is there with its value.
func TestSIGTERMKeepsAcknowledgedWrites(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	addr, cmd, exited := runBinary(t, "-data", data)
	host, portS := splitHostPort(t, addr)
	port, _ := strconv.Atoi(portS)
	dial := func(ctx context.Context) *ssclient.Client {
		cl, err := ssclient.Dial(ctx, ssclient.Config{Host: host, Port: uint16(port), ConnectTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		return cl
	}

	const writers = 8
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for w := range writers {
		cl := dial(ctx)
		defer cl.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key, val := fmt.Sprintf("w%d-k%d", w, i), fmt.Sprintf("value %d of writer %d", i, w)
				cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := cl.Store.Set(cctx, []byte(key), []byte(val))
				ccancel()
				if err != nil {
					return // the broker went away: this write was not acknowledged
				}
				mu.Lock()
				acked[key] = val
				if len(acked) >= 400 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-ctx.Done():
		t.Fatal("writers did not get 400 writes acknowledged")
	}
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM under load: %v", err)
		}
		if d := time.Since(t0); d > 30*time.Second {
			t.Errorf("shutdown took %v, want under 30 s", d)
		}
	case <-time.After(35 * time.Second):
		t.Fatal("no exit within 35 s of SIGTERM")
	}
	wg.Wait()

	addr, _, _ = runBinary(t, "-data", data)
	host, portS = splitHostPort(t, addr)
	port, _ = strconv.Atoi(portS)
	cl := dial(ctx)
	defer cl.Close()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d acknowledged writes before SIGTERM", len(acked))
	for key, want := range acked {
		res, err := cl.Store.Get(ctx, []byte(key))
		if err != nil {
			t.Fatalf("get %s after restart: %v", key, err)
		}
		if string(res.Value) != want {
			t.Fatalf("key %s after restart: %q, want %q (acknowledged before SIGTERM)", key, res.Value, want)
		}
	}
}
