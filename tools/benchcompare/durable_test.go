package benchcompare

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"edgebroker/tools/loadgen"
)

// exposition is /metrics as edgebroker writes it, with the cases the
// parser must get right: labels holding spaces, braces and escaped
// quotes, exponents, and a time stamp after the value.
const exposition = `# HELP edgebroker_journal_fsyncs_total fdatasync calls of the journal.
# TYPE edgebroker_journal_fsyncs_total counter
edgebroker_journal_fsyncs_total 1200
edgebroker_journal_written_bytes_total 2.5e+06
edgebroker_journal_compacted_bytes_total 4096 1700000000000
edgebroker_journal_commit_p50_seconds 0.0009
edgebroker_journal_commit_p99_seconds 3.5e-03

edgebroker_journal_session_messages{client="a b}\"c"} 7
edgebroker_security_events_total{event="auth",listener="x"} 0
`

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"edgebroker_journal_fsyncs_total":                             1200,
		"edgebroker_journal_written_bytes_total":                      2.5e6,
		"edgebroker_journal_compacted_bytes_total":                    4096,
		"edgebroker_journal_commit_p50_seconds":                       0.0009,
		"edgebroker_journal_commit_p99_seconds":                       0.0035,
		`edgebroker_journal_session_messages{client="a b}\"c"}`:       7,
		`edgebroker_security_events_total{event="auth",listener="x"}`: 0,
	}
	if d := cmp.Diff(want, m); d != "" {
		t.Errorf("parseMetrics (-want +got):\n%s", d)
	}
	for _, bad := range []string{
		"edgebroker_journal_fsyncs_total\n",
		"edgebroker_journal_fsyncs_total many\n",
		"edgebroker_journal_fsyncs_total 1 2 3\n",
		`x{client="open} 1` + "\n",
		"{} 1\n",
	} {
		if _, err := parseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("parseMetrics(%q): no error", bad)
		}
	}
}

