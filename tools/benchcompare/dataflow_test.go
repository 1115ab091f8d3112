package benchcompare

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"edgebroker/appliance/config"
	"edgebroker/tools/loadgen"
)

// TestDataflowScenario: -only dataflow is one scenario of QoS 1
// publishers on telemetry/… (what both brokers forward), the only one
// that forwards; edgebroker gets a Dataflow to the upstream that the
// configuration package accepts, mosquitto a bridge, and both keep their
// queue on disk as far as they do.
func TestDataflowScenario(t *testing.T) {
	cfg := Config{Payload: 64, DataflowPubs: 8, Duration: 3 * time.Second, Only: []string{"dataflow"}}
	scs := cfg.scenarios()
	if len(scs) != 1 || scs[0].name != "dataflow up QoS 1 (8→1 upstream)" {
		t.Fatalf("scenarios: %+v", scs)
	}
	s := scs[0]
	if l := s.load; !s.dataflow() || s.durable() || l.Mode != loadgen.FanIn || l.QoS != 1 || l.Publishers != 8 ||
		l.Subscribers != 0 || l.TopicPrefix != "telemetry" || l.Rate != 0 || l.Duration != 3*time.Second {
		t.Errorf("%s: load %+v", s.name, l)
	}
	cfg.Only = nil
	for _, o := range cfg.scenarios() {
		if o.name != s.name && o.dataflow() {
			t.Errorf("%s forwards to an upstream", o.name)
		}
	}

	const upstream = "127.0.0.1:18830"
	dir := t.TempDir()
	cmd, err := edgebroker("bin/edgebroker").command(launch{dir: dir, port: 1883, durable: true, upstream: upstream})
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(cmd.Args, " ")
	conf := filepath.Join(dir, "dataflow.yaml")
	if !strings.Contains(args, "-config "+conf) {
		t.Fatalf("edgebroker %s: no -config %s", args, conf)
	}
	set, err := config.LoadPath(conf)
	if err == nil {
		err = set.Validate()
	}
	if err != nil {
		t.Fatalf("edgebroker's dataflow configuration: %v", err)
	}
	flows := set.Flows()
	if len(flows) != 1 || flows[0].Direction != config.FlowUp || flows[0].Remote.Hosts[0] != upstream ||
		flows[0].Remote.QoS != 1 || flows[0].Remote.TLS || flows[0].Sources[0] != "telemetry/#" || flows[0].Destination != "${inputTopic}" {
		t.Errorf("edgebroker's flows: %+v", flows)
	}

	dir = t.TempDir()
	if _, err := mosquitto("mosquitto", "").command(launch{dir: dir, port: 1883, durable: true, upstream: upstream}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "mosquitto.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\nconnection upstream\n", "\naddress " + upstream + "\n", "\ntopic telemetry/# out 1\n",
		"\ncleansession false\n", "\npersistence true\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("mosquitto.conf lacks %q:\n%s", want, b)
		}
	}
}
