package benchcompare

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/tools/loadgen"
)

// metric is one column of the table: how to read it from a result and
// how to print it.
type metric struct {
	head   string
	value  func(r *loadgen.Result) (float64, bool)
	format string
	higher bool // higher is better (a rate)
}

// messages: r is a run that delivers messages (not idle or connecting
// clients).
func messages(r *loadgen.Result) bool { return r.Mode != loadgen.Conns && r.Mode != loadgen.Connects }

var metrics = []metric{
	{"msg/s", func(r *loadgen.Result) (float64, bool) {
		return r.RecvRate, messages(r)
	}, "%.0f", true},
	{"CPU s / M msgs", func(r *loadgen.Result) (float64, bool) {
		if r.Broker == nil || !messages(r) {
			return 0, false
		}
		return r.Broker.CPUPerMillion, true
	}, "%.2f", false},
	{"ctx switches / msg", func(r *loadgen.Result) (float64, bool) {
		if r.Broker == nil || !messages(r) {
			return 0, false
		}
		return r.Broker.CtxSwitchesPerMsg, true
	}, "%.2f", false},
	{"p99 latency ms", func(r *loadgen.Result) (float64, bool) {
		if r.Latency == nil {
			return 0, false
		}
		return r.Latency.P99 / 1e3, true
	}, "%.2f", false},
	{"RSS / idle conn KiB", func(r *loadgen.Result) (float64, bool) {
		if r.Broker == nil || r.Mode != loadgen.Conns {
			return 0, false
		}
		return r.Broker.RSSPerConn / 1024, true
	}, "%.1f", false},
	{"connects/s", func(r *loadgen.Result) (float64, bool) {
		return r.ConnsPerSecond, r.Mode == loadgen.Connects
	}, "%.0f", true},
	{"CPU ms / connect", func(r *loadgen.Result) (float64, bool) {
		if r.Broker == nil || r.Mode != loadgen.Connects {
			return 0, false
		}
		return r.Broker.CPUPerMillion / 1e3, true
	}, "%.3f", false},
}

// median returns the median of a metric over the successful samples.
func median(ss []sample, m metric) (float64, bool) {
	return medianOf(ss, func(s sample) (float64, bool) { return m.value(s.res) })
}

// medianOf returns the median of value over the samples with a result.
func medianOf(ss []sample, value func(s sample) (float64, bool)) (float64, bool) {
	var vs []float64
	for _, s := range ss {
		if s.res == nil {
			continue
		}
		if v, ok := value(s); ok {
			vs = append(vs, v)
		}
	}
	if len(vs) == 0 {
		return 0, false
	}
	slices.Sort(vs)
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2], true
	}
	return (vs[n/2-1] + vs[n/2]) / 2, true
}

// lost sums the lost messages (and connections that failed) over the runs.
func lost(ss []sample) (n int64, failed int) {
	for _, s := range ss {
		if s.res != nil {
			n += s.res.Lost + int64(s.res.ConnectFailed)
		}
		if s.err != nil || s.res != nil && len(s.res.Errors) > 0 {
			failed++
		}
	}
	return n, failed
}

