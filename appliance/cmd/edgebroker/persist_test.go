package main

import (
	"fmt"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestSIGTERMKeepsRetainedAndSessions: a retained message, a persistent
// 3.1.1 session and a message queued for it while offline survive SIGTERM
// and a restart of the binary on the same data directory.
func TestSIGTERMKeepsRetainedAndSessions(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	got := make(chan mqtt.Message, 10)
	client := func(addr, id string, clean bool) (mqtt.Client, bool) {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
			SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetOrderMatters(true).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m }))
		tok := c.Connect()
		ok(t, "connect "+id, tok)
		t.Cleanup(func() { c.Disconnect(0) })
		return c, tok.(*mqtt.ConnectToken).SessionPresent()
	}

	addr, cmd, exited := runBinary(t, "-data", data)
	pub, _ := client(addr, "pub", true)
	ok(t, "publish retained", pub.Publish("status/gw", 1, true, "up"))
	sub, _ := client(addr, "keeper", false)
	ok(t, "subscribe", sub.Subscribe("cmd/#", 1, nil))
	sub.Disconnect(250)
	ok(t, "publish queued", pub.Publish("cmd/reboot", 1, false, "queued while offline"))
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}

	addr, _, _ = runBinary(t, "-data", data)
	_, present := client(addr, "keeper", false)
	if !present {
		t.Error("session present = 0 after the restart")
	}
	expect(t, got, "cmd/reboot", "queued while offline", false)
	fresh, _ := client(addr, "fresh", true)
	ok(t, "subscribe status/#", fresh.Subscribe("status/#", 1, nil))
	expect(t, got, "status/gw", "up", true)
	pub, _ = client(addr, "pub", true)
	ok(t, "publish after restart", pub.Publish("cmd/after", 1, false, "after"))
	expect(t, got, "cmd/after", "after", false)
}

func ok(t *testing.T, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

func expect(t *testing.T, ch <-chan mqtt.Message, topic, payload string, retained bool) {
	t.Helper()
	select {
	case m := <-ch:
		if m.Topic() != topic || string(m.Payload()) != payload || m.Retained() != retained {
			t.Errorf("got %s %q retained %v, want %s %q retained %v", m.Topic(), m.Payload(), m.Retained(), topic, payload, retained)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no message, want %s %q", topic, payload)
	}
}

// TestSIGTERMWithLargeQueue: 900 × 1 MB queued for an offline persistent
// session (within the journal's 1 GiB budget, far beyond the memory
// budget) are all delivered, in order, after SIGTERM and a restart.
func TestSIGTERMWithLargeQueue(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	addr, cmd, exited := runBinary(t, "-data", data)
	client := func(addr, id string, clean bool, h mqtt.MessageHandler) mqtt.Client {
		t.Helper()
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
			SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetOrderMatters(true).
			SetDefaultPublishHandler(h))
		ok(t, "connect "+id, c.Connect())
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	sub := client(addr, "big", false, nil)
	ok(t, "subscribe", sub.Subscribe("big/#", 1, nil))
	sub.Disconnect(100)
	pub := client(addr, "pub", true, nil)
	payload := make([]byte, 1000000) // 1 MB: a packet within the default 1 MiB limit
	const n = 900
	for i := range n {
		copy(payload, fmt.Sprintf("%06d", i))
		ok(t, "publish", pub.Publish("big/x", 1, false, payload))
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}

	addr, _, _ = runBinary(t, "-data", data)
	got := make(chan string, n+1)
	client(addr, "big", false, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()[:6]) })
	for i := range n {
		select {
		case p := <-got:
			if want := fmt.Sprintf("%06d", i); p != want {
				t.Fatalf("message %d: %q", i, p)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d queued messages delivered after the restart", i, n)
		}
	}
}
