package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker/testenv"
)

// The soak test's well-behaved client runs in a process of its own (the
// test binary again, with probeEnv set), so that what it measures is the
// broker's answer, not the scheduling of the test process that also
// generates the attacks: on a device the attackers are other machines.

const probeEnv = "EDGEBROKER_SOAK_PROBE" // the broker's address

// probeResult is what the probe process reports on stdout.
type probeResult struct {
	Rounds int
	Max    time.Duration
	Slow   []string // round trips over 50 ms, with when they began
	Err    string
}

// runProbe is the probe process: it publishes at QoS 1 to a topic it
// subscribes to, one message at a time, until its stdin closes, and
// reports the round trips.
func runProbe(addr string) {
	var res probeResult
	defer func() { json.NewEncoder(os.Stdout).Encode(&res) }()
	got := make(chan struct{}, 16)
	c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("good").
		SetCleanSession(true).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).
		SetDefaultPublishHandler(func(mqtt.Client, mqtt.Message) { got <- struct{}{} }))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		res.Err = fmt.Sprintf("connect: %v", tok.Error())
		return
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("good/rtt", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		res.Err = fmt.Sprintf("subscribe: %v", tok.Error())
		return
	}
	fmt.Println("ready")
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	began := time.Now()
	for {
		select {
		case <-stop:
			return
		default:
		}
		start := time.Now()
		c.Publish("good/rtt", 1, false, "ping")
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			res.Err = fmt.Sprintf("round %d: the message did not arrive within 10 s", res.Rounds)
			return
		}
		rtt := time.Since(start)
		if rtt > 50*time.Millisecond {
			res.Slow = append(res.Slow, fmt.Sprintf("%v at %v", rtt.Round(time.Millisecond), start.Sub(began).Round(time.Millisecond)))
		}
		res.Max = max(res.Max, rtt)
		res.Rounds++
	}
}

// probe is the test's handle on a running probe process.
type probe struct{ *testenv.Child }

// startProbe starts the probe process against addr, at a higher
// scheduling priority than the test (as root; elsewhere it keeps the
// default), and waits until it is subscribed.
func startProbe(t *testing.T, addr string) *probe {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), probeEnv+"="+addr)
	p := &probe{testenv.StartChild(t, cmd)}
	raisePriority(cmd.Process.Pid)
	p.Expect(t, "ready", time.Minute)
	return p
}

// stop ends the probe and returns what it measured.
func (p *probe) stop(t *testing.T) probeResult {
	t.Helper()
	p.Stdin.Close()
	var res probeResult
	line, _ := p.Line(t, time.Minute)
	if err := json.Unmarshal([]byte(line), &res); err != nil {
		t.Fatalf("probe result: %v", err)
	}
	return res
}

// raisePriority gives pid a higher scheduling priority than the test's
// (nice -5); without the privilege it stays as it is.
func raisePriority(pid int) {
	syscall.Setpriority(syscall.PRIO_PROCESS, pid, -5)
}
