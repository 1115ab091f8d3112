package wsnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// pipe returns a Conn over one end of a net.Pipe and the client's end. A
// pipe hands each Write to the reader on its own, so writing a stream in
// small pieces makes every header, mask and payload arrive split.
func pipe(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	s, cl := net.Pipe()
	c := newConn(s, nil, nil)
	t.Cleanup(func() { cl.Close(); s.Close() })
	return c, cl
}

// send writes stream in pieces of size k on a goroutine.
func send(cl net.Conn, stream []byte, k int) {
	go func() {
		for len(stream) > 0 {
			n := min(k, len(stream))
			if _, err := cl.Write(stream[:n]); err != nil {
				return
			}
			stream = stream[n:]
		}
	}()
}

type frame struct {
	fin     bool
	op      byte
	payload []byte
}

// receive collects the frames the server sends on cl.
func receive(cl net.Conn) <-chan frame {
	ch := make(chan frame, 16)
	go func() {
		defer close(ch)
		for {
			fin, op, p, err := ReadServerFrame(cl)
			if err != nil {
				return
			}
			ch <- frame{fin, op, p}
		}
	}()
	return ch
}

func next(t *testing.T, ch <-chan frame) frame {
	t.Helper()
	select {
	case f, ok := <-ch:
		if !ok {
			t.Fatal("the server sent no frame")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("no frame from the server within 5 s")
	}
	return frame{}
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// TestReadFrames: the payloads of fragmented and unfragmented binary
// frames of every length encoding come out as one stream, whatever the
// pieces the socket delivers, with a ping answered in the middle of a
// fragmented message and a pong ignored.
func TestReadFrames(t *testing.T) {
	a, b, big := []byte{0x10, 0x0c}, seq(200), seq(70000)
	var stream, want []byte
	stream = append(stream, ClientFrame(false, OpBinary, a, false)...)
	stream = append(stream, ClientFrame(true, OpPing, []byte("p1"), false)...)
	stream = append(stream, ClientFrame(false, OpContinuation, b, false)...)
	stream = append(stream, ClientFrame(true, OpContinuation, big, false)...)
	stream = append(stream, ClientFrame(true, OpPong, []byte("x"), false)...)
	stream = append(stream, ClientFrame(true, OpBinary, nil, false)...)
	stream = append(stream, ClientFrame(true, OpBinary, []byte("tail"), false)...)
	want = append(append(append(append(want, a...), b...), big...), "tail"...)
	for _, k := range []int{1, 5, 1 << 20} {
		c, cl := pipe(t)
		frames := receive(cl)
		send(cl, stream, k)
		got := make([]byte, 0, len(want))
		p := make([]byte, 97)
		for len(got) < len(want) {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(p)
			if err != nil {
				t.Fatalf("pieces of %d: Read after %d bytes: %v", k, len(got), err)
			}
			got = append(got, p[:n]...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("pieces of %d: the payload differs", k)
		}
		if f := next(t, frames); f.op != OpPong || !f.fin || string(f.payload) != "p1" {
			t.Errorf("pieces of %d: got frame op %#x %q, want pong \"p1\"", k, f.op, f.payload)
		}
		if !c.Idle() {
			t.Errorf("pieces of %d: not idle after everything was read", k)
		}
	}
}

// TestRefusedFrames: what MQTT or RFC 6455 forbids ends the connection
// with a close frame and its status code.
func TestRefusedFrames(t *testing.T) {
	start := ClientFrame(false, OpBinary, []byte{1}, false)
	rsv := ClientFrame(true, OpBinary, []byte{1}, false)
	rsv[0] |= 0x40
	for _, tc := range []struct {
		name   string
		stream []byte
		code   uint16
	}{
		{"text", ClientFrame(true, OpText, []byte("{}"), false), 1003},
		{"unmasked", ClientFrame(true, OpBinary, []byte{1}, true), 1002},
		{"reserved data opcode", ClientFrame(true, 0x3, []byte{1}, false), 1002},
		{"reserved control opcode", ClientFrame(true, 0xb, nil, false), 1002},
		{"reserved bit", rsv, 1002},
		{"long ping", ClientFrame(true, OpPing, seq(126), false), 1002},
		{"fragmented ping", ClientFrame(false, OpPing, nil, false), 1002},
		{"close with a 1-byte body", ClientFrame(true, OpClose, []byte{3}, false), 1002},
		{"continuation first", ClientFrame(true, OpContinuation, []byte{1}, false), 1002},
		{"binary inside a fragmented message", append(start, ClientFrame(true, OpBinary, []byte{2}, false)...), 1002},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cl := pipe(t)
			frames := receive(cl)
			send(cl, tc.stream, 1<<20)
			p := make([]byte, 64)
			var err error
			for err == nil {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, err = c.Read(p)
			}
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("Read: %v, want ErrProtocol", err)
			}
			f := next(t, frames)
			if f.op != OpClose || len(f.payload) < 2 {
				t.Fatalf("got op %#x % x, want a close frame with a code", f.op, f.payload)
			}
			if got := binary.BigEndian.Uint16(f.payload); got != tc.code {
				t.Errorf("close code %d, want %d", got, tc.code)
			}
		})
	}
}

