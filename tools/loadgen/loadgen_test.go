package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/bridge"
	"edgebroker/broker/journal"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// startBroker serves an in-process broker on a loopback port.
func startBroker(t *testing.T) string {
	t.Helper()
	return serve(t, broker.Config{})
}

// serve serves an in-process broker with cfg on a loopback port.
func serve(t *testing.T, cfg broker.Config) string {
	t.Helper()
	return serveServer(t, broker.New(cfg))
}

// serveServer serves s on a loopback port until the test ends.
func serveServer(t *testing.T, s *broker.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, broker.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestRunModes(t *testing.T) {
	addr := startBroker(t)
	pid := os.Getpid() // the broker runs in this process
	tests := []struct {
		name string
		cfg  Config
	}{
		{"fan-in qos0", Config{Mode: FanIn, Publishers: 4, Count: 4000}},
		{"fan-in qos1", Config{Mode: FanIn, Publishers: 4, QoS: 1, Count: 4000}},
		{"fan-in qos2 v5", Config{Mode: FanIn, Publishers: 2, QoS: 2, Version: packet.V5, Count: 2000}},
		{"fan-out qos1", Config{Mode: FanOut, Subscribers: 10, QoS: 1, Count: 300, Payload: 256}},
		{"fan-out qos0 open loop", Config{Mode: FanOut, Subscribers: 5, Count: 300, Window: -1}},
		{"latency v5 qos1", Config{Mode: Latency, Rate: 2000, QoS: 1, Version: packet.V5, Count: 200}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.Addr, cfg.Duration, cfg.BrokerPID = addr, 3*time.Second, pid
			cfg.Drain = 500 * time.Millisecond
			res, err := Run(t.Context(), cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res.Summary())
			if len(res.Errors) > 0 {
				t.Errorf("errors: %v", res.Errors)
			}
			if got, want := res.Sent, cfg.Count; got != want {
				t.Errorf("sent %d, want %d", got, want)
			}
			if cfg.QoS > 0 {
				if got, want := res.Received, res.Sent*int64(res.Subscribers); got != want || res.Lost != 0 {
					t.Errorf("received %d (lost %d), want %d", got, res.Lost, want)
				}
				if got, want := res.Acked, res.Sent; got != want {
					t.Errorf("acked %d, want %d", got, want)
				}
			}
			l := res.Latency
			if l == nil || l.Samples != uint64(res.Received) {
				t.Fatalf("latency %+v for %d deliveries", l, res.Received)
			}
			if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
				t.Errorf("percentiles out of order: %+v", l)
			}
			if res.RecvRate <= 0 || res.Broker == nil {
				t.Errorf("rate %v, broker usage %+v", res.RecvRate, res.Broker)
			}
		})
	}
}

// TestPersistent: with Persistent the subscriber's session outlives its
// connection, so a broker with a journal puts every QoS 1 message on disk
// before its PUBACK; without it nothing reaches the disk. Every PUBACK
// is timed.
func TestPersistent(t *testing.T) {
	for _, v := range []byte{packet.V311, packet.V5} {
		for _, persistent := range []bool{false, true} {
			t.Run(fmt.Sprintf("v%d persistent=%v", v, persistent), func(t *testing.T) {
				j, err := journal.Open(t.TempDir(), journal.Options{SegmentSize: 1 << 20})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { j.Close() })
				addr := serve(t, broker.Config{Journal: j})
				cfg := Config{Mode: FanIn, Addr: addr, Version: v, QoS: 1, Publishers: 4, Inflight: 1, Count: 400,
					// Count ends the run (in about 0.1 s); Duration only
					// bounds it when fsync stalls, as it does for seconds
					// while another test writes a disk image.
					Persistent: persistent, Duration: time.Minute, Drain: 500 * time.Millisecond}
				var fsyncsAtStart, fsyncsAtEnd int64
				cfg.AtStart = func() { fsyncsAtStart = j.Stats.Fsyncs.Load() }
				cfg.AtEnd = func() { fsyncsAtEnd = j.Stats.Fsyncs.Load() }
				res, err := Run(t.Context(), cfg, nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Log(res.Summary())
				if len(res.Errors) > 0 || res.Lost > 0 || res.Acked != cfg.Count {
					t.Fatalf("errors %v, lost %d, acked %d of %d", res.Errors, res.Lost, res.Acked, cfg.Count)
				}
				if res.Persistent != persistent || res.Inflight != 1 {
					t.Errorf("result says persistent %v, inflight %d", res.Persistent, res.Inflight)
				}
				l := res.AckLatency
				if l == nil || l.Samples != uint64(res.Acked) || !(0 < l.P50 && l.P50 <= l.P99 && l.P99 <= l.Max) {
					t.Errorf("ack latency %+v for %d PUBACKs", l, res.Acked)
				}
				fsyncs := fsyncsAtEnd - fsyncsAtStart
				if persistent && fsyncs == 0 {
					t.Errorf("no fsync while %d messages went to a persistent session", res.Acked)
				}
				if !persistent && fsyncs != 0 {
					t.Errorf("%d fsyncs for a clean session", fsyncs)
				}
			})
		}
	}
}

