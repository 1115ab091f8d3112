package loadgen

import (
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// runConnects connects and disconnects clients, cfg.Dialers at a time,
// until cfg.Count connections were made or cfg.Duration passed: each
// opens its stream (over TLS a full handshake: the clients keep no
// session cache), sends CONNECT, waits for the CONNACK, sends DISCONNECT
// and closes. It measures connections per second and the broker's CPU
// time and context switches per connection.
func runConnects(ctx context.Context, cfg *Config, d *dialer, res *Result, progress io.Writer) error {
	if err := RaiseFileLimit(uint64(cfg.Dialers) + 256); err != nil {
		return err
	}
	// Closed connections wait in TIME_WAIT on the client's side: spread
	// them over source addresses so that the ephemeral ports last.
	sources := sourceAddrs(cfg.Addr, cfg.Sources)
	var e errs
	b0 := brokerSample(cfg, &e)
	id := runID()
	var stopped atomic.Bool // cfg.Duration passed: dial no more, finish those under way
	stop := time.AfterFunc(cfg.Duration, func() { stopped.Store(true) })
	defer stop.Stop()
	dl := newDialing(&e)
	tick := make(chan struct{})
	waitProgress := dl.progress(progress, tick)
	elapsed := dl.run(cfg.Count, cfg.Dialers, func() bool { return !stopped.Load() && ctx.Err() == nil }, func(i int64) error {
		c, err := d.dial(ctx, fmt.Sprintf("mqttload-%s-c%d", id, i), sourceOf(sources, i), false)
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		c.disconnect()
		return nil
	})
	close(tick)
	waitProgress()
	b1 := brokerSample(cfg, &e)

	dl.result(res, elapsed)
	if cfg.BrokerPID != 0 {
		res.Broker = usage(cfg.BrokerPID, b0, b1, int64(res.Conns))
		res.Broker.RSSBefore, res.Broker.RSSAfter = b0.rss, b1.rss
	}
	res.Errors = e.strings()
	return nil
}
