package broker_test

import (
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// TestSessionQueue: SessionQueue reports a session's messages in flight
// and queued, and when the oldest of them arrived: the first unacknowledged
// one in flight, then the head of the queue once that is acknowledged,
// none when all are, and a queued one while the session is offline. On
// the bubble's clock, so the times are exact.
func TestSessionQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, addr := brokertest.StartMem(t, broker.Config{}, nil)
		if _, ok := s.SessionQueue("keeper"); ok {
			t.Fatal("SessionQueue of a client never seen: ok")
		}
		c := brokertest.V5Expiry(brokertest.V5Connect("keeper", true), 3600)
		c.Props.Set(packet.PropReceiveMaximum)
		c.Props.ReceiveMaximum = 2
		sub, _ := brokertest.V5Dial(t, addr, c)
		sub.V5Sub(1, packet.Subscription{Filter: []byte("q/#"), QoS: 1}, packet.GrantedQoS1)

		check := func(what string, inflight, queued int, oldest time.Time) {
			t.Helper()
			q, ok := s.SessionQueue("keeper")
			if !ok || q.Inflight != inflight || q.Queued != queued || !q.Oldest.Equal(oldest) || (queued > 0) != (q.Bytes > 0) {
				t.Errorf("%s: SessionQueue = %+v, %v; want %d in flight, %d queued (with their bytes), oldest %v",
					what, q, ok, inflight, queued, oldest)
			}
		}
		check("nothing sent", 0, 0, time.Time{})
		publish := func(topic string) {
			t.Helper()
			if err := s.Publish(&packet.Publish{Topic: []byte(topic), QoS: 1, Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
		}
		t0 := time.Now()
		publish("q/1")
		p1 := sub.ExpectPublish()
		time.Sleep(3 * time.Second)
		t1 := time.Now()
		publish("q/2")
		p2 := sub.ExpectPublish()
		publish("q/3") // beyond the receive maximum: queued
		publish("q/4")
		check("two in flight, two queued", 2, 2, t0)

		sub.Ack(packet.PUBACK, p1.PacketID)
		p3 := sub.ExpectPublish()
		check("q/1 acknowledged", 2, 1, t1)
		sub.Ack(packet.PUBACK, p2.PacketID)
		p4 := sub.ExpectPublish()
		sub.Ack(packet.PUBACK, p3.PacketID)
		sub.Ack(packet.PUBACK, p4.PacketID)
		sub.Sync()
		check("all acknowledged", 0, 0, time.Time{})

		sub.Send(&packet.Disconnect{})
		sub.ExpectClosed()
		brokertest.WaitConns(t, s, 0)
		time.Sleep(time.Minute)
		t2 := time.Now()
		publish("q/5")
		time.Sleep(time.Second)
		publish("q/6")
		check("offline", 0, 2, t2)
	})
}

// TestSessionQueueSpilled: messages queued beyond the in-memory window of
// a journaled session count as spilled; the oldest is the first, in
// memory.
func TestSessionQueueSpilled(t *testing.T) {
	j := openJournal(t, t.TempDir())
	s, addr := brokertest.Start(t, broker.Config{Journal: j, Limits: broker.Limits{MaxQueued: 2}}, nil)
	sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("keeper", true), 3600))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("q/#"), QoS: 1}, packet.GrantedQoS1)
	sub.Send(&packet.Disconnect{})
	sub.ExpectClosed()
	brokertest.WaitConns(t, s, 0)

	var before, after time.Time // the first message's arrival is between them
	for i, topic := range []string{"q/1", "q/2", "q/3", "q/4", "q/5"} {
		if i == 0 {
			before = time.Now()
		}
		if err := s.Publish(&packet.Publish{Topic: []byte(topic), QoS: 1, Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			after = time.Now()
		}
	}
	q, ok := s.SessionQueue("keeper")
	if !ok || q.Inflight != 0 || q.Queued != 2 || q.Spilled != 3 {
		t.Fatalf("SessionQueue = %+v, %v; want 2 queued in memory, 3 spilled", q, ok)
	}
	if q.Oldest.Before(before) || q.Oldest.After(after) {
		t.Errorf("oldest %v: want the first message's arrival, between %v and %v", q.Oldest, before, after)
	}
}
