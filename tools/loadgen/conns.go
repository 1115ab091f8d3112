package loadgen

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"
)

// runConns opens cfg.Count idle clients with one subscription each, holds
// them for cfg.Hold and measures the broker's RSS before and after.
func runConns(ctx context.Context, cfg *Config, d *dialer, res *Result, progress io.Writer) error {
	n := int(cfg.Count)
	if err := RaiseFileLimit(uint64(n) + 256); err != nil {
		return err
	}
	sources := sourceAddrs(cfg.Addr, cfg.Sources)
	var e errs
	b0 := brokerSample(cfg, &e)

	id := runID()
	clients := make([]*client, n)
	defer func() { closeAll(clients, cfg.Dialers) }()
	dctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	dl := newDialing(&e)
	stop := make(chan struct{})
	waitProgress := dl.progress(progress, stop) // through the hold too
	elapsed := dl.run(cfg.Count, cfg.Dialers, func() bool { return dctx.Err() == nil }, func(i int64) error {
		c, err := d.dial(dctx, fmt.Sprintf("mqttload-%s-c%d", id, i), sourceOf(sources, i), false)
		if err == nil {
			clients[i] = c
			err = c.subscribe(fmt.Sprintf("%s/%s/idle/%d", cfg.TopicPrefix, id, i), cfg.QoS)
		}
		if err != nil {
			return fmt.Errorf("client %d: %w", i, err)
		}
		return nil
	})
	if dctx.Err() != nil && ctx.Err() == nil && dl.connected.Load() < int64(n) {
		e.add(fmt.Errorf("connecting %d clients took longer than %v", n, cfg.Duration))
	}
	holdConns(ctx, clients, cfg)
	close(stop)
	waitProgress()
	b1 := brokerSample(cfg, &e)

	dl.result(res, elapsed)
	if cfg.BrokerPID != 0 {
		res.Broker = &BrokerUsage{PID: cfg.BrokerPID, RSSBefore: b0.rss, RSSAfter: b1.rss}
		if res.Conns > 0 {
			res.Broker.RSSPerConn = float64(b1.rss-b0.rss) / float64(res.Conns)
		}
	}
	res.Errors = e.strings()
	return nil
}

// holdConns keeps the clients connected for cfg.Hold, pinging them at
// half the keep-alive.
func holdConns(ctx context.Context, clients []*client, cfg *Config) {
	end := time.Now().Add(cfg.Hold)
	every := time.Duration(cfg.KeepAlive) * time.Second / 2
	for {
		left := time.Until(end)
		if left <= 0 || ctx.Err() != nil {
			return
		}
		sleepCtx(ctx, min(left, every))
		if time.Until(end) > 0 {
			for _, c := range clients {
				if c != nil {
					c.ping()
				}
			}
		}
	}
}

// sourceOf returns the source address of connection i: nil (any) when
// there are no sources.
func sourceOf(sources []net.IP, i int64) net.IP {
	if len(sources) == 0 {
		return nil
	}
	return sources[i%int64(len(sources))]
}

// sourceAddrs returns n source addresses 127.0.0.1 … 127.0.0.n to spread
// connections to an IPv4 loopback target over, so that they do not share
// one address's ephemeral ports. It returns nil for other targets or n ≤ 1.
func sourceAddrs(addr string, n int) []net.IP {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || n <= 1 {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Is4() || !ip.IsLoopback() {
		return nil
	}
	ips := make([]net.IP, min(n, 254))
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 0, byte(i+1))
	}
	return ips
}
