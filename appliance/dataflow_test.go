package appliance_test

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/appliance"
	"edgebroker/broker"
	"edgebroker/broker/testenv"
	"edgebroker/broker/wsnet"
)

// TestDataflowsFromConfig: a configuration's DataflowEndpoint and two
// Dataflows (telemetry up, commands down) run against a real upstream,
// and show in Status; a command that came down is not sent back up by
// an overlapping flow (echo), which forwards local messages as usual.
func TestDataflowsFromConfig(t *testing.T) {
	upstream := testenv.StartMosquitto(t).Addr
	cfgFile := writeSite(t, localListener,
		cloudEndpoint(`host: "127.0.0.1:1,`+upstream+`", clientIdPrefix: site1, qos: 1`),
		dataflow("up", "default", "telemetry/#", "cloud", "site1/${inputTopic}"),
		dataflow("down", "cloud", "commands/site1/#", "default", "cmd/${inputTopic.3}"),
		dataflow("echo", "default", "cmd/#", "cloud", "echo/${inputTopic}"))
	a, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), ConfigPath: cfgFile, PortMap: map[int]int{1883: 0},
		StatusAddr: "127.0.0.1:0"})
	defer stop()
	local := "tcp://" + addrs[0].String()
	remote := "tcp://" + upstream

	cloudGot := make(chan string, 100)
	cloud := pahoClient(t, mqtt.NewClientOptions().AddBroker(remote).SetClientID("cloud"))
	defer cloud.Disconnect(0)
	done(t, "cloud subscribe", cloud.Subscribe("site1/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		cloudGot <- m.Topic() + " " + string(m.Payload())
	}))
	echoGot := make(chan string, 100)
	done(t, "cloud subscribe echo", cloud.Subscribe("echo/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		echoGot <- m.Topic() + " " + string(m.Payload())
	}))
	localGot := make(chan string, 100)
	dev := pahoClient(t, mqtt.NewClientOptions().AddBroker(local).SetClientID("device"))
	defer dev.Disconnect(0)
	done(t, "device subscribe", dev.Subscribe("cmd/#", 1, func(_ mqtt.Client, m mqtt.Message) {
		localGot <- m.Topic() + " " + string(m.Payload())
	}))
	testenv.Eventually(t, 20*time.Second, "both dataflows connected and subscribed", func() bool {
		st := a.Status().Dataflows
		return len(st) == 3 && st[0].Connected == upstream && st[0].Subscribed && st[1].Subscribed && st[2].Subscribed
	})
	// A LAN client cannot squat on the local session of a flow a reload
	// may add later (its CONNECT would be refused as a takeover).
	squat := mqtt.NewClient(mqtt.NewClientOptions().AddBroker(local).SetClientID("edgebroker-dataflow-later").
		SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false))
	if tok := squat.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() == nil {
		squat.Disconnect(0)
		t.Fatalf("a LAN client connected as the flow's local client (err %v)", tok.Error())
	}
	for i := range 10 {
		done(t, "publish", dev.Publish("telemetry/t1", 1, false, strconv.Itoa(i)))
	}
	for i := range 10 {
		select {
		case m := <-cloudGot:
			if want := "site1/telemetry/t1 " + strconv.Itoa(i); m != want {
				t.Fatalf("upstream got %q, want %q", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d did not reach the upstream", i)
		}
	}
	done(t, "command", cloud.Publish("commands/site1/reboot", 1, false, "now"))
	select {
	case m := <-localGot:
		if m != "cmd/reboot now" {
			t.Fatalf("device got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the command did not come down")
	}
	// A local message on cmd/ goes up through echo; the command that
	// came down did not (it would have arrived first: one flow, in order).
	done(t, "local cmd", dev.Publish("cmd/local", 1, false, "from the device"))
	select {
	case m := <-echoGot:
		if m != "echo/cmd/local from the device" {
			t.Fatalf("echo upstream got %q: a message that came down went back up", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the echo flow did not forward the local message")
	}
	testenv.Eventually(t, 10*time.Second, "the forwarded count", func() bool {
		for _, f := range a.Status().Dataflows {
			if f.Name == "up" {
				return f.Forwarded == 10 && f.QueuedMessages == 0
			}
		}
		return false
	})
}

// TestDataflowReload: a reload that changes a flow's endpoint restarts
// the flow without losing what it queued while the old endpoint was
// unreachable.
func TestDataflowReload(t *testing.T) {
	upstream := testenv.StartMosquitto(t).Addr
	cfgFile := filepath.Join(t.TempDir(), "site.yaml")
	write := func(host string) {
		y := siteYAML(localListener, cloudEndpoint(`host: "`+host+`"`), dataflow("up", "default", "telemetry/#", "cloud", "site1/${inputTopic}"))
		if err := os.WriteFile(cfgFile, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("127.0.0.1:1") // nobody there
	a, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), ConfigPath: cfgFile, PortMap: map[int]int{1883: 0}})
	defer stop()
	dev := pahoClient(t, mqtt.NewClientOptions().AddBroker("tcp://"+addrs[0].String()).SetClientID("device"))
	defer dev.Disconnect(0)
	for i := range 20 {
		done(t, "publish", dev.Publish("telemetry/t", 1, false, strconv.Itoa(i)))
	}
	testenv.Eventually(t, 10*time.Second, "20 messages queued for the flow", func() bool {
		st := a.Status().Dataflows
		return len(st) == 1 && st[0].QueuedMessages == 20
	})
	cloudGot := make(chan string, 100)
	cloud := pahoClient(t, mqtt.NewClientOptions().AddBroker("tcp://"+upstream).SetClientID("cloud"))
	defer cloud.Disconnect(0)
	done(t, "cloud subscribe", cloud.Subscribe("site1/#", 1, func(_ mqtt.Client, m mqtt.Message) { cloudGot <- string(m.Payload()) }))

	write(upstream)
	if err := a.Reload(); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		select {
		case p := <-cloudGot:
			if p != strconv.Itoa(i) {
				t.Fatalf("upstream got %q, want %d", p, i)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("after the reload, %d of 20 queued messages arrived", i)
		}
	}
}

// TestDataflowOverWebSockets: an endpoint with protocol WebSockets (and
// a path in its host) reaches an upstream that speaks MQTT over
// WebSockets only.
func TestDataflowOverWebSockets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	up := broker.New(broker.Config{})
	wl := wsnet.Listen(ln, nil)
	go up.Serve(wl)
	defer func() { up.Close(); wl.Close() }()
	wsAddr := ln.Addr().String()

	cfgFile := writeSite(t, localListener, cloudEndpoint(`host: "`+wsAddr+`/ws", protocol: WebSockets`),
		dataflow("up", "default", "telemetry/#", "cloud", "site1/${inputTopic}"))
	a, addrs, stop := launch(t, appliance.Config{DataDir: t.TempDir(), ConfigPath: cfgFile, PortMap: map[int]int{1883: 0}})
	defer stop()
	cloud := pahoClient(t, mqtt.NewClientOptions().AddBroker("ws://"+wsAddr+"/mqtt").SetClientID("cloud"))
	defer cloud.Disconnect(0)
	got := subscribe(t, cloud, "site1/#")
	testenv.Eventually(t, 10*time.Second, "the flow connected over WebSockets", func() bool {
		st := a.Status().Dataflows
		return len(st) == 1 && st[0].Connected == wsAddr+"/ws" && st[0].Subscribed
	})
	dev := pahoClient(t, mqtt.NewClientOptions().AddBroker("tcp://"+addrs[0].String()).SetClientID("device"))
	defer dev.Disconnect(0)
	done(t, "publish", dev.Publish("telemetry/t", 1, false, "over ws"))
	expect(t, got, "site1/telemetry/t over ws")
}

// localListener is the dataflow tests' BrokerListener: port 1883 for
// devices (mapped to a free port by the tests).
const localListener = `apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata: {name: local}
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
`

// cloudEndpoint is the MQTT DataflowEndpoint "cloud" with settings (YAML
// flow-mapping entries: host and more) added to anonymous, plain-TCP
// access.
func cloudEndpoint(settings string) string {
	return `apiVersion: connectivity.iotoperations.azure.com/v1
kind: DataflowEndpoint
metadata: {name: cloud}
spec:
  endpointType: Mqtt
  mqttSettings: {` + settings + `, authentication: {method: Anonymous}, tls: {mode: Disabled}}
`
}

// dataflow is a Dataflow name from the endpoint from's topics matching
// source to the endpoint to's topic dest.
func dataflow(name, from, source, to, dest string) string {
	return fmt.Sprintf(`apiVersion: connectivity.iotoperations.azure.com/v1
kind: Dataflow
metadata: {name: %s}
spec:
  operations:
  - operationType: Source
    sourceSettings: {endpointRef: %s, dataSources: [%q]}
  - operationType: Destination
    destinationSettings: {endpointRef: %s, dataDestination: %q}
`, name, from, source, to, dest)
}

// siteYAML joins YAML documents into one file's text.
func siteYAML(docs ...string) string { return strings.Join(docs, "---\n") }

// writeSite writes the YAML documents docs as one file in a new folder
// and returns its path.
func writeSite(t *testing.T, docs ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "site.yaml")
	if err := os.WriteFile(p, []byte(siteYAML(docs...)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
