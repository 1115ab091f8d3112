package appliance_test

import (
	"encoding/json"
	"html/template"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
)

// readmeUpstreamYAML returns the configuration of README's "Sending data
// upstream" example, its upstream (localhost:1884, README's mosquitto -p
// 1884) replaced by upstream.
func readmeUpstreamYAML(t *testing.T, upstream string) string {
	t.Helper()
	block := testenv.ReadmeBlock(t, "\n## Sending data upstream\n", "```yaml")
	const host = `host: "localhost:1884"`
	if strings.Count(block, host) != 1 {
		t.Fatalf("README's example does not say %s once", host)
	}
	return strings.Replace(block, host, `host: "`+upstream+`"`, 1)
}

// statusJSON is what the test reads of status.json's dataflows: the
// field names a user sees.
type statusJSON struct {
	Dataflows []struct {
		Name                string
		Up                  bool
		Connected           string
		Protocol            string
		QueuedMessages      int
		QueuedBytes         int64
		OldestQueuedSeconds float64
		ForwardedPerSecond  float64
		Forwarded           uint64
		Dropped             uint64
		LastError           string
		ErrorAt             time.Time
	}
}

// TestDataflowStatusShown runs README's upstream example against a real
// mosquitto that is down at first: status.json, /metrics and the status
// page show each flow's direction, connection, queue (messages, bytes,
// oldest age), forwarding rate and counts, drops and last error, during
// the outage and after it; the queued telemetry arrives in order and a
// command comes down.
func TestDataflowStatusShown(t *testing.T) {
	m := testenv.StartMosquitto(t)
	cfgFile := filepath.Join(t.TempDir(), "upstream.yaml")
	if err := os.WriteFile(cfgFile, []byte(readmeUpstreamYAML(t, m.Addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	// The cloud's reader: a persistent session, so what arrives while it
	// is away waits for it.
	cloudGot := make(chan string, 100)
	cloudOpts := mqtt.NewClientOptions().AddBroker("tcp://" + m.Addr).SetClientID("cloud").SetCleanSession(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { cloudGot <- msg.Topic() + " " + string(msg.Payload()) })
	cloud := pahoClient(t, cloudOpts)
	done(t, "cloud subscribe", cloud.Subscribe("site1/#", 1, nil))
	cloud.Disconnect(100)
	m.Stop() // the outage

	a, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), ConfigPath: cfgFile, PortMap: map[int]int{1883: 0},
		StatusAddr: "127.0.0.1:0"})
	defer stop()
	base := "http://" + a.StatusAddr().String()
	dev := pahoClient(t, mqtt.NewClientOptions().AddBroker("tcp://"+addrs[0].String()).SetClientID("device"))
	defer dev.Disconnect(0)
	for i := range 5 {
		done(t, "publish", dev.Publish("telemetry/boiler/temp", 1, false, strconv.Itoa(i)))
	}
	flow := func(name string) appliance.DataflowStatus {
		for _, f := range a.Status().Dataflows {
			if f.Name == name {
				return f
			}
		}
		t.Fatalf("no dataflow %s in status", name)
		return appliance.DataflowStatus{}
	}
	testenv.Eventually(t, wait, "the outage in status: 5 queued for over a second, not connected, an error", func() bool {
		f := flow("telemetry-up")
		return f.QueuedMessages == 5 && f.Connected == "" && f.LastError != "" && f.OldestQueuedSeconds >= 1
	})

	var st statusJSON
	if err := json.Unmarshal([]byte(get(t, base+"/status.json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Dataflows) != 2 || st.Dataflows[0].Name != "commands-down" || st.Dataflows[1].Name != "telemetry-up" {
		t.Fatalf("status.json dataflows, by name: %+v", st.Dataflows)
	}
	up, down := st.Dataflows[1], st.Dataflows[0]
	if !up.Up || up.Connected != "" || up.Protocol != "" || up.QueuedMessages != 5 || up.QueuedBytes <= 0 ||
		up.OldestQueuedSeconds < 1 || up.ForwardedPerSecond != 0 || up.Forwarded != 0 || up.LastError == "" ||
		time.Since(up.ErrorAt) > time.Minute {
		t.Errorf("status.json during the outage, telemetry-up: %+v", up)
	}
	if down.Up || down.Connected != "" || down.QueuedMessages != 0 || down.OldestQueuedSeconds != 0 || down.LastError == "" {
		t.Errorf("status.json during the outage, commands-down: %+v", down)
	}
	metrics := parseMetrics(t, get(t, base+"/metrics"))
	for name, want := range map[string]func(v float64) bool{
		`edgebroker_dataflow_connected{dataflow="telemetry-up"}`:                    func(v float64) bool { return v == 0 },
		`edgebroker_dataflow_queued_messages{dataflow="telemetry-up"}`:              func(v float64) bool { return v == 5 },
		`edgebroker_dataflow_queued_bytes{dataflow="telemetry-up"}`:                 func(v float64) bool { return v > 0 },
		`edgebroker_dataflow_oldest_queued_seconds{dataflow="telemetry-up"}`:        func(v float64) bool { return v >= 1 },
		`edgebroker_dataflow_oldest_queued_seconds{dataflow="commands-down"}`:       func(v float64) bool { return v == 0 },
		`edgebroker_dataflow_forwarded_per_second{dataflow="telemetry-up"}`:         func(v float64) bool { return v == 0 },
		`edgebroker_dataflow_forwarded_total{dataflow="telemetry-up"}`:              func(v float64) bool { return v == 0 },
		`edgebroker_dataflow_last_error_timestamp_seconds{dataflow="telemetry-up"}`: func(v float64) bool { return v > float64(time.Now().Add(-time.Minute).Unix()) },
	} {
		if v, ok := metrics[name]; !ok || !want(v) {
			t.Errorf("/metrics during the outage: %s = %v (present %v)", name, v, ok)
		}
	}
	page := get(t, base+"/")
	if !strings.Contains(page, "<h2>Dataflows</h2>") {
		t.Fatalf("status page without Dataflows:\n%s", page)
	}
	row := pageRow(t, page, "telemetry-up")
	lastErr := flow("telemetry-up").LastError
	for _, want := range []string{"<td>up</td>", `<td class="bad">not connected</td>`, "<td>5 messages, ",
		`<td class="bad">` + template.HTMLEscapeString(lastErr)} {
		if !strings.Contains(row, want) {
			t.Errorf("status page row lacks %q:\n%s", want, row)
		}
	}
	if v := pageSeconds(t, row); v < 1 {
		t.Errorf("status page: oldest queued %v s, want ≥ 1:\n%s", v, row)
	}

	m.Start() // the upstream is back
	testenv.Eventually(t, 40*time.Second, "the queue forwarded and the rate in status", func() bool {
		f := flow("telemetry-up")
		return f.Connected == m.Addr && f.Protocol == "5.0" && f.Forwarded == 5 && f.QueuedMessages == 0 &&
			f.OldestQueuedSeconds == 0 && f.ForwardedPerSecond > 0
	})
	// At once, while the forwarding is within the rate's window.
	if err := json.Unmarshal([]byte(get(t, base+"/status.json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Dataflows) != 2 {
		t.Fatalf("status.json dataflows: %+v", st.Dataflows)
	}
	up = st.Dataflows[1]
	if up.Connected != m.Addr || up.Protocol != "5.0" || up.QueuedMessages != 0 || up.QueuedBytes != 0 ||
		up.OldestQueuedSeconds != 0 || up.ForwardedPerSecond <= 0 || up.Forwarded != 5 || up.Dropped != 0 {
		t.Errorf("status.json after the outage, telemetry-up: %+v", up)
	}
	metrics = parseMetrics(t, get(t, base+"/metrics"))
	info := `edgebroker_dataflow_upstream_info{dataflow="telemetry-up",host="` + m.Addr + `",protocol="5.0"}`
	for name, want := range map[string]func(v float64) bool{
		`edgebroker_dataflow_connected{dataflow="telemetry-up"}`: func(v float64) bool { return v == 1 },
		info: func(v float64) bool { return v == 1 },
		`edgebroker_dataflow_queued_messages{dataflow="telemetry-up"}`:       func(v float64) bool { return v == 0 },
		`edgebroker_dataflow_oldest_queued_seconds{dataflow="telemetry-up"}`: func(v float64) bool { return v == 0 },
		`edgebroker_dataflow_forwarded_per_second{dataflow="telemetry-up"}`:  func(v float64) bool { return v > 0 },
		`edgebroker_dataflow_forwarded_total{dataflow="telemetry-up"}`:       func(v float64) bool { return v == 5 },
		`edgebroker_dataflow_dropped_total{dataflow="telemetry-up"}`:         func(v float64) bool { return v == 0 },
	} {
		if v, ok := metrics[name]; !ok || !want(v) {
			t.Errorf("/metrics after the outage: %s = %v (present %v)", name, v, ok)
		}
	}
	row = pageRow(t, get(t, base+"/"), "telemetry-up")
	if !strings.Contains(row, "<td>"+m.Addr+" (MQTT 5.0)</td>") || !strings.Contains(row, "<td>0 messages, 0 bytes</td><td>0.0 s</td>") ||
		!regexp.MustCompile(`<td>([1-9][0-9]*\.[0-9]|0\.[1-9])</td>\s*<td>5</td><td>0</td>`).MatchString(row) {
		t.Errorf("status page row after the outage: want the host and protocol, an empty queue, a rate, 5 forwarded, 0 dropped:\n%s", row)
	}

	cloud = pahoClient(t, cloudOpts)
	defer cloud.Disconnect(0)
	for i := range 5 {
		select {
		case got := <-cloudGot:
			if want := "site1/telemetry/boiler/temp " + strconv.Itoa(i); got != want {
				t.Fatalf("the cloud got %q, want %q", got, want)
			}
		case <-time.After(wait):
			t.Fatalf("%d of 5 queued messages reached the cloud", i)
		}
	}
	devGot := subscribe(t, dev, "commands/#")
	testenv.Eventually(t, 40*time.Second, "commands-down subscribed upstream", func() bool { return flow("commands-down").Subscribed })
	done(t, "command", cloud.Publish("commands/site1", 1, false, "no third level: dropped"))
	done(t, "command", cloud.Publish("commands/site1/boiler", 1, false, "off"))
	select {
	case got := <-devGot:
		if got != "commands/boiler off" {
			t.Fatalf("the device got %q", got)
		}
	case <-time.After(wait):
		t.Fatal("the command did not come down")
	}
	testenv.Eventually(t, wait, "commands-down counts", func() bool {
		f := flow("commands-down")
		return f.Forwarded == 1 && f.Dropped == 1
	})

	if err := json.Unmarshal([]byte(get(t, base+"/status.json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Dataflows) != 2 {
		t.Fatalf("status.json dataflows: %+v", st.Dataflows)
	}
	if down = st.Dataflows[0]; down.Connected != m.Addr || down.Forwarded != 1 || down.Dropped != 1 {
		t.Errorf("status.json, commands-down: %+v", down)
	}
	metrics = parseMetrics(t, get(t, base+"/metrics"))
	for name, want := range map[string]float64{
		`edgebroker_dataflow_forwarded_total{dataflow="commands-down"}`: 1,
		`edgebroker_dataflow_dropped_total{dataflow="commands-down"}`:   1,
	} {
		if v, ok := metrics[name]; !ok || v != want {
			t.Errorf("/metrics: %s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if row := pageRow(t, get(t, base+"/"), "commands-down"); !strings.Contains(row, "<td>down</td>") || !strings.Contains(row, "<td>1</td><td>1</td>") {
		t.Errorf("status page row of commands-down: want down, 1 forwarded, 1 dropped:\n%s", row)
	}
}

// parseMetrics reads Prometheus text: each sample's name{labels} and value.
func parseMetrics(t *testing.T, body string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics: %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// pageRow returns the status page's table row of a dataflow.
func pageRow(t *testing.T, page, name string) string {
	t.Helper()
	for row := range strings.SplitSeq(page, "<tr>") {
		if strings.HasPrefix(row, "<td>"+name+"</td>") {
			row, _, _ = strings.Cut(row, "</tr>")
			return row
		}
	}
	t.Fatalf("status page: no row for dataflow %s:\n%s", name, page)
	return ""
}

// pageSeconds returns the oldest queued age in a status page row.
func pageSeconds(t *testing.T, row string) float64 {
	t.Helper()
	m := regexp.MustCompile(`<td>([0-9.]+) s</td>`).FindStringSubmatch(row)
	if m == nil {
		t.Fatalf("status page row without an age:\n%s", row)
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}
