package appliance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"edgebroker/board/watchdog"
	"edgebroker/broker"
	"edgebroker/broker/packet"
	"edgebroker/statestore"
)

// healthEvery is how often the subsystems are probed; three failures in a
// row (or a probe that does not return) make the appliance exit non-zero,
// so gokrazy restarts it.
var healthEvery = 10 * time.Second

// newWatchdog probes the broker (a message through its router) and the
// state store (a read), the subsystems whose wedging would go unnoticed.
func newWatchdog(srv *broker.Server, ss *stateStore, log *slog.Logger) (*watchdog.Watchdog, error) {
	w := &watchdog.Watchdog{Failures: 3, Logger: log.With("subsystem", "watchdog")}
	var nonce [8]byte
	rand.Read(nonce[:])
	topic := "$edgebroker/health/" + hex.EncodeToString(nonce[:])
	got := make(chan string, 1)
	// Subscribed for the broker's lifetime: never unsubscribed.
	_, err := srv.Subscribe(topic, 0, func(m *broker.Message) {
		select {
		case got <- string(m.Payload):
		default:
		}
	})
	if err != nil {
		return nil, fmt.Errorf("appliance: watchdog: %w", err)
	}
	n := 0
	w.Register("broker", healthEvery, func(ctx context.Context) error {
		n++
		want := fmt.Sprint(n)
		if err := srv.Publish(&packet.Publish{Topic: []byte(topic), Payload: []byte(want)}); err != nil {
			return err
		}
		for {
			select {
			case s := <-got:
				if s == want {
					return nil
				}
			case <-ctx.Done():
				return fmt.Errorf("a message through the router did not arrive: %w", ctx.Err())
			}
		}
	})
	w.Register("statestore", healthEvery, func(ctx context.Context) error {
		_, _, err := ss.store.Get([]byte("$edgebroker/health"))
		if err != nil && !errors.Is(err, statestore.ErrNotFound) {
			return err
		}
		return nil
	})
	return w, nil
}
