package benchcompare

import (
	"encoding/xml"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"edgebroker/tools/loadgen"
)

// testReport has a message scenario, an idle one, a handshake one and one
// mosquitto was not run in.
func testReport() *Report {
	fan := func(rate, cpu float64) sample {
		return sample{res: &loadgen.Result{Mode: loadgen.FanIn, RecvRate: rate, Latency: &loadgen.LatencySummary{P99: 2000},
			Broker: &loadgen.BrokerUsage{CPUPerMillion: cpu, CtxSwitchesPerMsg: cpu / 4}}}
	}
	idle := func(perConn float64) sample {
		return sample{res: &loadgen.Result{Mode: loadgen.Conns, Conns: 10, Broker: &loadgen.BrokerUsage{RSSPerConn: perConn}}}
	}
	hs := func(rate, cpu float64) sample {
		return sample{res: &loadgen.Result{Mode: loadgen.Connects, Conns: 100, ConnsPerSecond: rate,
			Broker: &loadgen.BrokerUsage{CPUPerMillion: cpu, CtxSwitchesPerMsg: 3}}}
	}
	return &Report{
		cfg:       Config{Rounds: 3, Payload: 64, HandshakeDialers: 8},
		brokers:   []string{"edgebroker", "mosquitto"},
		scenarios: []string{"fan-in", "idle", "TLS handshakes", "WebSocket fan-in"},
		samples: map[[2]string][]sample{
			{"fan-in", "edgebroker"}:           {fan(300, 1), fan(100, 3), fan(200, 2)},
			{"fan-in", "mosquitto"}:            {fan(50, 4), fan(150, 8)},
			{"idle", "edgebroker"}:             {idle(4096), {err: errTest}},
			{"idle", "mosquitto"}:              {idle(1024)},
			{"TLS handshakes", "edgebroker"}:   {hs(2000, 500)},
			{"TLS handshakes", "mosquitto"}:    {hs(1000, 1000)},
			{"WebSocket fan-in", "edgebroker"}: {fan(400, 2)},
		},
		notRun: map[[2]string]string{{"WebSocket fan-in", "mosquitto"}: "mosquitto did not serve a WebSocket port (Error: Unable to start any listening sockets, exiting.)"},
	}
}

func TestMarkdown(t *testing.T) {
	md := testReport().Markdown()
	for _, want := range []string{
		"| scenario | broker | msg/s | CPU s / M msgs | ctx switches / msg | p99 latency ms | RSS / idle conn KiB | connects/s | CPU ms / connect | lost |",
		"| fan-in | edgebroker | 200 | 2.00 | 0.50 | 2.00 | – | – | – | 0 |",
		"| fan-in | mosquitto | 100 | 6.00 | 1.50 | 2.00 | – | – | – | 0 |",
		"| fan-in | **edgebroker / mosquitto** | 2.00× | 0.33× | 0.33× | 1.00× | – | – | – | |",
		"| idle | edgebroker | – | – | – | – | 4.0 | – | – | 0 (1/2 runs had errors) |",
		"| idle | **edgebroker / mosquitto** | – | – | – | – | 4.00× | – | – | |",
		"| TLS handshakes | edgebroker | – | – | – | – | – | 2000 | 0.500 | 0 |",
		"| TLS handshakes | **edgebroker / mosquitto** | – | – | – | – | – | 2.00× | 0.50× | |",
		"| WebSocket fan-in | edgebroker | 400 | 2.00 | 0.50 | 2.00 | – | – | – | 0 |",
		"| WebSocket fan-in | mosquitto | – | – | – | – | – | – | – | not run (below) |",
		"| WebSocket fan-in | **edgebroker / mosquitto** | – | – | – | – | – | – | – | |",
		"- not run: mosquitto did not serve a WebSocket port (Error: Unable to start any listening sockets, exiting.).",
		"again and again, 8 at a time",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

// TestSVG: the chart is well-formed XML with one bar per scenario and
// broker in each panel the scenario has a figure for, and says why a
// broker was not run.
func TestSVG(t *testing.T) {
	r := testReport()
	svg := r.SVG()
	type bar struct{ panel, scenario, broker string }
	var bars []bar
	var texts []string
	panel := -1
	d := xml.NewDecoder(strings.NewReader(string(svg)))
	var inText bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range tok.Attr {
				attr[a.Name.Local] = a.Value
			}
			if tok.Name.Local == "text" && attr["class"] == "panel" {
				panel++
			}
			if tok.Name.Local == "rect" && attr["class"] == "bar" {
				bars = append(bars, bar{panels[panel].title, attr["data-scenario"], attr["data-broker"]})
			}
			inText = tok.Name.Local == "text" || tok.Name.Local == "title"
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
			}
		case xml.EndElement:
			inText = false
		}
	}
	thr, cpu, mem := panels[0].title, panels[1].title, panels[2].title
	want := []bar{
		{thr, "fan-in", "edgebroker"}, {thr, "fan-in", "mosquitto"},
		{thr, "TLS handshakes", "edgebroker"}, {thr, "TLS handshakes", "mosquitto"},
		{thr, "WebSocket fan-in", "edgebroker"},
		{cpu, "fan-in", "edgebroker"}, {cpu, "fan-in", "mosquitto"},
		{cpu, "TLS handshakes", "edgebroker"}, {cpu, "TLS handshakes", "mosquitto"},
		{cpu, "WebSocket fan-in", "edgebroker"},
		{mem, "idle", "edgebroker"}, {mem, "idle", "mosquitto"},
	}
	if !slices.Equal(bars, want) {
		t.Errorf("bars:\n got %v\nwant %v", bars, want)
	}
	for _, s := range []string{"200 msg/s (2.00× mosquitto)", "2000 connects/s (2.00× mosquitto)", "500 µs / connect (0.50× mosquitto)",
		"4.00 KiB / conn (4.00× mosquitto)", "mosquitto: not run (see the table's notes)", "mosquitto did not serve a WebSocket port (Error"} {
		if !slices.ContainsFunc(texts, func(x string) bool { return strings.HasPrefix(x, s) }) {
			t.Errorf("no text %q in %q", s, texts)
		}
	}
}

// TestReadJSON: a report read back from its JSON draws the same bars.
func TestReadJSON(t *testing.T) {
	r := testReport()
	r.notRun = nil
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.scenarios, r.scenarios) || !slices.Equal(back.brokers, r.brokers) || back.cfg.Rounds != 3 {
		t.Errorf("read back: scenarios %v, brokers %v, rounds %d", back.scenarios, back.brokers, back.cfg.Rounds)
	}
	if got, want := strings.Count(string(back.SVG()), `class="bar"`), strings.Count(string(r.SVG()), `class="bar"`); got != want || got != 12 {
		t.Errorf("bars read back: %d, want %d (12)", got, want)
	}
	if _, err := ReadJSON([]byte("[]")); err == nil {
		t.Error("ReadJSON of no runs: no error")
	}
}

func TestParseRates(t *testing.T) {
	got, err := ParseRates(" 1000, 5000,")
	if err != nil || !slices.Equal(got, []float64{1000, 5000}) {
		t.Errorf("ParseRates = %v, %v", got, err)
	}
	for _, bad := range []string{"0", "-5", "x", "Inf"} {
		if _, err := ParseRates(bad); err == nil {
			t.Errorf("ParseRates(%q): no error", bad)
		}
	}
}

var errTest = errors.New("broker died")
