package broker

import (
	"testing"
	"time"
	"unsafe"

	"edgebroker/broker/packet"
)

// TestMessagePoolPerServer: a released Message goes back to the pool of
// the Server that made it; another Server never hands it out.
func TestMessagePoolPerServer(t *testing.T) {
	s1, s2 := New(Config{}), New(Config{})
	p := &packet.Publish{Topic: []byte("a/b"), Payload: []byte("x")}
	now := time.Now()
	m := s1.newMessage(p, now, nil)
	if m.pool != &s1.messages {
		t.Fatal("message not tied to the pool of the server that made it")
	}
	m.release()
	for range 100 {
		m2 := s2.newMessage(p, now, nil)
		if m2 == m {
			t.Fatal("a message released on one server was reused by another")
		}
		defer m2.release()
	}
}

// TestMessageSizeClass guards the claim that the pointer to the pool
// costs no memory: a Message stays in the runtime's 448-byte size class.
func TestMessageSizeClass(t *testing.T) {
	if n := unsafe.Sizeof(Message{}); n > 448 {
		t.Errorf("sizeof(Message) = %d B: past the 448-byte size class", n)
	}
}