func TestJournalUsage(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m0, _ := parseMetrics(strings.NewReader(exposition))
	r0, err := journalFromMetrics(m0, t0)
	if err != nil {
		t.Fatal(err)
	}
	m1 := map[string]float64{
		"edgebroker_journal_fsyncs_total":          3200,
		"edgebroker_journal_written_bytes_total":   2.5e6 + 200*1000,
		"edgebroker_journal_compacted_bytes_total": 4096 + 512,
		"edgebroker_journal_commit_p50_seconds":    0.001,
		"edgebroker_journal_commit_p99_seconds":    0.004,
	}
	r1, err := journalFromMetrics(m1, t0.Add(4*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got := r1.since(r0, &loadgen.Result{Acked: 1000})
	want := &JournalUsage{Seconds: 4, Messages: 1000, Fsyncs: 2000, WrittenBytes: 200000, CompactedBytes: 512,
		FsyncsPerSec: 500, BytesPerMsg: 200, CommitP50: 0.001, CommitP99: 0.004}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("since (-want +got):\n%s", d)
	}
	delete(m1, "edgebroker_journal_fsyncs_total")
	if _, err := journalFromMetrics(m1, t0); err == nil || !strings.Contains(err.Error(), "fsyncs_total") {
		t.Errorf("journalFromMetrics without fsyncs: %v", err)
	}
}

func TestDurableScenarios(t *testing.T) {
	cfg := Config{Payload: 64, DurablePubs: 64, DurableInflight: 1, DurablePayloads: []int{64, 1024}, Only: []string{"durable"},
		DurableRate: 2000, Duration: 5 * time.Second, DurableWindow: 20}
	scs := cfg.scenarios()
	var names []string
	for _, s := range scs {
		names = append(names, s.name)
	}
	want := []string{"durable latency QoS 1 (1→1 persistent, 64 B) at 2000 msg/s",
		"durable fan-in QoS 1 (64→1 persistent, 64 B)", "durable fan-in QoS 1 (64→1 persistent, 1 KiB)",
		"durable fan-in QoS 1 (64→1 persistent, 64 B, 20 in flight)", "durable fan-in QoS 1 (64→1 persistent, 1 KiB, 20 in flight)"}
	if d := cmp.Diff(want, names); d != "" {
		t.Fatalf("scenarios (-want +got):\n%s", d)
	}
	if l := scs[0].load; !scs[0].durable() || l.Mode != loadgen.FanIn || l.QoS != 1 || l.Publishers != 1 || l.Inflight != 1 ||
		l.Rate != 2000 || l.Count != 10000 {
		t.Errorf("%s: load %+v", scs[0].name, l)
	}
	for i, s := range scs[1:] {
		l := s.load
		inflight := 1
		if i >= 2 {
			inflight = 20
		}
		if !s.durable() || l.Mode != loadgen.FanIn || l.QoS != 1 || l.Publishers != 64 || l.Inflight != inflight || l.Rate != 0 {
			t.Errorf("%s: load %+v", s.name, l)
		}
	}
	if scs[1].load.Payload != 64 || scs[2].load.Payload != 1024 || scs[3].load.Payload != 64 || scs[4].load.Payload != 1024 {
		t.Errorf("payloads %d, %d, %d, %d", scs[1].load.Payload, scs[2].load.Payload, scs[3].load.Payload, scs[4].load.Payload)
	}
	cfg.Only = nil
	for _, s := range cfg.scenarios() {
		if !strings.HasPrefix(s.name, "durable") && s.durable() {
			t.Errorf("%s has persistent subscribers", s.name)
		}
	}

	sizes, err := ParseSizes(" 64,1024,")
	if err != nil || !slices.Equal(sizes, []int{64, 1024}) {
		t.Errorf("ParseSizes: %v, %v", sizes, err)
	}
	for _, bad := range []string{"64,x", "0", "-5"} {
		if _, err := ParseSizes(bad); err == nil {
			t.Errorf("ParseSizes(%q): no error", bad)
		}
	}
}

func TestDurableMarkdown(t *testing.T) {
	run := func(rate, p50, p99 float64, j *JournalUsage) sample {
		return sample{journal: j, res: &loadgen.Result{Mode: loadgen.FanIn, QoS: 1, RecvRate: rate, Acked: 1000,
			AckLatency: &loadgen.LatencySummary{P50: p50, P99: p99}}}
	}
	ju := func(fsyncsPerSec float64) *JournalUsage {
		return &JournalUsage{Messages: 1000, Fsyncs: 250, FsyncsPerSec: fsyncsPerSec, BytesPerMsg: 180,
			CompactedBytes: 0, CommitP50: 0.0008, CommitP99: 0.002}
	}
	const sc = "durable fan-in QoS 1 (64→1 persistent, 64 B)"
	r := &Report{
		cfg:       Config{Rounds: 3, Payload: 64, DurablePubs: 64, DurableInflight: 1},
		brokers:   []string{"edgebroker", "mosquitto"},
		scenarios: []string{sc},
		durable:   map[string]bool{sc: true},
		fsync:     &FsyncTiming{Dir: "/tmp/benchcompare-1", FS: "ext4", Samples: 200, Bytes: 4096, P50: 0.5, P90: 0.8, P99: 1.5, Max: 3},
		samples: map[[2]string][]sample{
			{sc, "edgebroker"}: {run(20000, 2000, 4000, ju(1000)), run(30000, 1500, 3000, ju(1200)), run(10000, 3000, 6000, ju(800))},
			{sc, "mosquitto"}:  {run(40000, 1000, 2000, nil), {err: errTest}},
		},
	}
	md := r.Markdown()
	for _, want := range []string{
		"MQTT 3.1.1, payloads as named.",
		"## Durable fan-in",
		"64 QoS 1 publishers, each with at most 1 PUBLISH awaiting its PUBACK",
		"(3.1.1, clean session false)",
		"200 × (4096 bytes written into a preallocated file, then fdatasync) under /tmp (ext4), where the brokers keep their state: median 0.500 ms",
		"| " + sc + " | edgebroker | 20000 | 2.00 | 4.00 | 8.0× | 1000 | 4.0 | 180 | 0 | 0.80 | 2.00 |",
		"| " + sc + " | mosquitto | 40000 | 1.00 | 2.00 | 4.0× | – | – | – | – | – | – |",
		"| " + sc + " | **edgebroker / mosquitto** | 0.50× | 2.00× | 2.00× | – | – | – | – | – | – | – |",
		// The main table has the scenario too.
		"| " + sc + " | edgebroker | 20000 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	// Without durable scenarios there is no durable section.
	r.durable = nil
	if md := r.Markdown(); strings.Contains(md, "Durable") || !strings.Contains(md, "64-byte payloads") {
		t.Errorf("report without durable scenarios:\n%s", md)
	}
}

func TestFsyncSummary(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	got := fsyncSummary(ds)
	want := &FsyncTiming{Samples: 100, Bytes: 4096, P50: 50, P90: 90, P99: 99, Max: 100}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("fsyncSummary (-want +got):\n%s", d)
	}
	if got, want := got.Median(), 50*time.Millisecond; got != want {
		t.Errorf("Median = %v, want %v", got, want)
	}
}

// TestMeasureFsync times a few real fdatasyncs in a temporary directory.
func TestMeasureFsync(t *testing.T) {
	dir := t.TempDir()
	ft, err := MeasureFsync(dir, 5)
	if err != nil {
		t.Fatal(err)
	}
	if ft.Samples != 5 || !(0 < ft.P50 && ft.P50 <= ft.P99 && ft.P99 <= ft.Max) || ft.Dir != dir || ft.FS == "unknown file system" {
		t.Errorf("MeasureFsync = %+v", ft)
	}
	if _, err := MeasureFsync(dir, 0); err == nil {
		t.Error("MeasureFsync with 0 samples: no error")
	}
}
