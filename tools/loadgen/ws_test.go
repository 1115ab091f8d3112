package loadgen

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/wsnet"
)

// TestWebSocket: fan-in over MQTT-over-WebSocket connections to a broker
// served on a wsnet listener delivers every message.
func TestWebSocket(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wl := wsnet.Listen(ln, slog.New(slog.DiscardHandler))
	s := broker.New(broker.Config{})
	done := make(chan error, 1)
	go func() { done <- s.Serve(wl) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	cfg := Config{Mode: FanIn, Addr: ln.Addr().String(), WebSocket: true, QoS: 1, Count: 2000, Duration: 5 * time.Second}
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	if res.Received != 2000 || len(res.Errors) > 0 {
		t.Errorf("received %d of 2000, errors %v", res.Received, res.Errors)
	}
	// Plain MQTT to a WebSocket port gets no CONNACK (the HTTP server
	// waits for the rest of a request): the connect ends at ctx's deadline.
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if _, err := Run(ctx, Config{Addr: ln.Addr().String(), Count: 10, Duration: time.Second}, nil); err == nil {
		t.Error("plain MQTT to a WebSocket port: no error")
	}
}
