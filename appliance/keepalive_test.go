package appliance_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/appliance/config"
)

// TestDefaultKeepAliveCap: with the embedded default (no Broker sets
// maxKeepAliveSeconds) a 5.0 client asking for an hour's keep-alive is
// told Server Keep Alive 60 in CONNACK; one asking for 30 s keeps it
// and gets no Server Keep Alive.
func TestDefaultKeepAliveCap(t *testing.T) {
	addrs, stop := start(t)
	defer stop()
	loopback := addrs[1] // the embedded default's plain port (addrs[0] is its TLS port)
	connack := func(keepAlive uint16) *paho.Connack {
		nc, err := net.DialTimeout("tcp", loopback.String(), 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: nc})
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: "ka", CleanStart: true, KeepAlive: keepAlive})
		if err != nil {
			t.Fatalf("connect with keep-alive %d: %v", keepAlive, err)
		}
		c.Disconnect(&paho.Disconnect{})
		return ack
	}
	ack := connack(3600)
	if ack.Properties == nil || ack.Properties.ServerKeepAlive == nil {
		t.Fatal("keep-alive 3600: no Server Keep Alive in CONNACK")
	}
	if got := *ack.Properties.ServerKeepAlive; got != config.DefaultMaxKeepAliveSeconds {
		t.Errorf("keep-alive 3600: Server Keep Alive %d, want %d", got, config.DefaultMaxKeepAliveSeconds)
	}
	if ack := connack(30); ack.Properties != nil && ack.Properties.ServerKeepAlive != nil {
		t.Errorf("keep-alive 30: Server Keep Alive %d, want none", *ack.Properties.ServerKeepAlive)
	}
}
