package mqttapi_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/testenv"
	"edgebroker/statestore"
	"edgebroker/statestore/mqttapi"
)

const wait = 5 * time.Second

type env struct {
	srv   *broker.Server
	store *statestore.Store
	svc   *mqttapi.Service
	addr  string
}

// newEnv runs a broker with the state store service on a loopback port.
// Keys starting with "ro/" are read-only and keys starting with "hidden/"
// neither readable nor writable.
func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvHooked(t, nil)
}

// newEnvHooked is newEnv with gone called in broker.Config.OnDisconnect
// before the service drops the client's registrations.
func newEnvHooked(t *testing.T, gone func(*broker.Client)) *env {
	t.Helper()
	var svcp atomic.Pointer[mqttapi.Service]
	st, err := statestore.Open(t.TempDir(), statestore.Options{
		MaxBytes:      4096,
		SweepInterval: 20 * time.Millisecond,
		OnChange: func(ev statestore.Event) {
			if s := svcp.Load(); s != nil {
				s.OnChange(ev)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := broker.New(broker.Config{OnDisconnect: func(c *broker.Client) {
		if gone != nil {
			gone(c)
		}
		if s := svcp.Load(); s != nil {
			s.ClientGone(c)
		}
	}})
	svc := mqttapi.New(srv, st, mqttapi.Options{Authorize: func(c *broker.Client, write bool, key []byte) bool {
		switch {
		case bytes.HasPrefix(key, []byte("hidden/")):
			return false
		case bytes.HasPrefix(key, []byte("ro/")):
			return !write
		}
		return true
	}})
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	svcp.Store(svc)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServePort(ln, &broker.Port{Name: "test"}) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		svc.Stop()
		if err := st.Close(); err != nil {
			t.Errorf("store Close: %v", err)
		}
	})
	return &env{srv: srv, store: st, svc: svc, addr: ln.Addr().String()}
}

type client struct {
	t    *testing.T
	id   string
	c    *paho.Client
	msgs chan *paho.Publish
	gone chan struct{}
	// held are messages call read while waiting for a response; next
	// returns them first.
	held []*paho.Publish
}

func (e *env) dial(t *testing.T, id string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", e.addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, id: id, msgs: make(chan *paho.Publish, 64), gone: make(chan struct{})}
	var once atomic.Bool
	lost := func() {
		if once.CompareAndSwap(false, true) {
			close(cl.gone)
		}
	}
	cl.c = paho.NewClient(paho.ClientConfig{
		Conn: testenv.LockedConn(nc),
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			cl.msgs <- pr.Packet
			return true, nil
		}},
		OnServerDisconnect: func(*paho.Disconnect) { lost() },
		OnClientError:      func(error) { lost() },
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := cl.c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "resp/" + id, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.c.Disconnect(&paho.Disconnect{}) })
	return cl
}

// hlcNow is a client HLC offset from now.
func hlcNow(d time.Duration) string {
	return fmt.Sprintf("%015d:%05d:%s", time.Now().Add(d).UnixMilli(), 0, "client")
}

