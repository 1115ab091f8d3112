package loadgen

import (
	"context"
	"fmt"
	"io"
	"sync"
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
	var next, connected, failed atomic.Int64
	var stopped atomic.Bool
	stop := time.AfterFunc(cfg.Duration, func() { stopped.Store(true) })
	defer stop.Stop()
	start := time.Now()
	tick := make(chan struct{})
	waitProgress := func() {}
	if progress != nil {
		waitProgress = ticker(tick, time.Second, func() {
			fmt.Fprintf(progress, "mqttload: %4.0fs connected=%d failed=%d\n", time.Since(start).Seconds(), connected.Load(), failed.Load())
		})
	}
	var wg sync.WaitGroup
	for range min(int64(cfg.Dialers), cfg.Count) {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < cfg.Count && !stopped.Load() && ctx.Err() == nil; i = next.Add(1) - 1 {
				c, err := d.dial(ctx, fmt.Sprintf("mqttload-%s-c%d", id, i), sourceOf(sources, i), false)
				if err != nil {
					failed.Add(1)
					e.add(fmt.Errorf("connection %d: %w", i, err))
					continue
				}
				c.disconnect()
				connected.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(tick)
	waitProgress()
	b1 := brokerSample(cfg, &e)

	res.Conns, res.ConnectFailed = int(connected.Load()), int(failed.Load())
	res.Seconds = elapsed.Seconds()
	res.ConnsPerSecond = float64(res.Conns) / res.Seconds
	if cfg.BrokerPID != 0 {
		res.Broker = usage(cfg.BrokerPID, b0, b1, int64(res.Conns))
		res.Broker.RSSBefore, res.Broker.RSSAfter = b0.rss, b1.rss
	}
	res.Errors = e.strings()
	return nil
}
