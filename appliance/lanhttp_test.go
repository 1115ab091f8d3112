package appliance_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance"
)

// TestStatusEndpointLimits: the status endpoint refuses large request
// headers (431) instead of buffering a megabyte per socket, and serves
// at most 64 connections at once: with 64 silent sockets open, another
// client waits until one goes.
func TestStatusEndpointLimits(t *testing.T) {
	a, _, stop := launch(t, appliance.Config{DataDir: t.TempDir(), Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}, StatusAddr: "127.0.0.1:0"})
	defer stop()
	addr := a.StatusAddr().String()
	dial := func() net.Conn {
		t.Helper()
		nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	get := func(nc net.Conn, header string, d time.Duration) (*http.Response, error) {
		nc.SetDeadline(time.Now().Add(d))
		go nc.Write([]byte("GET /status.json HTTP/1.1\r\nHost: x\r\n" + header + "\r\n"))
		return http.ReadResponse(bufio.NewReader(nc), nil)
	}

	resp, err := get(dial(), "X-Pad: "+strings.Repeat("p", 64<<10)+"\r\n", 5*time.Second)
	if err != nil || resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("64 KiB of headers: %v %v, want 431", resp, err)
	}

	var held []net.Conn
	for range 64 {
		held = append(held, dial())
	}
	waiting := dial()
	if _, err := get(waiting, "", 300*time.Millisecond); err == nil {
		t.Fatal("a 65th connection was served while 64 were open")
	}
	held[0].Close()
	waiting.SetDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(bufio.NewReader(waiting), nil); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the waiting connection, after one of the 64 closed: %v %v", resp, err)
	}
}
