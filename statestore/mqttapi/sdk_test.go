package mqttapi_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/Azure/iot-operations-sdks/go/mqtt"
	"github.com/Azure/iot-operations-sdks/go/protocol"
	"github.com/Azure/iot-operations-sdks/go/services/statestore"

	"edgebroker/broker/packet"
)

// sdkClient connects the AIO SDK's session client and state store client.
func (e *env) sdkClient(t *testing.T, id string) *statestore.Client[string, string] {
	t.Helper()
	host, port, _ := net.SplitHostPort(e.addr)
	pn, _ := strconv.Atoi(port)
	mc, err := mqtt.NewSessionClient(id, mqtt.TCPConnection(host, uint16(pn)))
	if err != nil {
		t.Fatal(err)
	}
	app, err := protocol.NewApplication()
	if err != nil {
		t.Fatal(err)
	}
	ss, err := statestore.New[string, string](app, mc)
	if err != nil {
		t.Fatal(err)
	}
	if err := mc.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := ss.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ss.Close()
		mc.Stop()
	})
	return ss
}

func TestSDK(t *testing.T) {
	e := newEnv(t)
	ss := e.sdkClient(t, "sdk-client")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	set, err := ss.Set(ctx, "key1", "value1")
	if err != nil || !set.Value {
		t.Fatalf("Set: %+v, %v", set, err)
	}
	get, err := ss.Get(ctx, "key1")
	if err != nil || get.Value != "value1" || get.Version.Compare(set.Version) != 0 {
		t.Fatalf("Get: %+v, %v (set version %v)", get, err, set.Version)
	}
	miss, err := ss.Get(ctx, "nokey")
	if err != nil || miss.Value != "" || !miss.Version.IsZero() {
		t.Errorf("Get miss: %+v, %v", miss, err)
	}

	// NX / NEX (the SDK integration test's expectations).
	if r, err := ss.Set(ctx, "nx", "a", statestore.WithCondition(statestore.NotExists)); err != nil || !r.Value {
		t.Errorf("Set NX new: %+v, %v", r, err)
	}
	if r, err := ss.Set(ctx, "nx", "a", statestore.WithCondition(statestore.NotExists)); err != nil || r.Value {
		t.Errorf("Set NX again: %+v, %v", r, err)
	}
	if r, err := ss.Set(ctx, "nx", "b", statestore.WithCondition(statestore.NotExistsOrEqual)); err != nil || r.Value {
		t.Errorf("Set NEX other: %+v, %v", r, err)
	}
	if r, err := ss.Set(ctx, "nx", "a", statestore.WithCondition(statestore.NotExistsOrEqual)); err != nil || !r.Value {
		t.Errorf("Set NEX same: %+v, %v", r, err)
	}

	// VDEL and DEL.
	for _, tc := range []struct {
		val  string
		want int
	}{{"wrong", -1}, {"a", 1}, {"a", 0}} {
		if r, err := ss.VDel(ctx, "nx", tc.val); err != nil || r.Value != tc.want {
			t.Errorf("VDel %q: %+v, %v; want %d", tc.val, r, err, tc.want)
		}
	}
	if r, err := ss.Del(ctx, "key1"); err != nil || r.Value != 1 {
		t.Errorf("Del: %+v, %v", r, err)
	}
	if r, err := ss.Del(ctx, "key1"); err != nil || r.Value != 0 {
		t.Errorf("Del again: %+v, %v", r, err)
	}

	// Fencing: a lock's version protects a resource.
	lock, err := ss.Set(ctx, "lock", "me", statestore.WithCondition(statestore.NotExistsOrEqual), statestore.WithExpiry(10*time.Second))
	if err != nil || !lock.Value {
		t.Fatalf("lock: %+v, %v", lock, err)
	}
	if r, err := ss.Set(ctx, "res", "1", statestore.WithFencingToken(lock.Version)); err != nil || !r.Value {
		t.Errorf("fenced Set: %+v, %v", r, err)
	}
	_, err = ss.Set(ctx, "res", "2")
	var se statestore.ServiceError
	if !errors.As(err, &se) || string(se) != "a fencing token is required for this request" {
		t.Errorf("unfenced Set: %v, want the fencing token service error", err)
	}
	if r, err := ss.Del(ctx, "res", statestore.WithFencingToken(lock.Version)); err != nil || r.Value != 1 {
		t.Errorf("fenced Del: %+v, %v", r, err)
	}

	// Notifications, including the DELETE of an expiry. The SDK sends
	// each notification to its channel while holding its KEYNOTIFY lock
	// (and, after a reconnect, one it makes up from a GET): a test that
	// stops reading while a notification is pending deadlocks its next
	// KeyNotify call. Read them all into a buffer.
	sdkCh, stop := ss.Notify("watched")
	defer stop()
	ch := make(chan statestore.Notify[string, string], 256)
	go func() {
		for n := range sdkCh {
			select {
			case ch <- n:
			default:
				t.Error("more notifications than the test can hold")
			}
		}
	}()
	if err := ss.KeyNotify(ctx, "watched"); err != nil {
		t.Fatalf("KeyNotify: %v", err)
	}
	other := e.sdkClient(t, "sdk-other")
	want := func(op, val string) {
		t.Helper()
		select {
		case n := <-ch:
			if n.Key != "watched" || n.Operation != op || n.Value != val || n.Version.IsZero() {
				t.Errorf("notification %+v, want %s %q", n, op, val)
			}
		case <-time.After(wait):
			t.Fatalf("no %s notification", op)
		}
	}
	if _, err := other.Set(ctx, "watched", "v1"); err != nil {
		t.Fatal(err)
	}
	want("SET", "v1")
	if _, err := other.Del(ctx, "watched"); err != nil {
		t.Fatal(err)
	}
	want("DELETE", "")
	if _, err := other.Set(ctx, "watched", "short", statestore.WithExpiry(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	want("SET", "short")
	want("DELETE", "") // expiry
	if r, err := ss.Get(ctx, "watched"); err != nil || r.Value != "" {
		t.Errorf("Get after expiry: %+v, %v", r, err)
	}

	// A dropped connection: the session client reconnects, the broker
	// keeps its session (no SessionLostError), the SDK registers its
	// KEYNOTIFY again and notifications flow.
	if !e.srv.Disconnect("sdk-client", packet.AdministrativeAction) {
		t.Fatal("sdk-client not connected")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := other.Set(ctx, "watched", "after")
		if err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-ch:
			if n.Operation == "SET" && n.Value == "after" {
				goto reconnected
			}
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no notification after reconnect")
		}
	}
reconnected:
	if r, err := ss.Get(ctx, "watched"); err != nil || r.Value != "after" {
		t.Errorf("Get after reconnect: %+v, %v", r, err)
	}
	if err := ss.KeyNotifyStop(ctx, "watched"); err != nil {
		t.Errorf("KeyNotifyStop: %v", err)
	}
}
