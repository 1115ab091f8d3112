package seclog

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRateLimitAndCount(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	for i := 0; i < 3*Burst; i++ {
		l.Event(PublishDenied, "publish denied", "client", "c1", "topic", "a/b")
	}
	if got, want := l.Count(PublishDenied), uint64(3*Burst); got != want {
		t.Errorf("Count: got %d, want %d", got, want)
	}
	if got, want := strings.Count(buf.String(), "\n"), Burst; got != want {
		t.Errorf("lines logged in one window: got %d, want %d\n%s", got, want, buf.String())
	}
	if !strings.Contains(buf.String(), "event=publish_denied") || !strings.Contains(buf.String(), "topic=a/b") {
		t.Errorf("line lacks the event or its attributes: %s", buf.String())
	}
	buf.Reset()
	now = now.Add(Window)
	l.Event(PublishDenied, "publish denied")
	if got := buf.String(); !strings.Contains(got, "suppressed=20") {
		t.Errorf("first line of the next window: got %q, want suppressed=20", got)
	}
	// Other kinds have their own budget.
	buf.Reset()
	l.Event(AuthFailed, "authentication failed")
	if !strings.Contains(buf.String(), "event=auth_failed") {
		t.Errorf("AuthFailed not logged: %q", buf.String())
	}
}

func TestNilLog(t *testing.T) {
	var l *Log
	l.Event(AuthFailed, "x")
	if l.Allow(AuthFailed) || l.Count(AuthFailed) != 0 {
		t.Error("a nil Log counted or allowed an event")
	}
}

func TestAllowDoesNotAllocate(t *testing.T) {
	l := New(nil, nil)
	for i := 0; i < Burst; i++ {
		l.Allow(SubscribeDenied)
	}
	if n := testing.AllocsPerRun(100, func() { l.Allow(SubscribeDenied) }); n != 0 {
		t.Errorf("Allow: %v allocations, want 0", n)
	}
}

func TestNames(t *testing.T) {
	for e := Event(0); e < NumEvents; e++ {
		if e.String() == "" {
			t.Errorf("event %d has no name", e)
		}
	}
}