func TestLatencyRate(t *testing.T) {
	addr := startBroker(t)
	cfg := Config{Mode: Latency, Addr: addr, Rate: 1000, Count: 1000, Duration: 300 * time.Millisecond}
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The duration ends the run before the count: about 300 messages.
	if res.Sent < 150 || res.Sent > 450 {
		t.Errorf("sent %d at 1000/s in 300ms", res.Sent)
	}
	if res.Lost != 0 {
		t.Errorf("lost %d", res.Lost)
	}
}

func TestConns(t *testing.T) {
	addr := startBroker(t)
	cfg := Config{Mode: Conns, Addr: addr, Count: 100, Sources: 4, Duration: 5 * time.Second, Hold: 50 * time.Millisecond, BrokerPID: os.Getpid()}
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	if res.Conns != 100 || res.ConnectFailed != 0 || len(res.Errors) > 0 {
		t.Errorf("conns %d, failed %d, errors %v", res.Conns, res.ConnectFailed, res.Errors)
	}
	if res.Broker == nil || res.Broker.RSSAfter <= 0 {
		t.Errorf("broker usage %+v", res.Broker)
	}
}

func TestRefusesRemote(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:1883", "[2001:db8::1]:1883", "192.0.2.1:8883"} {
		_, err := Run(context.Background(), Config{Addr: addr}, nil)
		if err == nil {
			t.Errorf("Run(%s): no error for a remote target", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:1", "127.1.2.3:1", "[::1]:1"} {
		if err := checkLoopback(addr); err != nil {
			t.Errorf("checkLoopback(%s): %v", addr, err)
		}
	}
}

func TestHistogram(t *testing.T) {
	var h histogram
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5 * time.Millisecond}, {0.9, 9 * time.Millisecond}, {0.99, 9900 * time.Microsecond}, {1, 10 * time.Millisecond}} {
		got := h.quantile(tt.q)
		if d := float64(got-tt.want) / float64(tt.want); d < 0 || d > 0.016 {
			t.Errorf("quantile(%v) = %v, want %v (+1.6%%)", tt.q, got, tt.want)
		}
	}
	for v := time.Duration(0); v < 1<<20; v += 7 {
		if b := bucketOf(v); bucketHigh(b) < v || (b > 0 && bucketHigh(b-1) >= v) {
			t.Fatalf("value %d in bucket %d (high %d)", v, b, bucketHigh(b))
		}
	}
}