// send publishes a request; props are user property key/value pairs.
func (cl *client) send(payload, responseTopic string, corr []byte, props ...string) {
	cl.t.Helper()
	p := &paho.Publish{QoS: 1, Topic: mqttapi.RequestTopic, Payload: []byte(payload), Properties: &paho.PublishProperties{
		ResponseTopic: responseTopic, CorrelationData: corr,
	}}
	for i := 0; i+1 < len(props); i += 2 {
		p.Properties.User.Add(props[i], props[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := cl.c.Publish(ctx, p); err != nil {
		cl.t.Fatalf("publish: %v", err)
	}
}

// call sends a request and returns its response.
func (cl *client) call(payload string, props ...string) *paho.Publish {
	cl.t.Helper()
	corr := make([]byte, 16)
	rand.Read(corr)
	cl.send(payload, "resp/"+cl.id, corr, props...)
	timeout := time.After(wait)
	for {
		select {
		case m := <-cl.msgs:
			if m.Topic != "resp/"+cl.id {
				cl.held = append(cl.held, m)
				continue
			}
			if !bytes.Equal(m.Properties.CorrelationData, corr) {
				cl.t.Fatalf("%q: correlation data %x, want %x", payload, m.Properties.CorrelationData, corr)
			}
			if got, want := m.QoS, byte(1); got != want {
				cl.t.Errorf("%q: response QoS %d, want %d", payload, got, want)
			}
			if got := m.Properties.User.Get("__stat"); got != "200" {
				cl.t.Errorf("%q: __stat %q, want 200", payload, got)
			}
			if got := m.Properties.User.Get("__protVer"); got != "1.0" {
				cl.t.Errorf("%q: __protVer %q, want 1.0", payload, got)
			}
			return m
		case <-timeout:
			cl.t.Fatalf("%q: no response", payload)
			return nil
		}
	}
}

// next returns the next message that is not a response.
func (cl *client) next(d time.Duration) *paho.Publish {
	if len(cl.held) > 0 {
		m := cl.held[0]
		cl.held = cl.held[1:]
		return m
	}
	timeout := time.After(d)
	for {
		select {
		case m := <-cl.msgs:
			if strings.HasPrefix(m.Topic, "resp/") {
				continue
			}
			return m
		case <-timeout:
			return nil
		}
	}
}

func resp(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

func ts(m *paho.Publish) string { return m.Properties.User.Get("__ts") }

func TestCommands(t *testing.T) {
	e := newEnv(t)
	c := e.dial(t, "c1")
	now := func() []string { return []string{"__ts", hlcNow(0)} }
	check := func(name string, m *paho.Publish, want string) {
		t.Helper()
		if got := string(m.Payload); got != want {
			t.Errorf("%s: payload %q, want %q", name, got, want)
		}
	}

	reqTS := hlcNow(0)
	set := c.call(resp("SET", "key1", "v1"), "__ts", reqTS)
	check("SET", set, "+OK\r\n")
	v1, err := statestore.ParseHLC(ts(set))
	if err != nil {
		t.Fatalf("SET __ts %q: %v", ts(set), err)
	}
	if rts, _ := statestore.ParseHLC(reqTS); v1.Compare(rts) <= 0 {
		t.Errorf("SET version %v not after the request's %v", v1, rts)
	}
	if got, want := string(set.Properties.ContentType), "application/octet-stream"; got != want {
		t.Errorf("content type %q, want %q", got, want)
	}
	get := c.call(resp("GET", "key1"), now()...)
	check("GET", get, "$2\r\nv1\r\n")
	if got, want := ts(get), ts(set); got != want {
		t.Errorf("GET __ts %q, want SET's %q", got, want)
	}
	miss := c.call(resp("GET", "nokey"))
	check("GET miss", miss, "$-1\r\n")
	if ts(miss) != "" {
		t.Errorf("GET miss has __ts %q", ts(miss))
	}
	check("GET empty value", c.call(resp("SET", "empty", ""), now()...), "+OK\r\n")
	check("GET empty value", c.call(resp("GET", "empty")), "$0\r\n\r\n")

	nx := c.call(resp("SET", "key1", "v2", "NX"), now()...)
	check("SET NX existing", nx, ":-1\r\n")
	if got, want := ts(nx), ts(set); got != want {
		t.Errorf("SET NX skipped: __ts %q, want the stored %q", got, want)
	}
	check("SET NX new", c.call(resp("set", "key2", "a", "nx"), now()...), "+OK\r\n")
	check("SET NEX other", c.call(resp("SET", "key2", "b", "NEX"), now()...), ":-1\r\n")
	check("SET NEX same", c.call(resp("SET", "key2", "a", "NEX", "PX", "10000"), now()...), "+OK\r\n")

	check("VDEL mismatch", c.call(resp("VDEL", "key2", "b"), now()...), ":-1\r\n")
	check("VDEL match", c.call(resp("VDEL", "key2", "a"), now()...), ":1\r\n")
	check("VDEL absent", c.call(resp("VDEL", "key2", "a"), now()...), ":0\r\n")
	del := c.call(resp("DEL", "key1"), now()...)
	check("DEL", del, ":1\r\n")
	if got, want := ts(del), ts(set); got != want {
		t.Errorf("DEL __ts %q, want the key's version %q", got, want)
	}
	check("DEL absent", c.call(resp("del", "key1")), ":0\r\n")

	// PX expiry.
	check("SET PX", c.call(resp("SET", "short", "x", "PX", "50"), now()...), "+OK\r\n")
	time.Sleep(120 * time.Millisecond)
	check("GET expired", c.call(resp("GET", "short")), "$-1\r\n")

	// Fencing.
	lock := c.call(resp("SET", "lock", "owner", "NEX", "PX", "10000"), now()...)
	check("lock", lock, "+OK\r\n")
	ft := ts(lock)
	check("SET fenced first", c.call(resp("SET", "res", "1"), append(now(), "__ft", ft)...), "+OK\r\n")
	check("SET fenced same", c.call(resp("SET", "res", "2"), append(now(), "__ft", ft)...), "+OK\r\n")
	check("GET fenced", c.call(resp("GET", "res")), "$1\r\n2\r\n")

	errs := []struct {
		name    string
		payload string
		props   []string
		text    string
	}{
		{"missing timestamp", resp("SET", "k", "v"), nil, "missing timestamp"},
		{"malformed timestamp", resp("SET", "k", "v"), []string{"__ts", "12:34"}, "malformed timestamp"},
		{"malformed timestamp GET", resp("GET", "k"), []string{"__ts", "x:0:n"}, "malformed timestamp"},
		{"malformed fencing", resp("SET", "k", "v"), append(now(), "__ft", "nope"), "malformed timestamp"},
		{"future timestamp", resp("SET", "k", "v"), []string{"__ts", hlcNow(2 * time.Minute)}, "the request timestamp is too far in the future; ensure that the client and broker system clocks are synchronized"},
		{"future fencing", resp("SET", "k", "v"), append(now(), "__ft", hlcNow(2*time.Minute)), "the request fencing token timestamp is too far in the future; ensure that the client and broker system clocks are synchronized"},
		{"fencing required", resp("SET", "res", "3"), now(), "a fencing token is required for this request"},
		{"fencing required DEL", resp("DEL", "res"), now(), "a fencing token is required for this request"},
		{"fencing lower", resp("VDEL", "res", "2"), append(now(), "__ft", "000000000000001:00000:old"), "the request fencing token is a lower version than the fencing token protecting the resource"},
		{"quota", resp("SET", "big", strings.Repeat("x", 5000)), now(), "the quota has been exceeded"},
		{"unknown command", resp("INCR", "k"), now(), "unknown command"},
		{"wrong number GET", resp("GET", "k", "extra"), now(), "wrong number of arguments"},
		{"wrong number SET", resp("SET", "k"), now(), "wrong number of arguments"},
		{"wrong number VDEL", resp("VDEL", "k"), now(), "wrong number of arguments"},
		{"wrong number KEYNOTIFY", resp("KEYNOTIFY"), now(), "wrong number of arguments"},
		{"syntax option", resp("SET", "k", "v", "XX"), now(), "syntax error"},
		{"syntax PX", resp("SET", "k", "v", "PX", "soon"), now(), "syntax error"},
		{"syntax PX missing", resp("SET", "k", "v", "PX"), now(), "syntax error"},
		{"syntax two conditions", resp("SET", "k", "v", "NX", "NEX"), now(), "syntax error"},
		{"syntax KEYNOTIFY", resp("KEYNOTIFY", "k", "GO"), now(), "syntax error"},
		{"syntax payload", "GET k\r\n", now(), "syntax error"},
		{"syntax truncated", "*2\r\n$3\r\nGET\r\n$5\r\nk\r\n", now(), "syntax error"},
		{"empty key", resp("GET", ""), now(), "the key length is zero"},
		{"not authorized write", resp("SET", "ro/k", "v"), now(), "not authorized"},
		{"not authorized DEL", resp("DEL", "ro/k"), now(), "not authorized"},
		{"not authorized read", resp("GET", "hidden/k"), now(), "not authorized"},
		{"not authorized KEYNOTIFY", resp("KEYNOTIFY", "hidden/k"), now(), "not authorized"},
	}
	for _, tc := range errs {
		m := c.call(tc.payload, tc.props...)
		check(tc.name, m, "-ERR "+tc.text+"\r\n")
	}
	check("read-only key readable", c.call(resp("GET", "ro/k")), "$-1\r\n")
	check("fenced value kept", c.call(resp("GET", "res")), "$1\r\n2\r\n")
	check("DEL fenced", c.call(resp("DEL", "res"), append(now(), "__ft", ft)...), ":1\r\n")
}

func TestKeyNotify(t *testing.T) {
	e := newEnv(t)
	w := e.dial(t, "client-id1")
	o := e.dial(t, "other")
	now := func() []string { return []string{"__ts", hlcNow(0)} }

	if got := string(w.call(resp("KEYNOTIFY", "SOMEKEY"), now()...).Payload); got != "+OK\r\n" {
		t.Fatalf("KEYNOTIFY: %q", got)
	}
	if got := string(w.call(resp("keynotify", "SOMEKEY"), now()...).Payload); got != "+OK\r\n" {
		t.Fatalf("KEYNOTIFY again: %q", got)
	}
	const topic = "clients/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/636C69656E742D696431/command/notify/534F4D454B4559"
	expect := func(what, payload, version string) {
		t.Helper()
		m := w.next(wait)
		if m == nil {
			t.Fatalf("%s: no notification", what)
		}
		if m.Topic != topic {
			t.Errorf("%s: topic %q, want %q", what, m.Topic, topic)
		}
		if m.QoS != 1 {
			t.Errorf("%s: QoS %d", what, m.QoS)
		}
		if string(m.Payload) != payload {
			t.Errorf("%s: payload %q, want %q", what, m.Payload, payload)
		}
		if version != "" && ts(m) != version {
			t.Errorf("%s: __ts %q, want %q", what, ts(m), version)
		}
		if _, err := statestore.ParseHLC(ts(m)); err != nil {
			t.Errorf("%s: __ts: %v", what, err)
		}
	}
	set := o.call(resp("SET", "SOMEKEY", "hello"), now()...)
	expect("SET", "*4\r\n$6\r\nNOTIFY\r\n$3\r\nSET\r\n$5\r\nVALUE\r\n$5\r\nhello\r\n", ts(set))
	w.call(resp("SET", "SOMEKEY", "mine"), now()...) // the watcher's own change too
	expect("own SET", "*4\r\n$6\r\nNOTIFY\r\n$3\r\nSET\r\n$5\r\nVALUE\r\n$4\r\nmine\r\n", "")
	o.call(resp("DEL", "SOMEKEY"), now()...)
	expect("DEL", "*2\r\n$6\r\nNOTIFY\r\n$6\r\nDELETE\r\n", "")
	o.call(resp("SET", "SOMEKEY", "v"), now()...)
	expect("SET", "*4\r\n$6\r\nNOTIFY\r\n$3\r\nSET\r\n$5\r\nVALUE\r\n$1\r\nv\r\n", "")
	o.call(resp("VDEL", "SOMEKEY", "v"), now()...)
	expect("VDEL", "*2\r\n$6\r\nNOTIFY\r\n$6\r\nDELETE\r\n", "")
	o.call(resp("SET", "SOMEKEY", "v", "PX", "50"), now()...)
	expect("SET PX", "*4\r\n$6\r\nNOTIFY\r\n$3\r\nSET\r\n$5\r\nVALUE\r\n$1\r\nv\r\n", "")
	expect("expiry", "*2\r\n$6\r\nNOTIFY\r\n$6\r\nDELETE\r\n", "")

	if got := string(w.call(resp("KEYNOTIFY", "SOMEKEY", "STOP"), now()...).Payload); got != "+OK\r\n" {
		t.Errorf("KEYNOTIFY STOP: %q", got)
	}
	if got := string(w.call(resp("KEYNOTIFY", "SOMEKEY", "stop"), now()...).Payload); got != ":0\r\n" {
		t.Errorf("KEYNOTIFY STOP again: %q", got)
	}
	o.call(resp("SET", "SOMEKEY", "after"), now()...)
	if m := w.next(200 * time.Millisecond); m != nil {
		t.Errorf("notification after STOP: %q %q", m.Topic, m.Payload)
	}

	// Registrations end with the connection.
	w.call(resp("KEYNOTIFY", "SOMEKEY"), now()...)
	w.c.Disconnect(&paho.Disconnect{})
	w2 := e.dial(t, "client-id1")
	o.call(resp("SET", "SOMEKEY", "later"), now()...)
	if m := w2.next(200 * time.Millisecond); m != nil {
		t.Errorf("notification after reconnect without KEYNOTIFY: %q %q", m.Topic, m.Payload)
	}
}

func TestInvalidRequests(t *testing.T) {
	e := newEnv(t)
	for _, rt := range []string{mqttapi.RequestTopic, mqttapi.ReservedPrefix + "/x/command/notify/00"} {
		c := e.dial(t, "bad")
		// The disconnect may come before the PUBACK: do not wait for it.
		go c.c.Publish(context.Background(), &paho.Publish{QoS: 1, Topic: mqttapi.RequestTopic, Payload: []byte(resp("GET", "k")),
			Properties: &paho.PublishProperties{ResponseTopic: rt, CorrelationData: []byte("0123456789abcdef")}})
		select {
		case <-c.gone:
		case <-time.After(wait):
			t.Errorf("response topic %q: client not disconnected", rt)
		}
	}
	// No correlation data: no response.
	c := e.dial(t, "nocorr")
	c.send(resp("GET", "k"), "resp/nocorr", nil)
	select {
	case m := <-c.msgs:
		t.Errorf("response to a request without correlation data: %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
	// QoS 0: no response.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := c.c.Publish(ctx, &paho.Publish{QoS: 0, Topic: mqttapi.RequestTopic, Payload: []byte(resp("GET", "k")),
		Properties: &paho.PublishProperties{ResponseTopic: "resp/nocorr", CorrelationData: []byte("x")}}); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	select {
	case m := <-c.msgs:
		t.Errorf("response to a QoS 0 request: %q", m.Payload)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestKeyNotifyLimit: one client watches at most MaxWatchesPerClient keys;
// the next KEYNOTIFY gets the quota error, a repeat of a watched key and
// a STOP still work, and another client has its own allowance.
func TestKeyNotifyLimit(t *testing.T) {
	e := newEnv(t)
	w := e.dial(t, "watcher")
	now := func() []string { return []string{"__ts", hlcNow(0)} }
	for i := range mqttapi.MaxWatchesPerClient {
		if got := string(w.call(resp("KEYNOTIFY", fmt.Sprintf("k%d", i)), now()...).Payload); got != "+OK\r\n" {
			t.Fatalf("KEYNOTIFY %d: %q", i, got)
		}
	}
	const quota = "-ERR the quota has been exceeded\r\n"
	if got := string(w.call(resp("KEYNOTIFY", "one-too-many"), now()...).Payload); got != quota {
		t.Errorf("KEYNOTIFY beyond the limit: got %q, want %q", got, quota)
	}
	if got := string(w.call(resp("KEYNOTIFY", "k7"), now()...).Payload); got != "+OK\r\n" {
		t.Errorf("KEYNOTIFY of a watched key at the limit: got %q", got)
	}
	if got := string(w.call(resp("KEYNOTIFY", "k7", "STOP"), now()...).Payload); got != "+OK\r\n" {
		t.Errorf("KEYNOTIFY STOP: got %q", got)
	}
	if got := string(w.call(resp("KEYNOTIFY", "one-too-many"), now()...).Payload); got != "+OK\r\n" {
		t.Errorf("KEYNOTIFY after a STOP freed a place: got %q", got)
	}
	o := e.dial(t, "other")
	if got := string(o.call(resp("KEYNOTIFY", "k1"), now()...).Payload); got != "+OK\r\n" {
		t.Errorf("another client's KEYNOTIFY: got %q", got)
	}
}

// TestKeyNotifyBytesLimit: the keys one client watches are bounded in
// bytes too (MaxWatchBytesPerClient), so a few long keys cannot hold
// megabytes each; a STOP gives their bytes back.
func TestKeyNotifyBytesLimit(t *testing.T) {
	e := newEnv(t)
	w := e.dial(t, "watcher")
	now := func() []string { return []string{"__ts", hlcNow(0)} }
	const size = 64 << 10
	key := func(i int) string { return fmt.Sprintf("%d%s", i, strings.Repeat("k", size-1)) }
	n := mqttapi.MaxWatchBytesPerClient / size
	for i := range n {
		if got := string(w.call(resp("KEYNOTIFY", key(i)), now()...).Payload); got != "+OK\r\n" {
			t.Fatalf("KEYNOTIFY %d: %q", i, got)
		}
	}
	const quota = "-ERR the quota has been exceeded\r\n"
	if got := string(w.call(resp("KEYNOTIFY", key(n)), now()...).Payload); got != quota {
		t.Errorf("KEYNOTIFY beyond the byte limit: got %q, want %q", got, quota)
	}
	if got := string(w.call(resp("KEYNOTIFY", key(0), "STOP"), now()...).Payload); got != "+OK\r\n" {
		t.Fatalf("KEYNOTIFY STOP: %q", got)
	}
	if got := string(w.call(resp("KEYNOTIFY", key(n)), now()...).Payload); got != "+OK\r\n" {
		t.Errorf("KEYNOTIFY after a STOP gave bytes back: got %q", got)
	}
}