// TestCloseFrame: a client's close is answered with a close carrying its
// code, Read then returns io.EOF, and Close sends no second close.
func TestCloseFrame(t *testing.T) {
	c, cl := pipe(t)
	frames := receive(cl)
	stream := append(ClientFrame(true, OpBinary, []byte("ab"), false),
		ClientFrame(true, OpClose, append([]byte{0x03, 0xe8}, "bye"...), false)...)
	send(cl, stream, 3)
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "ab" {
		t.Fatalf("read %q, %v; want \"ab\" and io.EOF", got, err)
	}
	f := next(t, frames)
	if f.op != OpClose || !bytes.Equal(f.payload, []byte{0x03, 0xe8}) {
		t.Fatalf("got op %#x % x, want close 1000", f.op, f.payload)
	}
	c.Close()
	if f, ok := <-frames; ok {
		t.Errorf("a frame after the close: op %#x", f.op)
	}
}

// TestWriteFrames: every Write is one unmasked binary frame, whatever its
// length encoding.
func TestWriteFrames(t *testing.T) {
	c, cl := pipe(t)
	frames := receive(cl)
	for _, n := range []int{0, 125, 126, 65535, 65536} {
		p := seq(n)
		go c.Write(p)
		f := next(t, frames)
		if !f.fin || f.op != OpBinary || !bytes.Equal(f.payload, p) {
			t.Errorf("Write of %d bytes: got fin %v op %#x and %d bytes", n, f.fin, f.op, len(f.payload))
		}
	}
}

// TestIdleHoldsNoBuffer: a Conn holds a read buffer only while bytes wait
// in it; a header read in part is kept in the frame state.
func TestIdleHoldsNoBuffer(t *testing.T) {
	c, cl := pipe(t)
	receive(cl)
	f := ClientFrame(true, OpBinary, seq(300), false)
	send(cl, append(f, ClientFrame(true, OpBinary, seq(10), false)[:3]...), 1<<20)
	p := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, p); err != nil {
		t.Fatal(err)
	}
	if c.Idle() {
		t.Fatal("idle with 200 payload bytes buffered")
	}
	if _, err := io.ReadFull(c, p[:100]); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(c, p[:100]); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(p); !errors.Is(err, net.ErrClosed) && !isTimeout(err) {
		t.Fatalf("Read with only a partial header: %v, want a timeout", err)
	}
	if !c.Idle() {
		t.Fatal("a partial header holds the buffer")
	}
	if c.hn != 3 {
		t.Fatalf("%d header bytes kept, want 3", c.hn)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestPongWait: a client that pings and reads nothing holds the reader
// only pongWait in a pong's write, when no write deadline was set.
func TestPongWait(t *testing.T) {
	defer func(d time.Duration) { pongWait = d }(pongWait)
	pongWait = 50 * time.Millisecond
	c, cl := pipe(t) // a pipe takes nothing nobody reads
	send(cl, ClientFrame(true, OpPing, []byte("x"), false), 1<<20)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		done <- err
	}()
	select {
	case err := <-done:
		if !isTimeout(err) {
			t.Errorf("Read: %v, want the pong's write timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked in the pong's write after 5 s")
	}
}
