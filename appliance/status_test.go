package appliance_test

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker/testenv"
)

// TestStatusEndpoint: the embedded default's status over HTTP: each port
// with its certificate's issuer, expiry and next renewal, the managed
// certificates, the CA certificate clients need, and metrics.
func TestStatusEndpoint(t *testing.T) {
	data := t.TempDir()
	a, _, stop := launch(t, appliance.Config{DataDir: data, Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}, StatusAddr: "127.0.0.1:0"})
	defer stop()
	base := "http://" + a.StatusAddr().String()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := get("/status.json")
	if code != 200 {
		t.Fatalf("/status.json: %d %s", code, body)
	}
	var st struct {
		Ports []struct {
			Listener, Addr string
			Port           int
			Serving        bool
			TLS            *struct {
				Mode, Secret, Issuer  string
				NotAfter, NextRenewal time.Time
				LastError             string
			}
		}
		Certificates []struct{ Secret, Issuer string }
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("status.json: %v\n%s", err, body)
	}
	var sawTLS bool
	for _, p := range st.Ports {
		if !p.Serving || p.Addr == "" {
			t.Errorf("%s/%d not serving: %s", p.Listener, p.Port, body)
		}
		if p.Listener == "default" {
			sawTLS = true
			c := p.TLS
			if c == nil || c.Mode != "Automatic" || c.Secret != "default-18883-server-cert" || c.Issuer != "ca quickstart-root-ca" || c.LastError != "" {
				t.Fatalf("default/18883 TLS status: %+v", c)
			}
			if d := time.Until(c.NotAfter); d < 89*24*time.Hour || d > 91*24*time.Hour {
				t.Errorf("notAfter %v: want the default's 90 days", c.NotAfter)
			}
			if d := c.NotAfter.Sub(c.NextRenewal); d < 29*24*time.Hour || d > 31*24*time.Hour {
				t.Errorf("next renewal %v: want renewBefore 720h before notAfter %v", c.NextRenewal, c.NotAfter)
			}
		}
	}
	if !sawTLS {
		t.Errorf("no default listener in %s", body)
	}
	var secrets []string
	for _, c := range st.Certificates {
		secrets = append(secrets, c.Secret)
	}
	if got := strings.Join(secrets, ","); got != "default-18883-server-cert,quickstart-root-ca" {
		t.Errorf("certificates: %s", got)
	}

	code, body = get("/ca.crt")
	want, err := os.ReadFile(filepath.Join(data, appliance.CAFile))
	if code != 200 || err != nil || body != string(want) {
		t.Errorf("/ca.crt: %d, %d bytes; want DATA/ca.crt (%d bytes, err %v)", code, len(body), len(want), err)
	}
	if code, body = get("/metrics"); code != 200 || !strings.Contains(body, `edgebroker_port_serving{listener="default",port="18883"} 1`) ||
		!strings.Contains(body, `edgebroker_certificate_not_after_seconds{secret="quickstart-root-ca"}`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
	if code, body = get("/"); code != 200 || !strings.Contains(body, "ca quickstart-root-ca") || !strings.Contains(body, "default-18883-server-cert") || !strings.Contains(body, "No bundle applied yet.") ||
		!strings.Contains(body, "<h2>Dataflows</h2>\n<p>No dataflows.</p>") {
		t.Errorf("status page: %d\n%s", code, body)
	}
}

// TestSysTopics: mosquitto's $SYS/broker statistics, retained, for a
// client that subscribes to them.
func TestSysTopics(t *testing.T) {
	_, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}, SysInterval: 50 * time.Millisecond})
	defer stop()
	url := "tcp://" + addrs[1].String()
	sub := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("dash"))
	defer sub.Disconnect(0)
	got := make(chan string, 100)
	done(t, "subscribe", sub.Subscribe("$SYS/broker/#", 0, func(_ mqtt.Client, m mqtt.Message) {
		got <- m.Topic() + " " + string(m.Payload())
	}))
	seen := map[string]string{}
	deadline := time.After(wait)
	for seen["$SYS/broker/clients/connected"] != "1" || seen["$SYS/broker/version"] == "" || seen["$SYS/broker/uptime"] == "" {
		select {
		case m := <-got:
			topic, value, _ := strings.Cut(m, " ")
			seen[topic] = value
		case <-deadline:
			t.Fatalf("$SYS topics seen: %v", seen)
		}
	}
	if !strings.HasPrefix(seen["$SYS/broker/version"], "edgebroker ") || !strings.HasSuffix(seen["$SYS/broker/uptime"], " seconds") {
		t.Errorf("$SYS values: %v", seen)
	}
}

