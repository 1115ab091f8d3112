package benchcompare

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"edgebroker/tools/loadgen"
)

// The dataflow scenario (issue 15's benchmark): QoS 1 publishers on the
// broker under test, whose flow up forwards telemetry/# to an upstream
// broker (a separate mosquitto, started per run), where the subscriber
// is. edgebroker runs a Dataflow; mosquitto a bridge.

// dataflowTopic is the first level of the scenario's topics: what the
// flow and the bridge forward (dataflowTopic/#), unchanged.
const dataflowTopic = "telemetry"

// dataflowScenario is the forwarding scenario, with pubs publishers.
func dataflowScenario(base loadgen.Config, pubs int) scenario {
	l := base
	l.Mode, l.Publishers, l.QoS, l.Count = loadgen.FanIn, pubs, 1, 20_000_000
	l.TopicPrefix = dataflowTopic
	// A bridge's acknowledgements come in windows: allow pauses longer
	// than the default 1 s before the stragglers count as lost.
	l.Drain = 3 * time.Second
	return scenario{name: fmt.Sprintf("dataflow up QoS 1 (%d→1 upstream)", pubs), load: l}
}

// edgebrokerDataflow is edgebroker's configuration for the scenario: a
// DataflowEndpoint for the upstream (AIO's defaults: QoS 1,
// maxInflightMessages 100) and a Dataflow dataflowTopic/# → there,
// topics unchanged.
const edgebrokerDataflow = `apiVersion: connectivity.iotoperations.azure.com/v1
kind: DataflowEndpoint
metadata: {name: upstream}
spec:
  endpointType: Mqtt
  mqttSettings:
    host: "%s"
    authentication: {method: Anonymous}
    tls: {mode: Disabled}
    qos: 1
---
apiVersion: connectivity.iotoperations.azure.com/v1
kind: Dataflow
metadata: {name: up}
spec:
  operations:
  - operationType: Source
    sourceSettings: {endpointRef: default, dataSources: ["` + dataflowTopic + `/#"]}
  - operationType: Destination
    destinationSettings: {endpointRef: upstream, dataDestination: "${inputTopic}"}
`

// writeDataflowConfig writes edgebroker's configuration for a run that
// forwards to upstream and returns its path.
func writeDataflowConfig(dir, upstream string) (string, error) {
	path := filepath.Join(dir, "dataflow.yaml")
	return path, os.WriteFile(path, fmt.Appendf(nil, edgebrokerDataflow, upstream), 0o644)
}

// mosquittoBridge is mosquitto's bridge to the upstream: a persistent
// session there (cleansession false), QoS 1 out, topics unchanged, no
// $SYS notifications.
const mosquittoBridge = `
connection upstream
address %s
topic ` + dataflowTopic + `/# out 1
cleansession false
notifications false
`

// startUpstream starts the mosquitto a dataflow run forwards to, plain
// and without persistence, in its own folder under dir.
func startUpstream(ctx context.Context, bin, dir string) (*proc, error) {
	dir = filepath.Join(dir, "upstream")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil, err
	}
	up := mosquitto(bin, "")
	up.name = "upstream"
	return start(ctx, up, launch{dir: dir})
}

// awaitForwarding publishes one QoS 1 message at a time to addr until
// one arrives at upstream (within 30 s): the flow or bridge is up.
func awaitForwarding(ctx context.Context, addr, upstream string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := loadgen.Run(ctx, loadgen.Config{Mode: loadgen.FanIn, Addr: addr, SubAddr: upstream, TopicPrefix: dataflowTopic,
			QoS: 1, Publishers: 1, Count: 1, Duration: time.Second, Drain: time.Second}, nil)
		switch {
		case err != nil:
			return err
		case res.Received > 0:
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		case time.Now().After(deadline):
			return errors.New("benchcompare: nothing forwarded to the upstream after 30s")
		}
	}
}

