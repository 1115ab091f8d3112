package brokertest

import (
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Helpers for a real MQTT 3.1.1 client: eclipse/paho.mqtt.golang.

// V3Msg is a message received by a paho.mqtt.golang client.
type V3Msg struct {
	Topic    string
	Payload  string
	QoS      byte
	Retained bool
	Dup      bool
}

// V3MsgOf copies what a test checks of a received message.
func V3MsgOf(m mqtt.Message) V3Msg {
	return V3Msg{Topic: m.Topic(), Payload: string(m.Payload()), QoS: m.Qos(), Retained: m.Retained(), Dup: m.Duplicate()}
}

// V3Paho connects a paho.mqtt.golang client (3.1.1, no automatic
// reconnect, in-order delivery) as id; opt may adjust its options first
// (MemPahoConn for an in-memory address). It is disconnected when the test
// ends.
func V3Paho(t testing.TB, addr, id string, clean bool, opt func(*mqtt.ClientOptions)) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetCleanSession(clean).SetProtocolVersion(4).SetAutoReconnect(false).
		SetConnectRetry(false).SetConnectTimeout(WaitTime).SetKeepAlive(30 * time.Second).
		SetWriteTimeout(WaitTime).SetOrderMatters(true)
	if opt != nil {
		opt(o)
	}
	c := mqtt.NewClient(o)
	V3Wait(t, "connect "+id, c.Connect())
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

// V3Wait waits up to WaitTime for a paho.mqtt.golang token and fails the
// test on a timeout or an error; what names the operation.
func V3Wait(t testing.TB, what string, tok mqtt.Token) {
	t.Helper()
	if !tok.WaitTimeout(WaitTime) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// V3PahoSub subscribes c to filter and returns the channel of the
// messages it receives (buffered: 1,000).
func V3PahoSub(t testing.TB, c mqtt.Client, filter string, qos byte) <-chan V3Msg {
	t.Helper()
	ch := make(chan V3Msg, 1000)
	V3Wait(t, "subscribe "+filter, c.Subscribe(filter, qos, func(_ mqtt.Client, m mqtt.Message) {
		ch <- V3MsgOf(m)
	}))
	return ch
}

// V3Next returns the next message from ch, failing after WaitTime.
func V3Next(t testing.TB, ch <-chan V3Msg) V3Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(WaitTime):
		t.Fatal("timed out waiting for a message")
		return V3Msg{}
	}
}

// V3NoMsg requires that nothing arrives on ch within d.
func V3NoMsg(t testing.TB, ch <-chan V3Msg, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(d):
	}
}