func TestProc(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "42")
	os.Mkdir(dir, 0o755)
	stat := "42 (edge broker) S 1 42 42 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 9 0 100 1000000 500 18446744073709551615\n"
	status := "Name:\tedgebroker\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\nThreads:\t9\n"
	os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644)
	os.WriteFile(filepath.Join(dir, "status"), []byte(status), 0o644)
	cpu, err := ProcCPU(root, 42)
	if got, want := cpu, 3800*time.Millisecond; err != nil || got != want {
		t.Errorf("ProcCPU = %v, %v; want %v", got, err, want)
	}
	// With the threads' schedstat, their time on a CPU in nanoseconds.
	for tid, line := range map[string]string{"42": "1500000123 2000 30\n", "43": "250000000 10 5\n"} {
		os.MkdirAll(filepath.Join(dir, "task", tid), 0o755)
		os.WriteFile(filepath.Join(dir, "task", tid, "schedstat"), []byte(line), 0o644)
	}
	cpu, err = ProcCPU(root, 42)
	if got, want := cpu, 1750000123*time.Nanosecond; err != nil || got != want {
		t.Errorf("ProcCPU from schedstat = %v, %v; want %v", got, err, want)
	}
	if real, err := ProcCPU("/proc", os.Getpid()); err != nil || real <= 0 || real%clockTick == 0 {
		t.Errorf("ProcCPU of this test = %v, %v; want nanoseconds from schedstat", real, err)
	}
	rss, err := ProcRSS(root, 42)
	if got, want := rss, int64(2048<<10); err != nil || got != want {
		t.Errorf("ProcRSS = %v, %v; want %v", got, err, want)
	}
}

// TestProcCtxSwitches sums voluntary and nonvoluntary context switches
// over every thread in PID/task, and reads this process's.
func TestProcCtxSwitches(t *testing.T) {
	root := t.TempDir()
	status := func(vol, nonvol int) string {
		return fmt.Sprintf("Name:\tedgebroker\nVmRSS:\t   2048 kB\nvoluntary_ctxt_switches:\t%d\nnonvoluntary_ctxt_switches:\t%d\n", vol, nonvol)
	}
	for tid, text := range map[string]string{"42": status(1000, 7), "43": status(20, 3), "44": status(5, 0)} {
		dir := filepath.Join(root, "42", "task", tid)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "status"), []byte(text), 0o644)
	}
	n, err := ProcCtxSwitches(root, 42)
	if got, want := n, int64(1035); err != nil || got != want {
		t.Errorf("ProcCtxSwitches = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"Name:\tx\nvoluntary_ctxt_switches:\t5\n", "voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t1\n"} {
		if n, err := parseCtxSwitches([]byte(bad)); err == nil {
			t.Errorf("parseCtxSwitches(%q) = %d, no error", bad, n)
		}
	}
	if _, err := ProcCtxSwitches(root, 43); err == nil {
		t.Error("ProcCtxSwitches of a missing process: no error")
	}
	if n, err := ProcCtxSwitches("/proc", os.Getpid()); err != nil || n <= 0 {
		t.Errorf("ProcCtxSwitches(self) = %d, %v", n, err)
	}
}

// TestSubAddr: with SubAddr the subscribers connect there, the upstream
// of a bridge from Addr, and receive every QoS 1 message through it.
func TestSubAddr(t *testing.T) {
	j, err := journal.Open(t.TempDir(), journal.Options{SegmentSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	local := broker.New(broker.Config{Journal: j})
	addr := serveServer(t, local)
	up := broker.New(broker.Config{})
	upAddr := serveServer(t, up)
	b, err := bridge.Start(bridge.Config{Name: "up", Local: local, Up: true, Sources: []string{"bridged/#"},
		Map:    func(topic string) (string, bool) { return topic, true },
		Remote: bridge.Remote{Hosts: []string{upAddr}, ClientID: "bridge", QoS: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	// Start returns once the local side subscribed; the upstream
	// connection may come a moment later.
	testenv.Eventually(t, 10*time.Second, "the bridge connected upstream", func() bool { return b.Status().Connected != "" })
	cfg := Config{Mode: FanIn, Addr: addr, SubAddr: upAddr, TopicPrefix: "bridged", QoS: 1, Publishers: 2, Count: 1000,
		Duration: 5 * time.Second, Drain: 2 * time.Second}
	var upConns int64
	cfg.AtStart = func() { upConns = up.Stats.Connections.Load() }
	res, err := Run(t.Context(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(res.Summary())
	if upConns != 2 { // the subscriber and the bridge
		t.Errorf("the upstream had %d connections, want 2 (the subscriber and the bridge)", upConns)
	}
	if len(res.Errors) > 0 || res.Lost > 0 || res.Received != cfg.Count {
		t.Errorf("errors %v, lost %d, received %d of %d", res.Errors, res.Lost, res.Received, cfg.Count)
	}
}