// Markdown renders the report as a table with a ratio row per scenario.
func (r *Report) Markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# edgebroker vs mosquitto\n\n")
	fmt.Fprintf(&b, "Measured %s on %s/%s, %d CPUs (shared), %s, %s; %d rounds, median of each; %v per run, MQTT %s, %s. Total time %v.\n\n",
		r.started.Format("2006-01-02 15:04"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), kernel(), mosquittoVersion(r.cfg.Mosquitto),
		r.cfg.Rounds, r.cfg.Duration, mqttName(r.cfg.Version), r.payloads(), r.elapsed.Round(time.Second))
	b.WriteString("| scenario | broker |")
	for _, m := range metrics {
		fmt.Fprintf(&b, " %s |", m.head)
	}
	b.WriteString(" lost |\n|---|---|")
	for range metrics {
		b.WriteString("---:|")
	}
	b.WriteString("---:|\n")
	for _, sc := range r.scenarios {
		vals := map[string][]float64{}
		for _, br := range r.brokers {
			ss := r.samples[[2]string{sc, br}]
			fmt.Fprintf(&b, "| %s | %s |", sc, br)
			if _, ok := r.notRun[[2]string{sc, br}]; ok {
				for range metrics {
					vals[br] = append(vals[br], math.NaN())
					b.WriteString(" – |")
				}
				b.WriteString(" not run (below) |\n")
				continue
			}
			for _, m := range metrics {
				v, ok := median(ss, m)
				vals[br] = append(vals[br], v)
				if ok {
					fmt.Fprintf(&b, " "+m.format+" |", v)
				} else {
					vals[br][len(vals[br])-1] = math.NaN()
					b.WriteString(" – |")
				}
			}
			n, failed := lost(ss)
			fmt.Fprintf(&b, " %d", n)
			if failed > 0 {
				fmt.Fprintf(&b, " (%d/%d runs had errors)", failed, len(ss))
			}
			b.WriteString(" |\n")
		}
		if len(r.brokers) == 2 {
			a, c := vals[r.brokers[0]], vals[r.brokers[1]]
			fmt.Fprintf(&b, "| %s | **%s / %s** |", sc, r.brokers[0], r.brokers[1])
			for i := range metrics {
				if math.IsNaN(a[i]) || math.IsNaN(c[i]) || c[i] == 0 {
					b.WriteString(" – |")
				} else {
					fmt.Fprintf(&b, " %.2f× |", a[i]/c[i])
				}
			}
			b.WriteString(" |\n")
		}
	}
	b.WriteString(`
- msg/s: messages received by all subscribers per second (fan-out counts every delivery), first publish to last delivery; publishers keep at most 500 messages outstanding per subscriber (loadgen -window), so this is the rate a broker sustains without dropping.
- CPU s / M msgs: the broker's time on a CPU over the run (its threads' /proc/PID/task/*/schedstat, nanoseconds; /proc/PID/stat's 10 ms ticks were too coarse for the paced rows), per million delivered messages. Lower is better.
- p99 latency: publish to delivery, from the time stamp in each payload. In the unpaced scenarios it is queueing delay at saturation (bounded by the window); the paced latency scenario is the one to read for latency.
- ctx switches / msg: voluntary + nonvoluntary context switches of all the broker's threads (/proc/PID/task/*/status) over the run, per delivered message. A wake-up per message shows as about 1 here at low rates.
- RSS / idle conn: (VmRSS after N idle clients with one subscription each − VmRSS before) / N, after a 1 s hold.
- connects/s, CPU ms / connect (TLS handshakes): clients connect, make a full handshake (ECDSA P-256 server certificate, the one TLS version named; the clients keep no session cache and offer X25519 and P-256 key exchanges, as OpenSSL 3.0's do; the row marked ML-KEM offered uses Go's default client, which offers the X25519MLKEM768 hybrid first: edgebroker accepts it, mosquitto cannot and takes X25519), CONNECT, CONNACK, DISCONNECT, close, again and again, ` + strconv.Itoa(r.cfg.HandshakeDialers) + ` at a time, for the run's duration; broker CPU per connection made.
- lost: QoS 0 may lose messages under overload; QoS 1 must not. Ratio rows: edgebroker ÷ mosquitto (msg/s and connects/s: higher is better for edgebroker; the other columns: lower is better).
- mosquitto runs with a generated config (persistence false, max_queued_messages 100000, max_inflight_messages 32, set_tcp_nodelay true); edgebroker with its defaults (-loopback off -listen; TLS and WebSocket rows: -config, below). Each run starts a fresh broker process; the order alternates per round.
- TLS rows: both brokers serve a loopback port with the same self-signed ECDSA P-256 certificate generated for the run, TLS 1.2 and 1.3 allowed (mosquitto: certfile, keyfile, tls_version tlsv1.2; edgebroker: -config with a ClusterIp BrokerListener port, tls mode Manual from a kubernetes.io/tls Secret); loadgen's clients verify it; outside the handshake rows they offer both versions and get TLS 1.3. WebSocket rows: subprotocol mqtt on path /mqtt (mosquitto: protocol websockets; edgebroker: a port with protocol WebSockets).
`)
	if r.cfg.MosquittoWS != "" {
		b.WriteString("- WebSocket rows' mosquitto: " + mosquittoVersion(r.cfg.MosquittoWS) + " built from Debian bookworm's sources (mosquitto 2.0.11-1.2+deb12u2 with Debian's patches and compiler flags) against libwebsockets 4.1.6 with LWS_WITH_EXTERNAL_POLL, by tools/benchcompare/build-mosquitto-ws: Debian's package serves no WebSockets (its libwebsockets lacks external poll, which mosquitto 2.0's WebSocket listeners need).\n")
	}
	r.notRunMarkdown(&b)
	r.durableMarkdown(&b)
	r.dataflowMarkdown(&b)
	return b.String()
}

