package appliance_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
)

// start runs the appliance on loopback ports and returns its addresses and
// a stop function that reports Run's result and how long shutdown took.
func start(t *testing.T) (addrs []net.Addr, stop func() (time.Duration, error)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- appliance.Run(ctx, appliance.Config{
			DataDir:  filepath.Join(t.TempDir(), "data"),
			Loopback: "127.0.0.1:0",
			PortMap:  map[int]int{18883: 0},
			Listen:   []string{"127.0.0.1:0"},
			Ready:    func(a []net.Addr) { ready <- a },
		})
	}()
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("appliance not ready")
	}
	return addrs, func() (time.Duration, error) {
		t0 := time.Now()
		cancel()
		select {
		case err := <-done:
			return time.Since(t0), err
		case <-time.After(appliance.ShutdownTimeout + 5*time.Second):
			t.Fatal("Run did not return after cancel")
			return 0, nil
		}
	}
}

func TestServesEveryPortAndShutsDown(t *testing.T) {
	addrs, stop := start(t)
	if got, want := len(addrs), 3; got != want {
		t.Fatalf("listeners: got %d, want %d (the default's TLS port and loopback port, and -listen)", got, want)
	}
	lost := make(chan error, 1)
	got := make(chan string, 1)
	opts := func(id string, a net.Addr) *mqtt.ClientOptions {
		return mqtt.NewClientOptions().AddBroker("tcp://" + a.String()).SetClientID(id).
			SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	}
	sub := mqtt.NewClient(opts("sub", addrs[1]).SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err }))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	if tok := sub.Subscribe("a/#", 1, func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := mqtt.NewClient(opts("pub", addrs[2]))
	if tok := pub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	if tok := pub.Publish("a/b", 1, false, "across ports"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "across ports" {
			t.Errorf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("message not delivered across listeners")
	}

	took, err := stop()
	if err != nil {
		t.Errorf("Run after cancel: %v", err)
	}
	if took > appliance.ShutdownTimeout {
		t.Errorf("shutdown took %v, want under %v", took, appliance.ShutdownTimeout)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Error("client was not disconnected by shutdown")
	}
	if _, err := net.DialTimeout("tcp", addrs[1].String(), time.Second); err == nil {
		t.Error("listener still accepts after shutdown")
	}
}

func TestRejectsBadListenAddress(t *testing.T) {
	err := appliance.Run(context.Background(), appliance.Config{
		DataDir:  t.TempDir(),
		Loopback: "off",
		Listen:   []string{"127.0.0.1:notaport"},
	})
	if err == nil {
		t.Fatal("Run with a bad -listen address succeeded")
	}
}
