package mqttapi_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/seclog"
	"edgebroker/statestore/mqttapi"
)

// holdStore makes e's store slow: every request waits in its worker until
// the returned release is called; entered reports each request that
// started waiting.
func holdStore(t *testing.T, e *env) (entered <-chan struct{}, release func()) {
	in := make(chan struct{}, 1024)
	hold := make(chan struct{})
	mqttapi.SetHold(e.svc, func() {
		in <- struct{}{}
		<-hold
	})
	released := false
	release = func() {
		if !released {
			released = true
			close(hold)
		}
	}
	t.Cleanup(release)
	return in, release
}

// sendCorr publishes a request with correlation data corr (returning
// once it is PUBACKed) and how long the PUBACK took.
func (cl *client) sendCorr(payload, corr string) time.Duration {
	cl.t.Helper()
	t0 := time.Now()
	cl.send(payload, "resp/"+cl.id, []byte(corr), "__ts", hlcNow(0))
	return time.Since(t0)
}

// responses collects n responses, in arrival order.
func (cl *client) responses(n int) []*paho.Publish {
	cl.t.Helper()
	var out []*paho.Publish
	timeout := time.After(wait)
	for len(out) < n {
		select {
		case m := <-cl.msgs:
			if m.Topic == "resp/"+cl.id {
				out = append(out, m)
			}
		case <-timeout:
			cl.t.Fatalf("%d of %d responses", len(out), n)
		}
	}
	return out
}

// TestSlowStoreBlocksNoPublisher: while the store is slow (a request
// waits in its worker), the requester still gets its PUBACKs and its
// other messages through, and another subscriber of the request topic
// gets the request at once; once the store moves, the requester's
// requests are answered in the order it sent them.
func TestSlowStoreBlocksNoPublisher(t *testing.T) {
	e := newEnv(t)
	entered, release := holdStore(t, e)
	watcher := e.dial(t, "watcher")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if _, err := watcher.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: mqttapi.RequestTopic, QoS: 1}, {Topic: "other/topic", QoS: 1},
	}}); err != nil {
		t.Fatal(err)
	}
	c := e.dial(t, "requester")

	c.sendCorr(resp("SET", "k", "v1"), "1") // fails the test without a PUBACK within wait
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the request did not reach the store")
	}
	if m := watcher.next(wait); m == nil || m.Topic != mqttapi.RequestTopic {
		t.Fatalf("the request topic's other subscriber got %v, want the request", m)
	}
	// The store is still held: the requester's reader is free.
	c.sendCorr(resp("SET", "k", "v2"), "2")
	c.sendCorr(resp("GET", "k"), "3")
	ctx2, cancel2 := context.WithTimeout(context.Background(), wait)
	defer cancel2()
	if _, err := c.c.Publish(ctx2, &paho.Publish{QoS: 1, Topic: "other/topic", Payload: []byte("hello")}); err != nil {
		t.Fatalf("publish beside a held request: %v", err)
	}
	for range 2 { // the two requests, then the message
		if m := watcher.next(wait); m == nil {
			t.Fatal("a message of the requester did not arrive while its request waited")
		} else if m.Topic == "other/topic" {
			break
		}
	}
	release()
	got := c.responses(3)
	var order []string
	for _, m := range got {
		order = append(order, string(m.Properties.CorrelationData))
	}
	if strings.Join(order, ",") != "1,2,3" {
		t.Errorf("responses in order %v, want 1,2,3", order)
	}
	if p := string(got[2].Payload); p != "$2\r\nv2\r\n" {
		t.Errorf("GET after two SETs: %q, want v2 (executed in order)", p)
	}
}

// TestRequestQueueFull: requests beyond MaxRequestQueueBytes (while the
// store is held) are answered with BusyText, in their order, and
// counted; once the queue drains, requests are executed again.
func TestRequestQueueFull(t *testing.T) {
	e := newEnv(t)
	entered, release := holdStore(t, e)
	c := e.dial(t, "flood")
	big := strings.Repeat("x", 256<<10) // not a RESP array: a syntax error, once executed
	n := mqttapi.MaxRequestQueueBytes/len(big) + 4
	for i := range n {
		c.sendCorr(big, fmt.Sprint(i))
		if i == 0 {
			<-entered
		}
	}
	busyBefore := e.srv.Security().Count(seclog.LimitQueue)
	if busyBefore == 0 {
		t.Error("no request was refused for the full queue")
	}
	release()
	busy := []byte("-ERR " + mqttapi.BusyText + "\r\n")
	sawBusy := false
	for i, m := range c.responses(n) {
		if got := string(m.Properties.CorrelationData); got != fmt.Sprint(i) {
			t.Fatalf("response %d answers request %s", i, got)
		}
		isBusy := bytes.Equal(m.Payload, busy)
		switch {
		case isBusy:
			sawBusy = true
		case sawBusy:
			t.Errorf("request %d executed after an earlier one was refused: %q", i, m.Payload)
		case i == 0 && !bytes.HasPrefix(m.Payload, []byte("-ERR syntax error")):
			t.Errorf("request 0: %q, want it executed", m.Payload)
		}
	}
	if !sawBusy {
		t.Errorf("no busy answer for %d requests of %d bytes", n, len(big))
	}
	if got := c.call(resp("SET", "after", "v"), "__ts", hlcNow(0)); string(got.Payload) != "+OK\r\n" {
		t.Errorf("SET once the queue drained: %q", got.Payload)
	}
}

// TestKeynotifyOfGoneConnection: a KEYNOTIFY still queued when its
// connection ends registers nothing (the registration would outlive the
// connection that ClientGone already cleaned up after).
func TestKeynotifyOfGoneConnection(t *testing.T) {
	var svc atomic.Pointer[mqttapi.Service]
	gone := make(chan struct{}, 1)
	e := newEnvHooked(t, func(c *broker.Client) {
		if c.ID == "short" {
			svc.Load().ClientGone(c) // what OnDisconnect does next, done here so the test knows it is done
			gone <- struct{}{}
		}
	})
	svc.Store(e.svc)
	entered, release := holdStore(t, e)
	c := e.dial(t, "short")
	c.sendCorr(resp("KEYNOTIFY", "watched"), "1")
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("the KEYNOTIFY did not reach its worker")
	}
	c.c.Disconnect(&paho.Disconnect{})
	select {
	case <-gone:
	case <-time.After(wait):
		t.Fatal("the connection did not end")
	}
	release()
	deadline := time.Now().Add(wait)
	for mqttapi.Queued(e.svc) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the KEYNOTIFY was not executed")
		}
		time.Sleep(5 * time.Millisecond) // no event tells when a worker finished a request whose client is gone
	}
	if n := mqttapi.Watches(e.svc, "short"); n != 0 {
		t.Errorf("the ended connection watches %d keys", n)
	}
}
