package benchcompare

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
)

// fsyncScenario names the fsync timing in results.json.
const fsyncScenario = "one fsync (4 KiB write + fdatasync)"

// dmetric is one column of the durable table, read from a whole sample
// (its journal figures are beside the load generator's result).
type dmetric struct {
	head   string
	value  func(s sample) (float64, bool)
	format string
	ratio  bool // the ratio row shows edgebroker ÷ mosquitto
}

// durableMetrics are the durable table's columns; fsync is one fsync's
// median in ms (0: not measured).
func durableMetrics(fsync float64) []dmetric {
	ack := func(q func(p50, p99 float64) float64) func(s sample) (float64, bool) {
		return func(s sample) (float64, bool) {
			if s.res.AckLatency == nil {
				return 0, false
			}
			return q(s.res.AckLatency.P50, s.res.AckLatency.P99) / 1e3, true
		}
	}
	journal := func(f func(u *JournalUsage) float64) func(s sample) (float64, bool) {
		return func(s sample) (float64, bool) {
			if s.journal == nil {
				return 0, false
			}
			v := f(s.journal)
			return v, !math.IsNaN(v)
		}
	}
	return []dmetric{
		{"msg/s", func(s sample) (float64, bool) { return s.res.RecvRate, true }, "%.0f", true},
		{"PUBACK p50 ms", ack(func(p50, _ float64) float64 { return p50 }), "%.2f", true},
		{"PUBACK p99 ms", ack(func(_, p99 float64) float64 { return p99 }), "%.2f", true},
		{"p99 ÷ one fsync", func(s sample) (float64, bool) {
			v, ok := ack(func(_, p99 float64) float64 { return p99 })(s)
			return v / fsync, ok && fsync > 0
		}, "%.1f×", false},
		{"fsyncs/s", journal(func(u *JournalUsage) float64 { return u.FsyncsPerSec }), "%.0f", false},
		{"msgs / fsync", journal(func(u *JournalUsage) float64 {
			if u.Fsyncs == 0 {
				return math.NaN()
			}
			return float64(u.Messages) / float64(u.Fsyncs)
		}), "%.1f", false},
		{"journal B / msg", journal(func(u *JournalUsage) float64 { return u.BytesPerMsg }), "%.0f", false},
		{"compacted B", journal(func(u *JournalUsage) float64 { return float64(u.CompactedBytes) }), "%.0f", false},
		{"commit p50 ms", journal(func(u *JournalUsage) float64 { return u.CommitP50 * 1e3 }), "%.2f", false},
		{"commit p99 ms", journal(func(u *JournalUsage) float64 { return u.CommitP99 * 1e3 }), "%.2f", false},
	}
}

// durableMarkdown renders the durable scenarios' own table, if any ran.
func (r *Report) durableMarkdown(b *strings.Builder) {
	var scs []string
	for _, sc := range r.scenarios {
		if r.durable[sc] {
			scs = append(scs, sc)
		}
	}
	if len(scs) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Durable fan-in\n\n")
	fmt.Fprintf(b, "%d QoS 1 publishers, each with at most %d PUBLISH awaiting its PUBACK (rows marked \"in flight\": that many, a client with a window, as mosquitto_pub's default of 20 and paho's), → one subscriber with a persistent session (%s), subscribed with QoS 1, online and acknowledging. ",
		r.cfg.DurablePubs, r.cfg.DurableInflight, persistentName(r.cfg.Version))
	fmt.Fprintf(b, "The durable latency row: one QoS 1 publisher paced at %.0f msg/s, each PUBLISH waiting for its PUBACK, → the same persistent subscriber: publish to PUBACK below saturation, which is what one commit (write and fdatasync) costs an acknowledgement; at saturation (the fan-in rows) PUBACK times are mostly queueing for the CPU, for both brokers. ", r.cfg.DurableRate)
	b.WriteString("edgebroker journals each message (group commit, fdatasync) before its PUBACK. mosquitto runs with `persistence true`, `persistence_location` in the run's temporary directory and `autosave_interval` at its default (1800 s): it saves sessions every 30 minutes and at shutdown, so its PUBACK does not wait for the disk (each run checks that mosquitto.db was saved at shutdown; started as root, mosquitto stays root, `user root`, to write the run's private directory).\n\n")
	var fsync float64
	switch {
	case r.fsync != nil:
		fsync = r.fsync.P50
		fmt.Fprintf(b, "One fsync on this disk: %d × (%d bytes written into a preallocated file, then fdatasync) under %s (%s), where the brokers keep their state: median %.3f ms, p90 %.3f ms, p99 %.3f ms.\n\n",
			r.fsync.Samples, r.fsync.Bytes, filepath.Dir(r.fsync.Dir), r.fsync.FS, r.fsync.P50, r.fsync.P90, r.fsync.P99)
	case r.fsyncErr != nil:
		fmt.Fprintf(b, "One fsync on this disk: not measured (%v).\n\n", r.fsyncErr)
	}
	ms := durableMetrics(fsync)
	b.WriteString("| scenario | broker |")
	for _, m := range ms {
		fmt.Fprintf(b, " %s |", m.head)
	}
	b.WriteString("\n|---|---|")
	for range ms {
		b.WriteString("---:|")
	}
	b.WriteString("\n")
	for _, sc := range scs {
		vals := map[string][]float64{}
		for _, br := range r.brokers {
			fmt.Fprintf(b, "| %s | %s |", sc, br)
			for _, m := range ms {
				v, ok := medianOf(r.samples[[2]string{sc, br}], m.value)
				if !ok || math.IsNaN(v) {
					v = math.NaN()
					b.WriteString(" – |")
				} else {
					fmt.Fprintf(b, " "+m.format+" |", v)
				}
				vals[br] = append(vals[br], v)
			}
			b.WriteString("\n")
		}
		if len(r.brokers) != 2 {
			continue
		}
		a, c := vals[r.brokers[0]], vals[r.brokers[1]]
		fmt.Fprintf(b, "| %s | **%s / %s** |", sc, r.brokers[0], r.brokers[1])
		for i, m := range ms {
			if !m.ratio || math.IsNaN(a[i]) || math.IsNaN(c[i]) || c[i] == 0 {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(b, " %.2f× |", a[i]/c[i])
			}
		}
		b.WriteString("\n")
	}
	b.WriteString(`
- msg/s: as above (deliveries to the persistent subscriber per second). PUBACK p50/p99: publish to PUBACK at the publisher, from handing the PUBLISH to the connection's buffer.
- p99 ÷ one fsync: PUBACK p99 in units of the median fsync above.
- fsyncs/s, msgs / fsync, journal B / msg, compacted B: from edgebroker's /metrics (edgebroker_journal_fsyncs_total, _written_bytes_total, _compacted_bytes_total), read after the clients connected and after the last delivery; bytes per message count every record a message costs (message, delivery, acknowledgement). commit p50/p99: edgebroker_journal_commit_p50/p99_seconds at the end (its last 1,024 commits, write and fdatasync).
`)
}

func persistentName(v byte) string {
	if v == 5 {
		return "MQTT 5, Session Expiry Interval 1 h"
	}
	return "3.1.1, clean session false"
}