// TestStatusListenPorts: -listen ports appear in status.json, the status
// page, /metrics and Status like configured ports.
func TestStatusListenPorts(t *testing.T) {
	a, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0},
		StatusAddr: "127.0.0.1:0", Listen: []string{"127.0.0.1:0"}})
	defer stop()
	bound := addrs[len(addrs)-1].(*net.TCPAddr) // -listen ports come last
	port := strconv.Itoa(bound.Port)
	st, ok := a.Status().Port(appliance.ListenFlag, bound.Port)
	if !ok || !st.Serving || st.Addr.String() != bound.String() {
		t.Fatalf("Status().Port(-listen, %d) = %+v, %v", bound.Port, st, ok)
	}
	if s := a.Status().String(); !strings.Contains(s, "-listen/"+port+": serving on "+bound.String()) {
		t.Errorf("Status.String() misses the -listen port:\n%s", s)
	}
	base := "http://" + a.StatusAddr().String()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	var js struct {
		Ports []struct {
			Listener, Addr, Message string
			Port                    int
			Serving                 bool
		}
	}
	body := get("/status.json")
	if err := json.Unmarshal([]byte(body), &js); err != nil {
		t.Fatalf("status.json: %v\n%s", err, body)
	}
	found := false
	for _, p := range js.Ports {
		if p.Listener == "-listen" {
			found = p.Port == bound.Port && p.Serving && p.Addr == bound.String() && strings.Contains(p.Message, "-listen 127.0.0.1:0")
		}
	}
	if !found || js.Ports[0].Listener != "default" {
		t.Errorf("status.json: want the configured port, then the -listen port on %s:\n%s", bound, body)
	}
	if body := get("/metrics"); !strings.Contains(body, `edgebroker_port_serving{listener="-listen",port="`+port+`"} 1`) {
		t.Errorf("/metrics misses the -listen port:\n%s", body)
	}
	if body := get("/"); !strings.Contains(body, "<td>-listen</td><td>"+port+"</td>") || !strings.Contains(body, "serving on "+bound.String()) {
		t.Errorf("status page misses the -listen port:\n%s", body)
	}
}

// TestCAFileRemovedWhenUnused: DATA/ca.crt is exported while a port uses
// the on-device CA (the embedded default's Automatic TLS port) and removed
// once the configuration has no such port, so /ca.crt answers 404 instead
// of handing out a CA the device no longer serves.
func TestCAFileRemovedWhenUnused(t *testing.T) {
	data := t.TempDir()
	ca := filepath.Join(data, appliance.CAFile)
	_, _, stop := launch(t, appliance.Config{DataDir: data, Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0}})
	if _, err := os.Stat(ca); err != nil {
		t.Fatalf("the default configuration exports no ca.crt: %v", err)
	}
	stop()

	plain := writeConfig(t, map[string]string{"l.yaml": `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: plain
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
`})
	a, _, stop := launch(t, appliance.Config{DataDir: data, ConfigPath: plain, PortMap: map[int]int{1883: 0}, StatusAddr: "127.0.0.1:0"})
	defer stop()
	if _, err := os.Stat(ca); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ca.crt with no Automatic TLS port: %v; want it removed", err)
	}
	resp, err := http.Get("http://" + a.StatusAddr().String() + "/ca.crt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/ca.crt: %d, want 404", resp.StatusCode)
	}
}

// TestJournalStatus: what the journal holds for an offline persistent
// session shows in Status and /metrics, per session and in total, with
// the fsyncs and commit latency; once delivered it is gone.
func TestJournalStatus(t *testing.T) {
	a, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), Loopback: "127.0.0.1:0", PortMap: map[int]int{18883: 0},
		StatusAddr: "127.0.0.1:0"})
	defer stop()
	url := "tcp://" + addrs[1].String()
	sub := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("keeper").SetCleanSession(false))
	done(t, "subscribe", sub.Subscribe("j/#", 1, nil))
	sub.Disconnect(100)
	pub := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("pub"))
	defer pub.Disconnect(0)
	for range 3 {
		done(t, "publish", pub.Publish("j/x", 1, false, "queued"))
	}
	j := a.Status().Journal
	if j.Messages != 3 || j.PerSession["keeper"].Messages != 3 || j.Fsyncs == 0 || j.BytesWritten == 0 || j.CommitP99Ms <= 0 || j.MaxBytes != 1<<30 {
		t.Errorf("journal status %+v", j)
	}
	resp, err := http.Get("http://" + a.StatusAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"edgebroker_journal_messages 3", `edgebroker_journal_session_messages{client="keeper"} 3`, "edgebroker_journal_fsyncs_total "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	got := make(chan struct{}, 3)
	again := pahoClient(t, mqtt.NewClientOptions().AddBroker(url).SetClientID("keeper").SetCleanSession(false).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { got <- struct{}{} }))
	defer again.Disconnect(0)
	for range 3 {
		select {
		case <-got:
		case <-time.After(wait):
			t.Fatal("queued message not delivered")
		}
	}
	testenv.Eventually(t, wait, "the journal to retire the delivered messages", func() bool { return a.Status().Journal.Messages == 0 })
}
