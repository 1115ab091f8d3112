package broker_test

import (
	"crypto/tls"
	"net"
	"strconv"
	"testing"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// The ordering guarantee across connections (issue 16, item 12), in the
// terms a client can observe:
//
//  1. Once a client has received the SUBACK, every PUBLISH that any
//     connection sends afterwards matches the subscription.
//  2. "Read after" is observable through a causal chain: a client writes
//     SUBSCRIBE and then, on the same connection, a PUBLISH to a marker
//     topic. The broker handles a connection's packets in order, so when
//     another client has received the marker, the broker has read (and
//     handled) the SUBSCRIBE; a PUBLISH that client sends now is read
//     later and must match, although no SUBACK has been seen.
//  3. A PUBLISH that races the SUBSCRIBE (sent without waiting for
//     anything) may be routed before or after the subscription: both are
//     correct. What is defined is that the broker's answer agrees with
//     what it did: a 5.0 PUBACK says Success exactly when the subscriber
//     gets the message, No Matching Subscribers exactly when it does not.
//
// Each variant runs for QoS 0 and 1, 3.1.1 and 5.0, on a plain TCP port
// and a TLS port (on both the reactor parks the subscriber after CONNECT,
// so its SUBSCRIBE is read by a fresh goroutine), in parallel, so
// the subtests load each other. Every try uses a fresh subscriber client
// id and a fresh topic. Run it with -cpu 1,2 and -race as well.

// orderTries is how many tries each subtest makes: 400 (3,200 a test
// over its eight subtests), 100 with -short or under the race detector.
func orderTries() int {
	if testing.Short() || broker.RaceEnabled {
		return 100
	}
	return 400
}

// orderTransport dials the broker for the order tests.
type orderTransport struct {
	name string
	addr string
	tls  *tls.Config // nil: plain TCP
}

func (tr orderTransport) dial(t testing.TB, v byte, id string) *brokertest.Raw {
	t.Helper()
	var nc net.Conn
	var err error
	if tr.tls != nil {
		d := &net.Dialer{Timeout: brokertest.WaitTime}
		nc, err = tls.DialWithDialer(d, "tcp", tr.addr, tr.tls)
	} else {
		nc, err = net.DialTimeout("tcp", tr.addr, brokertest.WaitTime)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &brokertest.Raw{T: t, Conn: nc, Version: v}
	if ack := r.Connect(&packet.Connect{ClientID: []byte(id), CleanStart: true}); ack.Code != 0 {
		t.Fatalf("CONNACK for %q: code %#x", id, ack.Code)
	}
	return r
}

// closeRaw disconnects r and waits until the broker closed the socket, so
// that the broker does not accumulate sessions over thousands of tries.
func closeRaw(r *brokertest.Raw) {
	r.Send(&packet.Disconnect{})
	r.ExpectClosed()
	r.Conn.Close()
}

// startOrderServers starts one broker with a plain TCP and a TLS port.
func startOrderServers(t *testing.T) []orderTransport {
	t.Helper()
	s := broker.New(broker.Config{})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert, pool, _ := testenv.SelfSigned(t, "broker.test")
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// The broker's own TLS (Port.TLS): idle TLS connections park in the
	// reactor as plain ones do.
	tlsCfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	done := make(chan error, 2)
	go func() { done <- s.ServePort(tcp, &broker.Port{Name: "tcp"}) }()
	go func() { done <- s.ServePort(tl, &broker.Port{Name: "tls", TLS: tlsCfg}) }()
	t.Cleanup(func() {
		s.Close()
		for range 2 {
			if err := <-done; err != broker.ErrServerClosed {
				t.Errorf("Serve: %v", err)
			}
		}
	})
	return []orderTransport{
		{name: "tcp", addr: tcp.Addr().String()},
		{name: "tls", addr: tl.Addr().String(), tls: &tls.Config{RootCAs: pool, ServerName: "broker.test", MinVersion: tls.VersionTLS13}},
	}
}

// orderCase is one combination of the order tests.
type orderCase struct {
	tr  orderTransport
	v   byte
	qos byte
}

func (oc orderCase) name() string {
	v := "v311"
	if oc.v == packet.V5 {
		v = "v5"
	}
	return oc.tr.name + "/" + v + "/qos" + strconv.Itoa(int(oc.qos))
}

func orderCases(t *testing.T) []orderCase {
	var cs []orderCase
	for _, tr := range startOrderServers(t) {
		for _, v := range []byte{packet.V311, packet.V5} {
			for _, qos := range []byte{0, 1} {
				cs = append(cs, orderCase{tr, v, qos})
			}
		}
	}
	return cs
}

// publishAndSettle sends a PUBLISH from pub and waits until the broker has
// routed it (PUBACK, or a PINGREQ round trip for QoS 0). It returns the
// PUBACK's reason code (Success for 3.1.1 and QoS 0).
func publishAndSettle(r *brokertest.Raw, topic string, qos byte, retain bool, pid uint16, payload string) packet.Code {
	r.T.Helper()
	r.Send(&packet.Publish{Topic: []byte(topic), QoS: qos, Retain: retain, PacketID: pid, Payload: []byte(payload)})
	if qos == 0 {
		r.Sync()
		return packet.Success
	}
	a := r.ExpectAck(packet.PUBACK)
	if a.PacketID != pid {
		r.T.Fatalf("PUBACK packet id %d, want %d", a.PacketID, pid)
	}
	return a.Code
}

// expectMessage reads until the PUBLISH on topic arrives, acknowledging
// QoS 1 ones; other packets (SUBACK) are skipped.
func expectMessage(r *brokertest.Raw, topic, payload string) {
	r.T.Helper()
	for {
		h, body := r.Read()
		if h.Type != packet.PUBLISH {
			continue
		}
		var p packet.Publish
		if err := p.Decode(r.Version, h.Flags, body); err != nil {
			r.T.Fatalf("PUBLISH: %v", err)
		}
		if p.QoS == 1 {
			r.Write((&packet.Ack{Type: packet.PUBACK, PacketID: p.PacketID}).Append(nil, r.Version))
		}
		if string(p.Topic) != topic || string(p.Payload) != payload {
			r.T.Fatalf("got PUBLISH %q %q, want %q %q", p.Topic, p.Payload, topic, payload)
		}
		return
	}
}

// TestOrderPublishAfterSuback: a PUBLISH sent after the subscriber got its
// SUBACK is delivered, every time.
func TestOrderPublishAfterSuback(t *testing.T) {
	for _, oc := range orderCases(t) {
		t.Run(oc.name(), func(t *testing.T) {
			t.Parallel()
			pub := oc.tr.dial(t, oc.v, "pub-"+oc.name())
			defer closeRaw(pub)
			for i := range orderTries() {
				id := "sub-" + oc.name() + "-" + strconv.Itoa(i)
				topic := "order/suback/" + id
				// Every third try is a shared subscription, every third a
				// retained message.
				filter, retain := topic, i%3 == 2
				if i%3 == 1 {
					filter = "$share/g/" + topic
				}
				sub := oc.tr.dial(t, oc.v, id)
				if codes := sub.Subscribe(1, packet.Subscription{Filter: []byte(filter), QoS: oc.qos}); len(codes) != 1 || codes[0] != packet.Code(oc.qos) {
					t.Fatalf("try %d: SUBACK %v", i, codes)
				}
				// Immediately, from the other connection.
				code := publishAndSettle(pub, topic, oc.qos, retain, uint16(i%65535+1), "m")
				if oc.v == packet.V5 && oc.qos == 1 && code != packet.Success {
					t.Fatalf("try %d: PUBACK code %#x after SUBACK, want Success", i, code)
				}
				expectMessage(sub, topic, "m")
				closeRaw(sub)
				if retain { // clear it
					publishAndSettle(pub, topic, oc.qos, true, uint16(i%65535+1), "")
				}
			}
		})
	}
}

// TestOrderPublishReadAfterSubscribe: a PUBLISH the broker provably reads
// after a SUBSCRIBE (see above: the marker chain) is delivered, though
// the subscriber has not seen its SUBACK yet.
func TestOrderPublishReadAfterSubscribe(t *testing.T) {
	for _, oc := range orderCases(t) {
		t.Run(oc.name(), func(t *testing.T) {
			t.Parallel()
			pub := oc.tr.dial(t, oc.v, "pub-"+oc.name())
			defer closeRaw(pub)
			marker := "order/marker/" + oc.name()
			if codes := pub.Subscribe(1, packet.Subscription{Filter: []byte(marker)}); len(codes) != 1 || codes[0] != 0 {
				t.Fatalf("marker SUBACK %v", codes)
			}
			for i := range orderTries() {
				id := "sub-" + oc.name() + "-" + strconv.Itoa(i)
				topic := "order/read/" + id
				sub := oc.tr.dial(t, oc.v, id)
				// SUBSCRIBE and the marker in one write.
				b := (&packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte(topic), QoS: oc.qos}}}).Append(nil, oc.v)
				b = (&packet.Publish{Topic: []byte(marker), Payload: []byte(id)}).Append(b, oc.v)
				sub.Write(b)
				expectMessage(pub, marker, id)
				code := publishAndSettle(pub, topic, oc.qos, false, uint16(i%65535+1), "m")
				if oc.v == packet.V5 && oc.qos == 1 && code != packet.Success {
					t.Fatalf("try %d: PUBACK code %#x for a PUBLISH read after the SUBSCRIBE, want Success", i, code)
				}
				expectMessage(sub, topic, "m") // skips the SUBACK
				closeRaw(sub)
			}
		})
	}
}