// notRunMarkdown says why a broker was not run in a scenario, once per
// reason.
func (r *Report) notRunMarkdown(b *strings.Builder) {
	var seen []string
	for _, sc := range r.scenarios {
		for _, br := range r.brokers {
			why, ok := r.notRun[[2]string{sc, br}]
			if !ok || slices.Contains(seen, why) {
				continue
			}
			seen = append(seen, why)
			fmt.Fprintf(b, "- not run: %s.\n", why)
		}
	}
}

// payloads describes the payload sizes for the header.
func (r *Report) payloads() string {
	n := 0
	for _, sc := range r.scenarios {
		if r.durable[sc] {
			n++
		}
	}
	switch n {
	case 0:
		return fmt.Sprintf("%d-byte payloads", r.cfg.Payload)
	case len(r.scenarios):
		return "payloads as named"
	}
	return fmt.Sprintf("%d-byte payloads (durable fan-in: as named)", r.cfg.Payload)
}

// jsonRun is one run in the JSON file.
type jsonRun struct {
	Scenario string          `json:"scenario"`
	Broker   string          `json:"broker,omitempty"`
	Result   *loadgen.Result `json:"result,omitempty"`
	Journal  *JournalUsage   `json:"journal,omitempty"`
	Fsync    *FsyncTiming    `json:"fsync,omitempty"`
	Error    string          `json:"error,omitempty"`
}

// ReadJSON reads back what JSON wrote: every run, by scenario and broker
// in the order they first appear, for rendering again (SVG). Settings
// the file does not hold (the duration, MQTT version, payload) are zero,
// but the rounds (the most runs of a scenario and broker).
func ReadJSON(b []byte) (*Report, error) {
	var runs []jsonRun
	if err := json.Unmarshal(b, &runs); err != nil {
		return nil, fmt.Errorf("benchcompare: %w", err)
	}
	r := &Report{samples: make(map[[2]string][]sample), durable: map[string]bool{}, dataflow: map[string]bool{}, notRun: map[[2]string]string{}}
	for _, x := range runs {
		if x.Broker == "" {
			continue // the fsync timing
		}
		if !slices.Contains(r.scenarios, x.Scenario) {
			r.scenarios = append(r.scenarios, x.Scenario)
		}
		if !slices.Contains(r.brokers, x.Broker) {
			r.brokers = append(r.brokers, x.Broker)
		}
		s := sample{res: x.Result, journal: x.Journal}
		if x.Error != "" {
			s.err = errors.New(x.Error)
		}
		key := [2]string{x.Scenario, x.Broker}
		r.samples[key] = append(r.samples[key], s)
		r.cfg.Rounds = max(r.cfg.Rounds, len(r.samples[key]))
		if x.Result != nil {
			r.durable[x.Scenario] = r.durable[x.Scenario] || x.Result.Persistent
			r.cfg.Payload, r.cfg.Version = x.Result.Payload, packet.V311
			if x.Result.MQTT == "5" {
				r.cfg.Version = packet.V5
			}
		}
	}
	if len(r.scenarios) == 0 {
		return nil, errors.New("benchcompare: no runs in the JSON")
	}
	return r, nil
}

// JSON returns every run's result, for a closer look.
func (r *Report) JSON() ([]byte, error) {
	type run = jsonRun
	var out []run
	if r.fsync != nil || r.fsyncErr != nil {
		x := run{Scenario: fsyncScenario, Fsync: r.fsync}
		if r.fsyncErr != nil {
			x.Error = r.fsyncErr.Error()
		}
		out = append(out, x)
	}
	for _, sc := range r.scenarios {
		for _, br := range r.brokers {
			for _, s := range r.samples[[2]string{sc, br}] {
				x := run{Scenario: sc, Broker: br, Result: s.res, Journal: s.journal}
				if s.err != nil {
					x.Error = s.err.Error()
				}
				out = append(out, x)
			}
		}
	}
	return json.MarshalIndent(out, "", "  ")
}

func mqttName(v byte) string {
	if v == 5 {
		return "5"
	}
	return "3.1.1"
}

func kernel() string {
	out, err := exec.Command("uname", "-r").Output()
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(out))
}

func mosquittoVersion(bin string) string {
	out, _ := exec.Command(bin, "-h").CombinedOutput()
	line, _, _ := strings.Cut(string(out), "\n")
	if v, ok := strings.CutPrefix(strings.TrimSpace(line), "mosquitto version "); ok {
		return "mosquitto " + v
	}
	return "mosquitto"
}
