package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker/testenv"
)

// TestDataflowSurvivesKill: the gateway is killed (kill -9) while 1,000
// messages it acknowledged wait for an unreachable upstream; after a
// restart, once the upstream is up, all 1,000 arrive there, in order.
func TestDataflowSurvivesKill(t *testing.T) {
	up := testenv.StartMosquitto(t)
	upstream := up.Addr
	got := make(chan string, 2000)
	cloud := func() mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + upstream).SetClientID("cloud").
			SetCleanSession(false).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetOrderMatters(true).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) }))
		ok(t, "cloud connect", c.Connect())
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	// The cloud subscriber's session is made, then the upstream stops
	// (saving it): the gateway's upstream is unreachable.
	ok(t, "cloud subscribe", cloud().Subscribe("site1/#", 1, nil))
	up.Stop()

	cfg := filepath.Join(t.TempDir(), "flows.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`apiVersion: connectivity.iotoperations.azure.com/v1
kind: DataflowEndpoint
metadata: {name: cloud}
spec:
  endpointType: Mqtt
  mqttSettings: {host: "%s", authentication: {method: Anonymous}, tls: {mode: Disabled}, qos: 1}
---
apiVersion: connectivity.iotoperations.azure.com/v1
kind: Dataflow
metadata: {name: up}
spec:
  operations:
  - operationType: Source
    sourceSettings: {endpointRef: default, dataSources: ["telemetry/#"]}
  - operationType: Destination
    destinationSettings: {endpointRef: cloud, dataDestination: "site1/${inputTopic}"}
`, upstream)), 0o600)
	data := filepath.Join(t.TempDir(), "data")
	addr, cmd, exited := runBinary(t, "-data", data, "-config", cfg)
	pub := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("sensor").
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	ok(t, "connect", pub.Connect())
	// The flow's local subscription exists before the ports open.
	const n = 1000
	for i := range n {
		ok(t, "publish", pub.Publish("telemetry/a", 1, false, strconv.Itoa(i)))
	}
	pub.Disconnect(0)
	cmd.Process.Kill()
	<-exited

	runBinary(t, "-data", data, "-config", cfg)
	up.Start()
	cloud()
	next := 0
	for next < n {
		select {
		case p := <-got:
			if v, _ := strconv.Atoi(p); v == next {
				next++
			} else if v > next {
				t.Fatalf("message %d before %d", v, next)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d acknowledged messages arrived upstream after the kill", next, n)
		}
	}
}
