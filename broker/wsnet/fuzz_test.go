package wsnet

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// memConn is a net.Conn that reads a fixed stream, k bytes per Read at
// most, and discards what is written.
type memConn struct {
	net.Conn // nil: the methods below are all a Conn calls
	r        *bytes.Reader
	k        int
}

func (m *memConn) Read(p []byte) (int, error)        { return m.r.Read(p[:min(len(p), m.k)]) }
func (m *memConn) Write(p []byte) (int, error)       { return len(p), nil }
func (m *memConn) Close() error                      { return nil }
func (m *memConn) SetWriteDeadline(time.Time) error  { return nil }
func (m *memConn) SetReadDeadline(t time.Time) error { return nil }

// FuzzReadStream: any byte stream ends in an error or io.EOF, without a
// panic or a loop, in any pieces.
func FuzzReadStream(f *testing.F) {
	f.Add(ClientFrame(true, OpBinary, []byte("abc"), false), uint8(1))
	f.Add(append(ClientFrame(false, OpBinary, []byte("a"), false), ClientFrame(true, OpContinuation, []byte("b"), false)...), uint8(3))
	f.Add(ClientFrame(true, OpPing, []byte("p"), false), uint8(2))
	f.Add(ClientFrame(true, OpClose, []byte{3, 0xe8}, false), uint8(7))
	f.Add(ClientFrame(true, OpText, []byte("t"), false), uint8(1))
	f.Fuzz(func(t *testing.T, stream []byte, k uint8) {
		c := newConn(&memConn{r: bytes.NewReader(stream), k: int(k%16) + 1}, nil, nil)
		p := make([]byte, 7)
		for range len(stream) + 2 { // each Read consumes a byte or ends
			if _, err := c.Read(p); err != nil {
				return
			}
		}
		t.Fatal("Read neither consumed the stream nor ended")
	})
}

// FuzzFrameRoundTrip: a payload cut into a fragmented message at the
// given points, with pings between the fragments, reads back whole.
func FuzzFrameRoundTrip(f *testing.F) {
	f.Add([]byte("hello, mqtt"), []byte{3, 0, 5}, uint8(1))
	f.Add(make([]byte, 300), []byte{200}, uint8(9))
	f.Fuzz(func(t *testing.T, payload, cuts []byte, k uint8) {
		var stream []byte
		rest := payload
		op := byte(OpBinary)
		for _, cut := range cuts {
			n := min(int(cut), len(rest))
			stream = append(stream, ClientFrame(false, op, rest[:n], false)...)
			stream = append(stream, ClientFrame(true, OpPing, rest[:min(n, maxControl)], false)...)
			rest, op = rest[n:], OpContinuation
		}
		stream = append(stream, ClientFrame(true, op, rest, false)...)
		c := newConn(&memConn{r: bytes.NewReader(stream), k: int(k%32) + 1}, nil, nil)
		got, err := io.ReadAll(c)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if !bytes.Equal(got, payload) {
			t.Fatalf("read %d bytes, want %d", len(got), len(payload))
		}
	})
}
