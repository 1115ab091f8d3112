package mqttapi_test

import (
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/seclog"
)

// TestKeyNotifyBelongsToSession: a KEYNOTIFY registration belongs to the
// connection that made it, not to its client ID. The registering client
// disconnects; before the broker has finished with the old connection
// (OnDisconnect held), a new clean session with the same ID connects and
// the key changes: the new session gets no notification.
func TestKeyNotifyBelongsToSession(t *testing.T) {
	// Every "watcher" connection that ends waits in OnDisconnect until
	// the test returns: its registrations stay until then.
	release := make(chan struct{})
	held := make(chan struct{}, 8)
	e := newEnvHooked(t, func(c *broker.Client) {
		if c.ID == "watcher" {
			held <- struct{}{}
			<-release
		}
	})
	defer close(release)
	w := e.dial(t, "watcher")
	o := e.dial(t, "other")
	if got := string(w.call(resp("KEYNOTIFY", "k"), "__ts", hlcNow(0)).Payload); got != "+OK\r\n" {
		t.Fatalf("KEYNOTIFY: %q", got)
	}
	o.call(resp("SET", "k", "before"), "__ts", hlcNow(0))
	if m := w.next(wait); m == nil || string(m.Payload) != "*4\r\n$6\r\nNOTIFY\r\n$3\r\nSET\r\n$5\r\nVALUE\r\n$6\r\nbefore\r\n" {
		t.Fatalf("registered watcher: notification %v", m)
	}
	w.c.Disconnect(&paho.Disconnect{})
	select {
	case <-held: // the old connection ended; its registration is not dropped yet
	case <-time.After(wait):
		t.Fatal("watcher's disconnect not seen")
	}
	w2 := e.dial(t, "watcher")
	o.call(resp("SET", "k", "after"), "__ts", hlcNow(0))
	if m := w2.next(300 * time.Millisecond); m != nil {
		t.Errorf("new session with the watcher's ID got %q %q", m.Topic, m.Payload)
	}

	// A takeover: the same ID connects while the registering connection
	// is still online.
	if got := string(w2.call(resp("KEYNOTIFY", "k"), "__ts", hlcNow(0)).Payload); got != "+OK\r\n" {
		t.Fatalf("KEYNOTIFY: %q", got)
	}
	w3 := e.dial(t, "watcher")
	o.call(resp("SET", "k", "taken"), "__ts", hlcNow(0))
	if m := w3.next(300 * time.Millisecond); m != nil {
		t.Errorf("session that took over the watcher's ID got %q %q", m.Topic, m.Payload)
	}
}

// TestResponseTopicRefused: a request whose response topic starts with
// '$' is not executed and answers nothing; it is counted, and the client
// stays connected.
func TestResponseTopicRefused(t *testing.T) {
	e := newEnv(t)
	leaked := make(chan string, 4)
	unsub, err := e.srv.Subscribe("$SYS/#", 1, func(m *broker.Message) { leaked <- string(m.Payload) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	c := e.dial(t, "asker")
	c.send(resp("SET", "k", "v"), "$SYS/x", []byte("0123456789abcdef"), "__ts", hlcNow(0))
	if got := string(c.call(resp("GET", "k")).Payload); got != "$-1\r\n" {
		t.Errorf("GET after the refused SET: %q, want a miss", got)
	}
	select {
	case p := <-leaked:
		t.Errorf("response published on $SYS/x: %q", p)
	default:
	}
	select {
	case <-c.gone:
		t.Error("client disconnected")
	default:
	}
	if got := e.srv.Security().Count(seclog.ResponseTopicRefused); got != 1 {
		t.Errorf("%d response_topic_refused events, want 1", got)
	}
}

// TestQuotaRefusalCounted: a SET refused by a quota answers the protocol's
// error and is counted as limit_statestore.
func TestQuotaRefusalCounted(t *testing.T) {
	e := newEnv(t) // MaxBytes 4096
	c := e.dial(t, "filler")
	big := make([]byte, 5000)
	if got := string(c.call(resp("SET", "big", string(big)), "__ts", hlcNow(0)).Payload); got != "-ERR the quota has been exceeded\r\n" {
		t.Fatalf("SET beyond the quota: %q", got)
	}
	if got := e.srv.Security().Count(seclog.LimitStateStore); got != 1 {
		t.Errorf("%d limit_statestore events, want 1", got)
	}
}
