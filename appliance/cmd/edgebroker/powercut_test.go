package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker/brokertest"
	"edgebroker/broker/testenv"
)

// TestPowerCutLosesNothingAcknowledged: kill -9 (what a power cut does to
// the process) while publishers send numbered QoS 1 and QoS 2 messages to
// offline persistent subscribers (3.1.1 and 5.0), and retained messages:
// after a restart on the same data directory every message a publisher
// saw acknowledged is delivered, QoS 2 ones exactly once, the retained
// message is at least the last acknowledged one, and a delayed will of a
// client connected at the cut is published.
func TestPowerCutLosesNothingAcknowledged(t *testing.T) {
	data := t.TempDir()
	addr, cmd, exited := runBinary(t, "-data", data)

	// Offline persistent subscribers, and one to the will's topic.
	v3 := func(id string, clean bool, got chan<- mqtt.Message) mqtt.Client {
		c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
			SetCleanSession(clean).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetOrderMatters(false).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
				if got != nil {
					got <- m
				}
			}))
		ok(t, "connect "+id, c.Connect())
		t.Cleanup(func() { c.Disconnect(0) })
		return c
	}
	sub3 := v3("sub3", false, nil)
	ok(t, "subscribe", sub3.Subscribe("pc/#", 2, nil))
	ok(t, "subscribe", sub3.Subscribe("will/#", 1, nil))
	sub3.Disconnect(100)
	v5 := func(id string, start bool, got chan *paho.Publish, will *paho.WillMessage, wp *paho.WillProperties) *brokertest.V5Client {
		expiry := uint32(3600)
		cp := &paho.Connect{ClientID: id, CleanStart: start, KeepAlive: 60,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}, WillMessage: will, WillProperties: wp}
		c, _, err := brokertest.V5DialPaho(t, addr, cp, func(cfg *paho.ClientConfig) {
			if got != nil {
				cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){func(r paho.PublishReceived) (bool, error) {
					got <- r.Packet
					return true, nil
				}}
			}
		})
		if err != nil {
			t.Fatalf("connect %s: %v", id, err)
		}
		return c
	}
	sub5 := v5("sub5", true, nil, nil, nil)
	sub5.Sub(paho.SubscribeOptions{Topic: "pc/#", QoS: 2}, 0)
	sub5.Disconnect(&paho.Disconnect{})
	delay := uint32(1)
	v5("willer", true, nil, &paho.WillMessage{Topic: "will/willer", QoS: 1, Payload: []byte("gone")},
		&paho.WillProperties{WillDelayInterval: &delay})

	// Publishers: 3.1.1 and 5.0, QoS 1 and 2, numbered; a retained counter.
	var mu sync.Mutex
	acked := map[string]int{} // payload "pub/n" -> QoS
	lastRetained := -1
	var wg sync.WaitGroup
	stop := make(chan struct{})
	// publishing calls publish(0), publish(1), ... until stop is closed or
	// publish fails (the broker is gone).
	publishing := func(publish func(i int) error) {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if publish(i) != nil {
					return
				}
			}
		})
	}
	ack := func(p string, q byte) {
		mu.Lock()
		acked[p] = int(q)
		mu.Unlock()
	}
	for _, q := range []byte{1, 2} {
		name := fmt.Sprintf("p3q%d", q)
		c := v3(name, true, nil)
		publishing(func(i int) error {
			p := fmt.Sprintf("%s/%d", name, i)
			if err := v3Publish(c, "pc/"+name, q, false, p); err != nil {
				return err
			}
			ack(p, q)
			return nil
		})
		name5 := fmt.Sprintf("p5q%d", q)
		c5 := v5(name5, true, nil, nil, nil)
		publishing(func(i int) error {
			p := fmt.Sprintf("%s/%d", name5, i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if _, err := c5.Publish(ctx, &paho.Publish{Topic: "pc/" + name5, QoS: q, Payload: []byte(p)}); err != nil {
				return err
			}
			ack(p, q)
			return nil
		})
	}
	ret := v3("retainer", true, nil)
	publishing(func(i int) error {
		if err := v3Publish(ret, "ret/counter", 1, true, strconv.Itoa(i)); err != nil {
			return err
		}
		mu.Lock()
		lastRetained = i
		mu.Unlock()
		return nil
	})
	testenv.Eventually(t, 30*time.Second, "1,000 acknowledged messages", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 1000 && lastRetained >= 50
	})
	cmd.Process.Kill() // the power cut: nothing after this point is written
	<-exited
	close(stop)
	wg.Wait()
	mu.Lock()
	want := maps.Clone(acked)
	wantRetained := lastRetained
	mu.Unlock()
	t.Logf("%d messages acknowledged before the cut; retained counter at %d", len(want), wantRetained)

	addr, _, _ = runBinary(t, "-data", data)
	got3 := make(chan mqtt.Message, 100000)
	v3("sub3", false, got3)
	got5 := make(chan *paho.Publish, 100000)
	v5("sub5", false, got5, nil, nil)

	seen3, seen5 := map[string]int{}, map[string]int{}
	willSeen := false
	defer func() {
		if t.Failed() {
			var miss3, miss5 []string
			for p := range want {
				if seen3[p] == 0 {
					miss3 = append(miss3, p)
				}
				if seen5[p] == 0 {
					miss5 = append(miss5, p)
				}
			}
			t.Logf("received %d (3.1.1) and %d (5.0); missing %d %.200v and %d %.200v; will seen %v",
				len(seen3), len(seen5), len(miss3), miss3, len(miss5), miss5, willSeen)
		}
	}()
	testenv.Eventually(t, 60*time.Second, "every acknowledged message", func() bool {
		for {
			select {
			case m := <-got3:
				if m.Topic() == "will/willer" {
					willSeen = true
				} else {
					seen3[string(m.Payload())]++
				}
				continue
			case m := <-got5:
				seen5[string(m.Payload)]++
				continue
			default:
			}
			break
		}
		for p := range want {
			if seen3[p] == 0 || seen5[p] == 0 {
				return false
			}
		}
		return willSeen
	})
	for p, q := range want {
		if q == 2 && (seen3[p] != 1 || seen5[p] != 1) {
			t.Errorf("QoS 2 message %s delivered %d times (3.1.1) and %d times (5.0), want once", p, seen3[p], seen5[p])
		}
	}
	gotRet := make(chan mqtt.Message, 1)
	fresh := v3("fresh", true, gotRet)
	ok(t, "subscribe ret", fresh.Subscribe("ret/counter", 1, nil))
	select {
	case m := <-gotRet:
		if n, _ := strconv.Atoi(string(m.Payload())); n < wantRetained {
			t.Errorf("retained counter %d after the cut, but %d was acknowledged", n, wantRetained)
		}
	case <-time.After(10 * time.Second):
		t.Error("no retained message after the cut")
	}
}

// v3Publish publishes with c and waits (5 s at most) for the broker's
// acknowledgement.
func v3Publish(c mqtt.Client, topic string, qos byte, retain bool, payload string) error {
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("no acknowledgement within 5 s")
	}
	return tok.Error()
}
