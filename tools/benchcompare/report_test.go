package benchcompare

import (
	"errors"
	"strings"
	"testing"

	"edgebroker/tools/loadgen"
)

func TestMarkdown(t *testing.T) {
	fan := func(rate, cpu float64) sample {
		return sample{res: &loadgen.Result{Mode: loadgen.FanIn, RecvRate: rate,
			Latency: &loadgen.LatencySummary{P99: 2000}, Broker: &loadgen.BrokerUsage{CPUPerMillion: cpu}}}
	}
	idle := func(perConn float64) sample {
		return sample{res: &loadgen.Result{Mode: loadgen.Conns, Conns: 10, Broker: &loadgen.BrokerUsage{RSSPerConn: perConn}}}
	}
	r := &Report{
		cfg:       Config{Rounds: 3, Payload: 64},
		brokers:   []string{"edgebroker", "mosquitto"},
		scenarios: []string{"fan-in", "idle"},
		samples: map[[2]string][]sample{
			{"fan-in", "edgebroker"}: {fan(300, 1), fan(100, 3), fan(200, 2)},
			{"fan-in", "mosquitto"}:  {fan(50, 4), fan(150, 8)},
			{"idle", "edgebroker"}:   {idle(4096), {err: errTest}},
			{"idle", "mosquitto"}:    {idle(1024)},
		},
	}
	md := r.Markdown()
	for _, want := range []string{
		"| fan-in | edgebroker | 200 | 2.00 | 2.00 | – | 0 |",
		"| fan-in | mosquitto | 100 | 6.00 | 2.00 | – | 0 |",
		"| fan-in | **edgebroker / mosquitto** | 2.00× | 0.33× | 1.00× | – | |",
		"| idle | edgebroker | – | – | – | 4.0 | 0 (1/2 runs had errors) |",
		"| idle | **edgebroker / mosquitto** | – | – | – | 4.00× | |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

var errTest = errors.New("broker died")
