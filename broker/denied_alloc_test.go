package broker

import (
	"runtime"
	"testing"

	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
)

// denyPublish allows subscribing and no publishing.
type denyPublish struct{}

func (denyPublish) AllowPublish([]byte) bool   { return false }
func (denyPublish) AllowSubscribe([]byte) bool { return true }

// TestDeniedPublishAllocs: a client hammering a topic it may not publish
// to costs a count per message, and no allocation once the security log's
// rate limit suppresses the lines.
func TestDeniedPublishAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	for _, v := range []byte{packet.V311, packet.V5} {
		s := New(Config{})
		c := fakeClient(t, s, "hammer", v)
		c.perms = denyPublish{}
		h, body := publishBytes(v, 1)
		c.rbuf = make([]byte, len(body))
		step := func() {
			buf := c.rbuf[:len(body)]
			copy(buf, body)
			if err := c.handle(h, buf); err != nil {
				t.Fatal(err)
			}
			for c.pendingBytes() > 0 {
				runtime.Gosched()
			}
		}
		for range 200 { // past the burst: lines suppressed from here on
			step()
		}
		if got := testing.AllocsPerRun(200, step); got != 0 {
			t.Errorf("v%d: allocs per denied publish = %v, want 0", v, got)
		}
		if n := s.Security().Count(seclog.PublishDenied); n != 200+201 {
			t.Errorf("v%d: publish_denied counted %d, want %d", v, n, 200+201)
		}
	}
}
