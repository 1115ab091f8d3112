package loadgen

import (
	"fmt"
	"strings"
	"time"

	"edgebroker/broker/packet"
)

// Result is what a run measured. It is written as JSON by mqttload -json.
type Result struct {
	Mode        Mode    `json:"mode"`
	Target      string  `json:"target"`
	MQTT        string  `json:"mqtt"`
	QoS         byte    `json:"qos"`
	Payload     int     `json:"payload_bytes"`
	Publishers  int     `json:"publishers,omitempty"`
	Subscribers int     `json:"subscribers,omitempty"`
	Rate        float64 `json:"target_rate,omitempty"` // msg/s asked for; 0: unpaced
	Inflight    int     `json:"inflight,omitempty"`    // QoS 1/2 window per publisher
	Persistent  bool    `json:"persistent,omitempty"`  // subscribers with a persistent session

	Seconds    float64 `json:"seconds"` // first publish to last delivery (Conns: connecting)
	Sent       int64   `json:"sent"`
	Acked      int64   `json:"acked"`    // QoS 1/2 publishes completed by the broker
	Expected   int64   `json:"expected"` // Sent × Subscribers
	Received   int64   `json:"received"`
	Lost       int64   `json:"lost"`       // Expected − Received, when positive
	Duplicates int64   `json:"duplicates"` // Received − Expected, when positive
	SendRate   float64 `json:"send_msgs_per_sec"`
	RecvRate   float64 `json:"recv_msgs_per_sec"` // deliveries per second

	Latency *LatencySummary `json:"latency_us,omitempty"`
	// AckLatency is publish to PUBACK (QoS 2: PUBCOMP) at the publisher,
	// from the moment the PUBLISH is handed to the connection's buffer.
	AckLatency *LatencySummary `json:"ack_latency_us,omitempty"`

	Conns          int     `json:"conns,omitempty"`
	ConnectFailed  int     `json:"connect_failed,omitempty"`
	ConnsPerSecond float64 `json:"conns_per_sec,omitempty"`

	Broker *BrokerUsage `json:"broker,omitempty"`
	Errors []string     `json:"errors,omitempty"`
}

// LatencySummary holds publish-to-delivery latencies in microseconds.
type LatencySummary struct {
	Samples uint64  `json:"samples"`
	Mean    float64 `json:"mean"`
	P50     float64 `json:"p50"`
	P90     float64 `json:"p90"`
	P99     float64 `json:"p99"`
	Max     float64 `json:"max"`
}

// BrokerUsage is what /proc said about the broker process.
type BrokerUsage struct {
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_seconds"` // the broker's time on a CPU (ProcCPU) over the measured phase
	// CPUPerMillion is CPUSeconds per million messages received
	// (Connects: per million connections, i.e. µs per connection).
	CPUPerMillion float64 `json:"cpu_seconds_per_million,omitempty"`
	// CtxSwitches is the voluntary plus nonvoluntary context switches of
	// all the broker's threads over the measured phase, and
	// CtxSwitchesPerMsg that per message received (Connects: per
	// connection made).
	CtxSwitches       int64   `json:"ctx_switches,omitempty"`
	CtxSwitchesPerMsg float64 `json:"ctx_switches_per_msg,omitempty"`
	RSSBefore         int64   `json:"rss_before_bytes"`
	RSSAfter          int64   `json:"rss_after_bytes"`
	// RSSPerConn is (RSSAfter − RSSBefore) / Conns in Conns mode.
	RSSPerConn float64 `json:"rss_per_conn_bytes,omitempty"`
}

func summarize(h *histogram) *LatencySummary {
	us := func(d time.Duration) float64 { return float64(d) / 1e3 }
	if h.n == 0 {
		return nil
	}
	return &LatencySummary{
		Samples: h.n,
		Mean:    us(h.sum / time.Duration(h.n)),
		P50:     us(h.quantile(0.50)),
		P90:     us(h.quantile(0.90)),
		P99:     us(h.quantile(0.99)),
		Max:     us(h.max),
	}
}

func versionName(v byte) string {
	if v == packet.V5 {
		return "5"
	}
	return "3.1.1"
}

// Summary is the one-line report of r.
func (r *Result) Summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s mqtt=%s qos=%d", r.Mode, r.MQTT, r.QoS)
	if r.Mode == Conns || r.Mode == Connects {
		fmt.Fprintf(&b, " conns=%d failed=%d in %.2fs (%.0f/s)", r.Conns, r.ConnectFailed, r.Seconds, r.ConnsPerSecond)
	} else {
		fmt.Fprintf(&b, " pubs=%d subs=%d payload=%dB sent=%d recv=%d lost=%d", r.Publishers, r.Subscribers, r.Payload, r.Sent, r.Received, r.Lost)
		if r.Duplicates > 0 {
			fmt.Fprintf(&b, " dup=%d", r.Duplicates)
		}
		fmt.Fprintf(&b, " %.0f msg/s in %.2fs", r.RecvRate, r.Seconds)
	}
	if l := r.Latency; l != nil {
		fmt.Fprintf(&b, " latency p50=%s p90=%s p99=%s max=%s", fmtUS(l.P50), fmtUS(l.P90), fmtUS(l.P99), fmtUS(l.Max))
	}
	if l := r.AckLatency; l != nil {
		fmt.Fprintf(&b, " ack p50=%s p99=%s", fmtUS(l.P50), fmtUS(l.P99))
	}
	if u := r.Broker; u != nil && r.Mode == Conns {
		fmt.Fprintf(&b, " broker rss %d→%d KiB (%.1f KiB/conn)", u.RSSBefore>>10, u.RSSAfter>>10, u.RSSPerConn/1024)
	} else if u != nil && r.Mode == Connects {
		fmt.Fprintf(&b, " broker cpu=%.2fs (%.0fµs per connection, %.1f context switches each)", u.CPUSeconds, u.CPUPerMillion, u.CtxSwitchesPerMsg)
	} else if u != nil {
		fmt.Fprintf(&b, " broker cpu=%.2fs (%.2fs per million, %.2f context switches per message)", u.CPUSeconds, u.CPUPerMillion, u.CtxSwitchesPerMsg)
	}
	if len(r.Errors) > 0 {
		fmt.Fprintf(&b, " errors=%d (first: %s)", len(r.Errors), r.Errors[0])
	}
	return b.String()
}

func fmtUS(us float64) string {
	return time.Duration(us * 1e3).Round(time.Microsecond).String()
}
