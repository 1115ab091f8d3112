// Package loadgen generates MQTT load against a broker and measures
// throughput, loss and latency; mqttload is its command line.
//
// It speaks MQTT through the project's own codec (edgebroker/broker/packet)
// over raw connections, with buffered writes and no per-message
// allocation, so that on a small machine the generator costs less CPU
// than the broker it measures. Every payload starts with the monotonic
// send time and a sequence number; subscribers record the difference in a
// histogram.
package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// stampSize is the payload prefix: send time (ns since the run's base)
// and sequence number, both big-endian uint64.
const stampSize = 16

// maxErrors bounds the error strings a Result keeps.
const maxErrors = 10

// Run performs one run against cfg.Addr and returns what it measured.
// When progress is not nil it gets one line per second. The error is
// about the run itself (bad configuration, no connection); problems during
// the run are in Result.Errors and losses in Result.Lost.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Result, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d, err := newDialer(&cfg)
	if err != nil {
		return nil, err
	}
	res := &Result{Mode: cfg.Mode, Target: cfg.Addr, MQTT: versionName(cfg.Version), QoS: cfg.QoS, Payload: cfg.Payload}
	switch cfg.Mode {
	case Conns:
		return res, runConns(ctx, &cfg, d, res, progress)
	case Connects:
		return res, runConnects(ctx, &cfg, d, res, progress)
	}
	res.Publishers, res.Subscribers, res.Rate, res.Persistent = cfg.Publishers, cfg.Subscribers, cfg.Rate, cfg.Persistent
	if cfg.QoS > 0 {
		res.Inflight = cfg.Inflight
	}
	r := &run{cfg: &cfg, d: d, sd: d, res: res, base: time.Now(), stop: make(chan struct{}), id: runID()}
	if cfg.SubAddr != "" {
		sd := *d
		sd.addr = cfg.SubAddr
		r.sd = &sd
	}
	return res, r.run(ctx, progress)
}

func runID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// errs collects the first few errors of a run, counting the rest.
type errs struct {
	mu   sync.Mutex
	list []string
	n    int
}

func (e *errs) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n++; len(e.list) < maxErrors {
		e.list = append(e.list, err.Error())
	}
}

func (e *errs) strings() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n > len(e.list) {
		return append(e.list, fmt.Sprintf("... %d more", e.n-len(e.list)))
	}
	return e.list
}

// ticker calls fn once a second until stop is closed; it returns a func
// that waits for it to end.
func ticker(stop <-chan struct{}, every time.Duration, fn func()) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return func() { <-done }
}

// stamp writes the send time and sequence number into a payload.
func stamp(payload []byte, since time.Duration, seq uint64) {
	binary.BigEndian.PutUint64(payload, uint64(since))
	binary.BigEndian.PutUint64(payload[8:], seq)
}

// unstamp reads the send time back.
func unstamp(payload []byte) (time.Duration, bool) {
	if len(payload) < stampSize {
		return 0, false
	}
	return time.Duration(binary.BigEndian.Uint64(payload)), true
}

// brokerReading is what /proc says about the broker at one moment.
type brokerReading struct {
	cpu time.Duration // the broker's time on a CPU (ProcCPU)
	rss int64         // VmRSS, bytes
	ctx int64         // context switches of all its threads
}

// brokerSample reads the broker's CPU time, RSS and context switches when
// a PID is set.
func brokerSample(cfg *Config, e *errs) brokerReading {
	var r brokerReading
	if cfg.BrokerPID == 0 {
		return r
	}
	var err error
	if r.cpu, err = ProcCPU(cfg.ProcRoot, cfg.BrokerPID); err != nil {
		e.add(err)
	}
	if r.rss, err = ProcRSS(cfg.ProcRoot, cfg.BrokerPID); err != nil {
		e.add(err)
	}
	if r.ctx, err = ProcCtxSwitches(cfg.ProcRoot, cfg.BrokerPID); err != nil {
		e.add(err)
	}
	return r
}

// usage is the broker's CPU time and context switches between two
// readings, per million and per one of n events (messages received,
// connections made).
func usage(pid int, r0, r1 brokerReading, n int64) *BrokerUsage {
	u := &BrokerUsage{PID: pid, CPUSeconds: (r1.cpu - r0.cpu).Seconds(), CtxSwitches: r1.ctx - r0.ctx}
	if n > 0 {
		u.CPUPerMillion = u.CPUSeconds / (float64(n) / 1e6)
		u.CtxSwitchesPerMsg = float64(u.CtxSwitches) / float64(n)
	}
	return u
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// closeAll disconnects clients concurrently, at most n at a time.
func closeAll(cs []*client, n int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for _, c := range cs {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.disconnect()
		})
	}
	wg.Wait()
}

// atomicSum sums a counter over a slice.
func atomicSum[T any](xs []T, f func(T) *atomic.Int64) int64 {
	var n int64
	for _, x := range xs {
		n += f(x).Load()
	}
	return n
}