// TestOrderRacingPublishAgrees: a PUBLISH racing the SUBSCRIBE may or may
// not match; the 5.0 PUBACK says which, and the subscriber gets the
// message exactly when it says Success.
func TestOrderRacingPublishAgrees(t *testing.T) {
	for _, oc := range orderCases(t) {
		if oc.v != packet.V5 || oc.qos != 1 {
			continue // only a 5.0 PUBACK tells what the broker did
		}
		t.Run(oc.name(), func(t *testing.T) {
			t.Parallel()
			pub := oc.tr.dial(t, oc.v, "pub-"+oc.name())
			defer closeRaw(pub)
			matched := 0
			for i := range orderTries() {
				id := "sub-" + oc.name() + "-" + strconv.Itoa(i)
				topic := "order/race/" + id
				sub := oc.tr.dial(t, oc.v, id)
				sub.Send(&packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte(topic), QoS: 1}}})
				code := publishAndSettle(pub, topic, 1, false, uint16(i%65535+1), "m")
				if code != packet.Success && code != packet.NoMatchingSubscribers {
					t.Fatalf("try %d: PUBACK code %#x", i, code)
				}
				// A second message after the SUBACK marks the end: the
				// first arrives before it exactly when it was routed.
				got, subacked := false, false
				for done := false; !done; {
					h, body := sub.Read()
					switch h.Type {
					case packet.SUBACK:
						subacked = true
						if c := publishAndSettle(pub, topic, 1, false, uint16(i%65535+1), "end"); c != packet.Success {
							t.Fatalf("try %d: PUBACK code %#x after SUBACK, want Success", i, c)
						}
					case packet.PUBLISH:
						var p packet.Publish
						if err := p.Decode(oc.v, h.Flags, body); err != nil {
							t.Fatalf("PUBLISH: %v", err)
						}
						sub.Write((&packet.Ack{Type: packet.PUBACK, PacketID: p.PacketID}).Append(nil, oc.v))
						switch {
						case string(p.Payload) == "m" && !got:
							got = true
						case string(p.Payload) == "end" && subacked:
							done = true
						default:
							t.Fatalf("try %d: unexpected PUBLISH %q", i, p.Payload)
						}
					default:
						t.Fatalf("try %d: got packet type %d", i, h.Type)
					}
				}
				if got != (code == packet.Success) {
					t.Fatalf("try %d: PUBACK said %#x but the subscriber got the message: %v", i, code, got)
				}
				if got {
					matched++
				}
				closeRaw(sub)
			}
			t.Logf("%d of %d racing publishes matched", matched, orderTries())
		})
	}
}
