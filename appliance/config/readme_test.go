package config

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"edgebroker/broker/testenv"
)

// readmeUpstreamYAML returns the configuration of README's "Sending data
// upstream" example: the first yaml block of that section.
func readmeUpstreamYAML(t *testing.T) string {
	t.Helper()
	return testenv.ReadmeBlock(t, "\n## Sending data upstream\n", "```yaml")
}

func loadYAML(yaml string) (*Set, error) {
	s, err := Load(fstest.MapFS{"upstream.yaml": {Data: []byte(yaml)}}, "upstream.yaml")
	if err != nil {
		return nil, err
	}
	return s, s.Validate()
}

// TestReadmeUpstreamExample: README's dataflow example validates without
// warnings and means what README says: telemetry up under site1/,
// commands/site1/X down as commands/X, a 512Mi disk budget.
func TestReadmeUpstreamExample(t *testing.T) {
	s, err := loadYAML(readmeUpstreamYAML(t))
	if err != nil {
		t.Fatalf("README's example:\n%v", err)
	}
	if w := s.Warnings(); len(w) > 0 {
		t.Errorf("README's example has warnings:\n%v", w)
	}
	if got, want := s.DiskBufferBytes(), int64(512<<20); got != want {
		t.Errorf("disk budget %d, want %d", got, want)
	}
	flows := s.Flows()
	if len(flows) != 2 {
		t.Fatalf("%d flows, want 2: %+v", len(flows), flows)
	}
	for _, c := range []struct {
		flow      ResolvedFlow
		name      string
		dir       FlowDirection
		topic, to string
	}{
		{flows[0], "telemetry-up", FlowUp, "telemetry/boiler/temp", "site1/telemetry/boiler/temp"},
		{flows[1], "commands-down", FlowDown, "commands/site1/boiler", "commands/boiler"},
	} {
		f := c.flow
		if f.Name != c.name || f.Direction != c.dir || strings.Join(f.Remote.Hosts, ",") != "localhost:1884" || f.Remote.TLS {
			t.Errorf("flow %+v: want %s going %v to localhost:1884, plain", f, c.name, c.dir)
		}
		tmpl, err := ParseTopicTemplate(f.Destination)
		if err != nil {
			t.Fatal(err)
		}
		if got, ok := tmpl.Expand(c.topic); !ok || got != c.to {
			t.Errorf("%s: %s goes to %q (%v), want %q", f.Name, c.topic, got, ok, c.to)
		}
	}
	// A command without a third level has no destination: dropped.
	tmpl, _ := ParseTopicTemplate(flows[1].Destination)
	if got, ok := tmpl.Expand("commands/site1"); ok {
		t.Errorf("commands/site1 goes to %q, want dropped", got)
	}
}

// TestReadmeUpstreamRefusals: what README says is refused is refused, at
// the field it names, when written into README's example.
func TestReadmeUpstreamRefusals(t *testing.T) {
	base := readmeUpstreamYAML(t)
	const (
		endpoint  = "DataflowEndpoint"
		flow      = "Dataflow"
		method    = "{method: Anonymous}"
		qos       = "    qos: 1\n"
		firstDest = "  - operationType: Destination\n    destinationSettings: {endpointRef: cloud"
		dest      = `dataDestination: "site1/${inputTopic}"}`
	)
	for _, c := range []struct {
		old, new   string
		kind, path string
	}{
		{"endpointType: Mqtt", "endpointType: Kafka", endpoint, "spec.endpointType"},
		{"endpointType: Mqtt", "endpointType: DataLakeStorage", endpoint, "spec.endpointType"},
		{"endpointType: Mqtt", "endpointType: FabricOneLake", endpoint, "spec.endpointType"},
		{"endpointType: Mqtt", "endpointType: DataExplorer", endpoint, "spec.endpointType"},
		{"endpointType: Mqtt", "endpointType: LocalStorage", endpoint, "spec.endpointType"},
		{"endpointType: Mqtt", "endpointType: OpenTelemetry", endpoint, "spec.endpointType"},
		{method, "{method: ServiceAccountToken}", endpoint, "spec.mqttSettings.authentication.method"},
		{method, "{method: SystemAssignedManagedIdentity}", endpoint, "spec.mqttSettings.authentication.method"},
		{method, "{method: UserAssignedManagedIdentity}", endpoint, "spec.mqttSettings.authentication.method"},
		{qos, "    qos: 2\n", endpoint, "spec.mqttSettings.qos"},
		{qos, qos + "    cloudEventAttributes: CreateOrRemap\n", endpoint, "spec.mqttSettings.cloudEventAttributes"},
		{firstDest, "  - operationType: BuiltInTransformation\n    builtInTransformationSettings: {map: []}\n" + firstDest,
			flow, "spec.operations[1].operationType"},
		{dest, `dataDestination: "site1/${inputTopic}", headers: []}`, flow, "spec.operations[1].destinationSettings.headers"},
	} {
		if strings.Count(base, c.old) != 1 {
			t.Fatalf("README's example holds %q %d times, want once", c.old, strings.Count(base, c.old))
		}
		_, err := loadYAML(strings.Replace(base, c.old, c.new, 1))
		var es Errors
		if !errors.As(err, &es) {
			t.Errorf("%q: got %v, want an error at %s/%s", c.new, err, c.kind, c.path)
			continue
		}
		found := false
		for _, e := range es {
			found = found || (e.Kind == c.kind && e.Path == c.path)
		}
		if !found {
			t.Errorf("%q: errors\n%v\nwant one at %s: %s", c.new, err, c.kind, c.path)
		}
	}
}

// TestReadmeDeviceExample: README's Device example validates, means what
// its comments say, and the error README quotes is the one a bad address
// in it gets.
func TestReadmeDeviceExample(t *testing.T) {
	block := testenv.ReadmeBlock(t, "\n### Device settings\n", "```yaml")
	rs, err := Parse("device.yaml", []byte(block))
	if err != nil {
		t.Fatalf("README's Device example:\n%v", err)
	}
	var s Set
	s.Add(rs...)
	if err := s.Validate(); err != nil {
		t.Fatalf("README's Device example:\n%v", err)
	}
	d := s.Device()
	if d == nil || d.Spec.Hostname != "gw-hall-3" || d.Spec.Interfaces[0].Addressing != AddressingStatic || s.WiFiPassphrase() != "correct horse battery staple" {
		t.Errorf("README's Device: %+v", d)
	}
	bad := strings.Replace(block, "192.168.10.20/24", "10.0.0.300/24", 1)
	rs, _ = Parse("device.yaml", []byte(bad))
	var s2 Set
	s2.Add(rs...)
	want := `device.yaml:10: Device/site: spec.interfaces[0].address: "10.0.0.300/24" is not an IP prefix`
	if err := s2.Validate(); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad address: %v, want %s", err, want)
	}
	if !strings.Contains(testenv.Readme(t), "`"+want+"`") {
		t.Errorf("README does not quote %s", want)
	}
}