// dataflowMarkdown renders the dataflow scenarios' own table, if any ran.
func (r *Report) dataflowMarkdown(b *strings.Builder) {
	var scs []string
	for _, sc := range r.scenarios {
		if r.dataflow[sc] {
			scs = append(scs, sc)
		}
	}
	if len(scs) == 0 {
		return
	}
	fmt.Fprintf(b, "\n## Dataflow up\n\n")
	b.WriteString("QoS 1 publishers (at most 32 PUBLISH each awaiting PUBACK) on the broker under test, topics `telemetry/…`; the broker forwards `telemetry/#` at QoS 1 to an upstream broker (a separate mosquitto, plain, started for each run), where one subscriber (QoS 1, clean session) receives. ")
	b.WriteString("edgebroker runs a Dataflow (`-config`: a DataflowEndpoint with AIO's defaults, `maxInflightMessages` 100, and a Dataflow `telemetry/#` → `${inputTopic}`): what it forwards is journaled (the flow is a persistent session) before the publisher's PUBACK and retired when the upstream acknowledged it. ")
	b.WriteString("mosquitto runs a bridge (`connection`, `address`, `topic telemetry/# out 1`, `cleansession false`, `notifications false`) with `persistence true` as in the durable scenarios (saved every 30 minutes and at shutdown, not before a PUBACK) and its outbound window `max_inflight_messages 32`.\n\n")
	cols := []struct {
		head   string
		value  func(s sample) (float64, bool)
		format string
		ratio  bool
	}{
		{"msg/s", func(s sample) (float64, bool) { return s.res.RecvRate, true }, "%.0f", true},
		{"CPU s / M msgs", func(s sample) (float64, bool) {
			if s.res.Broker == nil {
				return 0, false
			}
			return s.res.Broker.CPUPerMillion, true
		}, "%.2f", true},
		{"journal B / msg", func(s sample) (float64, bool) {
			if s.journal == nil {
				return 0, false
			}
			return s.journal.BytesPerMsg, true
		}, "%.0f", false},
		{"fsyncs/s", func(s sample) (float64, bool) {
			if s.journal == nil {
				return 0, false
			}
			return s.journal.FsyncsPerSec, true
		}, "%.0f", false},
	}
	b.WriteString("| scenario | broker |")
	for _, c := range cols {
		fmt.Fprintf(b, " %s |", c.head)
	}
	b.WriteString(" lost |\n|---|---|")
	for range cols {
		b.WriteString("---:|")
	}
	b.WriteString("---:|\n")
	for _, sc := range scs {
		vals := map[string][]float64{}
		for _, br := range r.brokers {
			ss := r.samples[[2]string{sc, br}]
			fmt.Fprintf(b, "| %s | %s |", sc, br)
			for _, c := range cols {
				v, ok := medianOf(ss, c.value)
				if !ok {
					v = math.NaN()
					b.WriteString(" – |")
				} else {
					fmt.Fprintf(b, " "+c.format+" |", v)
				}
				vals[br] = append(vals[br], v)
			}
			n, failed := lost(ss)
			fmt.Fprintf(b, " %d", n)
			if failed > 0 {
				fmt.Fprintf(b, " (%d/%d runs had errors)", failed, len(ss))
			}
			b.WriteString(" |\n")
		}
		if len(r.brokers) != 2 {
			continue
		}
		a, c := vals[r.brokers[0]], vals[r.brokers[1]]
		fmt.Fprintf(b, "| %s | **%s / %s** |", sc, r.brokers[0], r.brokers[1])
		for i, col := range cols {
			if !col.ratio || math.IsNaN(a[i]) || math.IsNaN(c[i]) || c[i] == 0 {
				b.WriteString(" – |")
			} else {
				fmt.Fprintf(b, " %.2f× |", a[i]/c[i])
			}
		}
		b.WriteString(" |\n")
	}
	b.WriteString(`
- msg/s: messages delivered to the subscriber on the upstream per second, first publish to last delivery. CPU s / M msgs: the broker under test's (not the upstream's) time on a CPU per million delivered. lost: published and acknowledged but never delivered upstream (must be 0).
- journal B / msg, fsyncs/s: from edgebroker's /metrics (edgebroker_journal_written_bytes_total, _fsyncs_total) between the clients connecting and the last delivery, per acknowledged publish: every record a forwarded message costs (message, delivery to the flow's session, its retirement).
`)
}
