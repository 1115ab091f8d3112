package broker_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/testenv"
)

// TestTLSDirectWriteStress: TLS publishers whose readers write the
// deliveries to TLS subscribers themselves (and their own PUBACKs), one
// QoS 0 subscriber so slow that its socket fills and its writes are held
// and handed to its writer goroutine again and again: the QoS 1
// subscribers get every message, the slow one what it gets (a slow QoS 0
// consumer loses messages) whole and in each publisher's order.
func TestTLSDirectWriteStress(t *testing.T) {
	cert, _, certPEM := testenv.SelfSigned(t, "broker.test")
	s := broker.New(broker.Config{})
	// Writers park after a millisecond idle: the publishers' readers
	// write directly again and again, and hit full sockets.
	broker.SetWriterIdle(s, time.Millisecond)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.ServePort(ln, &broker.Port{Name: "tls", TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	defer s.Close()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	overTLS := func(o *mqtt.ClientOptions) {
		o.Servers = nil
		o.AddBroker("ssl://" + ln.Addr().String())
		o.SetTLSConfig(&tls.Config{RootCAs: pool, ServerName: "broker.test"})
	}
	const pubs, each, size = 4, 300, 16 << 10
	type sub struct {
		mu    sync.Mutex
		next  [pubs]uint32
		got   int
		ended bool // the end marker arrived: everything before it did
		bad   error
	}
	subs := make([]*sub, 3)
	for i := range subs {
		sb := &sub{}
		subs[i] = sb
		slow := i == 0
		qos := byte(1)
		if slow {
			qos = 0
		}
		c := brokertest.V3Paho(t, "", fmt.Sprintf("sub-%d", i), true, overTLS)
		brokertest.V3Wait(t, "subscribe", c.Subscribe("stress/#", qos, func(_ mqtt.Client, m mqtt.Message) {
			if slow {
				time.Sleep(2 * time.Millisecond) // paho reads no more meanwhile: the broker's socket fills
			}
			p := m.Payload()
			sb.mu.Lock()
			defer sb.mu.Unlock()
			if m.Topic() == "stress/end" {
				sb.ended = true
				return
			}
			if len(p) != size {
				sb.bad = fmt.Errorf("payload of %d bytes, want %d", len(p), size)
				return
			}
			pub, seq := binary.BigEndian.Uint32(p), binary.BigEndian.Uint32(p[4:])
			for k := 8; k < len(p); k++ {
				if p[k] != byte(seq+uint32(k)) {
					sb.bad = fmt.Errorf("publisher %d message %d: byte %d corrupted", pub, seq, k)
					return
				}
			}
			if pub >= pubs || seq < sb.next[pub] || !slow && seq != sb.next[pub] {
				sb.bad = fmt.Errorf("publisher %d: message %d, want %d", pub, seq, sb.next[min(pub, pubs-1)])
				return
			}
			sb.next[pub] = seq + 1
			sb.got++
		}))
	}
	var wg sync.WaitGroup
	var last mqtt.Client
	for p := range pubs {
		c := brokertest.V3Paho(t, "", fmt.Sprintf("pub-%d", p), true, overTLS)
		last = c
		wg.Go(func() {
			for seq := range uint32(each) {
				b := make([]byte, size)
				binary.BigEndian.PutUint32(b, uint32(p))
				binary.BigEndian.PutUint32(b[4:], seq)
				for k := 8; k < size; k++ {
					b[k] = byte(seq + uint32(k))
				}
				tok := c.Publish(fmt.Sprintf("stress/%d", p), 1, false, b)
				if !tok.WaitTimeout(brokertest.WaitTime) || tok.Error() != nil {
					t.Errorf("publisher %d message %d: %v", p, seq, tok.Error())
					return
				}
			}
		})
	}
	wg.Wait()
	for i, sb := range subs {
		testenv.Eventually(t, time.Minute, fmt.Sprintf("subscriber %d gets all %d messages", i, pubs*each), func() bool {
			sb.mu.Lock()
			defer sb.mu.Unlock()
			if i == 0 && !sb.ended && sb.bad == nil {
				// The slow one: once its backlog drains, an end marker
				// gets through (QoS 0: sent again until it does), and
				// what it got before is checked.
				last.Publish("stress/end", 0, false, "")
			}
			return i != 0 && sb.got == pubs*each || i == 0 && sb.ended || sb.bad != nil
		})
		if sb.bad != nil {
			t.Errorf("subscriber %d: %v", i, sb.bad)
		}
		if sb.got == 0 {
			t.Errorf("subscriber %d got nothing", i)
		}
	}
}
