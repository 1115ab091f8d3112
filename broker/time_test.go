package broker_test

import (
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// The tests in this file run on the fake clock of a testing/synctest
// bubble with in-memory connections (brokertest.StartMem): keep-alive, session
// expiry and will delay take no real time, and their timing is exact.

// A connected client with keep-alive 0 is never timed out, not even by the
// connect timeout that guarded its CONNECT.
func TestV3KeepAliveZero(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{Limits: broker.Limits{ConnectTimeout: 200 * time.Millisecond}}, nil)
		r, _ := brokertest.V3Dial(t, addr, "ka0", true)
		r.ExpectSilence(time.Hour)
		r.Sync()
	})
}

// TestV3KeepAliveTimeout: a silent client is closed 1.5 × its keep-alive
// after its last packet [MQTT-3.1.2-24], not earlier.
func TestV3KeepAliveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{}, nil)
		r := brokertest.V3Connect(t, addr, &packet.Connect{ClientID: []byte("ka"), CleanStart: true, KeepAlive: 1})
		start := time.Now()
		r.V3Closed(time.Minute)
		if el, want := time.Since(start), 1500*time.Millisecond; el != want {
			t.Errorf("closed after %v, want %v", el, want)
		}
	})
}

// TestV3KeepAlivePingreq: a client that pings just inside 1.5 × its
// keep-alive stays connected.
func TestV3KeepAlivePingreq(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{}, nil)
		r := brokertest.V3Connect(t, addr, &packet.Connect{ClientID: []byte("ping"), CleanStart: true, KeepAlive: 1})
		for range 10 { // 14 s, well beyond 1.5 × keep-alive
			time.Sleep(1499 * time.Millisecond) // pacing the client, on the bubble's clock
			r.Sync()
		}
	})
}

// TestV3KeepAlivePaho: the paho client pings on its own and stays
// connected.
func TestV3KeepAlivePaho(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{}, nil)
		lost := make(chan error, 1)
		c := brokertest.V3Paho(t, addr, "paho-ka", true, func(o *mqtt.ClientOptions) {
			o.SetCustomOpenConnectionFn(brokertest.MemPahoConn(addr))
			o.SetKeepAlive(time.Second).SetPingTimeout(time.Second)
			o.SetConnectionLostHandler(func(_ mqtt.Client, err error) { lost <- err })
		})
		ch := brokertest.V3PahoSub(t, c, "ka/t", 1)
		select {
		case err := <-lost:
			t.Fatalf("connection lost: %v", err)
		case <-time.After(time.Minute): // 40 × 1.5 × keep-alive
		}
		brokertest.V3Wait(t, "publish", c.Publish("ka/t", 1, false, "alive"))
		if m := brokertest.V3Next(t, ch); m.Payload != "alive" {
			t.Errorf("got %q, want %q", m.Payload, "alive")
		}
	})
}

// TestV3WillOnKeepAliveTimeout: a client timed out by its keep-alive gets
// its will published then.
func TestV3WillOnKeepAliveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{}, nil)
		sub, _ := brokertest.V3Dial(t, addr, "watcher", true)
		sub.V3Sub("will/#", 1)
		c := v3will("w2", false)
		c.KeepAlive = 1
		brokertest.V3Connect(t, addr, c) // then silent
		start := time.Now()
		sub.V3Expect("will/w2", "w2 gone", 1)
		if el, want := time.Since(start), 1500*time.Millisecond; el != want {
			t.Errorf("will published after %v, want %v", el, want)
		}
	})
}

// TestV5KeepAliveTimeout: a silent client is disconnected with 0x8D after
// one and a half keep-alive periods [MQTT-3.1.2-22], the Server Keep
// Alive when the server lowered the client's.
func TestV5KeepAliveTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{Limits: broker.Limits{MaxKeepAlive: 1}}, nil)
		c := brokertest.Dial(t, addr, packet.V5)
		c.Connect(&packet.Connect{ClientID: []byte("c"), CleanStart: true, KeepAlive: 60})
		start := time.Now()
		if got, want := c.ExpectClosed(), int(packet.KeepAliveTimeout); got != want {
			t.Errorf("DISCONNECT %#x, want %#x", got, want)
		}
		if el, want := time.Since(start), 1500*time.Millisecond; el != want {
			t.Errorf("closed after %v, want %v", el, want)
		}
	})
}

// offlineFor disconnects c (DISCONNECT 0x00) and waits until the broker
// has detached its session: the session's time starts now.
func offlineFor(c *brokertest.Raw) {
	c.T.Helper()
	c.Send(&packet.Disconnect{})
	c.ExpectClosed()
	synctest.Wait()
}

// wantSessionAt sleeps until d after start and requires the session id to
// exist or not.
func wantSessionAt(t *testing.T, s *broker.Server, id string, start time.Time, d time.Duration, exists bool) {
	t.Helper()
	time.Sleep(time.Until(start.Add(d)))
	synctest.Wait()
	if got := s.HasSession(id); got != exists {
		t.Errorf("after %v: session %q exists = %v, want %v", d, id, got, exists)
	}
}

// TestV5SessionExpires: an offline session with expiry 1 s is gone after
// exactly a second, not before.
func TestV5SessionExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, addr := brokertest.StartMem(t, broker.Config{}, nil)
		c, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 1))
		c.V5Sub(1, packet.Subscription{Filter: []byte("t"), QoS: 1}, 1)
		offlineFor(c)
		start := time.Now()
		wantSessionAt(t, s, "c", start, time.Second-time.Nanosecond, true)
		wantSessionAt(t, s, "c", start, time.Second, false)
		if _, ack := brokertest.V5Dial(t, addr, brokertest.V5Connect("c", false)); ack.SessionPresent {
			t.Error("Session Present after the session expired")
		}
	})
}

// TestPersistSessionExpires: an offline session whose expiry passes
// leaves the journal then, not before.
func TestPersistSessionExpires(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &durableBroker{t: t, dir: t.TempDir(), mem: true}
		d.mustStart()
		c, _ := brokertest.V5Dial(t, d.addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 1))
		offlineFor(c)
		if s := d.session("c"); s == nil || s.Disconnected.IsZero() {
			t.Fatalf("offline session in the journal: %+v", s)
		}
		time.Sleep(time.Second - time.Nanosecond)
		synctest.Wait()
		if d.session("c") == nil {
			t.Fatal("session left the journal before its expiry")
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if s := d.session("c"); s != nil {
			t.Errorf("expired session still in the journal: %+v", s)
		}
	})
}

// TestV5SessionExpiryCapped: Limits.MaxSessionExpiry caps the client's
// interval, and the CONNACK says which one applies [MQTT-3.2.2-?].
func TestV5SessionExpiryCapped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, addr := brokertest.StartMem(t, broker.Config{Limits: broker.Limits{MaxSessionExpiry: 1}}, nil)
		c, ack := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 3600))
		if !ack.Props.Has(packet.PropSessionExpiry) {
			t.Fatal("CONNACK without Session Expiry Interval")
		}
		if got, want := ack.Props.SessionExpiry, uint32(1); got != want {
			t.Errorf("CONNACK Session Expiry Interval = %d, want %d", got, want)
		}
		offlineFor(c)
		start := time.Now()
		wantSessionAt(t, s, "c", start, time.Second-time.Nanosecond, true)
		wantSessionAt(t, s, "c", start, time.Second, false)
	})
}

// TestV5WillDelay: a will with delay 1 s is published a second after the
// connection drops [MQTT-3.1.3-9], not before.
func TestV5WillDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{}, nil)
		w := v5WillWatcher(t, addr)
		c, _ := brokertest.V5Dial(t, addr, v5WillConnect("c", 1, 60))
		c.Conn.Close()
		synctest.Wait()
		start := time.Now()
		w.ExpectSilence(time.Second - time.Nanosecond)
		if m := w.ExpectPublish(); string(m.Payload) != "c gone" {
			t.Errorf("will payload %q", m.Payload)
		}
		if el, want := time.Since(start), time.Second; el != want {
			t.Errorf("will published after %v, want %v", el, want)
		}
	})
}

// TestV5WillDelayReconnect: reconnecting within the will delay cancels
// the will.
func TestV5WillDelayReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, addr := brokertest.StartMem(t, broker.Config{}, nil)
		w := v5WillWatcher(t, addr)
		c, _ := brokertest.V5Dial(t, addr, v5WillConnect("c", 1, 60))
		c.Conn.Close()
		synctest.Wait()
		if got := s.Stats.Connections.Load(); got != 1 {
			t.Fatalf("connections %d after the drop, want 1", got)
		}
		if _, ack := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", false), 60)); !ack.SessionPresent {
			t.Error("Session Present = false")
		}
		w.ExpectSilence(time.Hour)
	})
}

// TestV5WillAtSessionEnd: a session that expires before the will delay
// publishes the will when it ends [MQTT-3.1.3-9].
func TestV5WillAtSessionEnd(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, addr := brokertest.StartMem(t, broker.Config{}, nil)
		w := v5WillWatcher(t, addr)
		c, _ := brokertest.V5Dial(t, addr, v5WillConnect("c", 3600, 1))
		c.Conn.Close()
		synctest.Wait()
		start := time.Now()
		if m := w.ExpectPublish(); string(m.Payload) != "c gone" {
			t.Errorf("will payload %q", m.Payload)
		}
		if el, want := time.Since(start), time.Second; el != want {
			t.Errorf("will published after %v, want %v (session expiry)", el, want)
		}
	})
}

// TestSocketDeadlinesIgnoreConfigNow: Config.Now is protocol time only.
// A clock an hour behind must not set the CONNECT deadline in the past,
// nor one an hour ahead push the keep-alive an hour away: socket
// deadlines come from time.Now.
func TestSocketDeadlinesIgnoreConfigNow(t *testing.T) {
	for _, off := range []time.Duration{-time.Hour, time.Hour} {
		t.Run(off.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var clk brokertest.Clock
				clk.Advance(off)
				_, addr := brokertest.StartMem(t, broker.Config{Now: clk.Now}, nil)
				c := brokertest.Dial(t, addr, packet.V5)
				if ack := c.Connect(&packet.Connect{ClientID: []byte("c"), CleanStart: true, KeepAlive: 1}); ack.Code != packet.Success {
					t.Fatalf("CONNACK code %#x", byte(ack.Code))
				}
				c.Sync()
				start := time.Now()
				if got, want := c.ExpectClosed(), int(packet.KeepAliveTimeout); got != want {
					t.Errorf("DISCONNECT %#x, want %#x", got, want)
				}
				if el, want := time.Since(start), 1500*time.Millisecond; el != want {
					t.Errorf("keep-alive closed after %v, want %v", el, want)
				}
			})
		})
	}
}

// TestSessionExpiryFollowsConfigNow: session expiry is protocol time. When
// Config.Now falls 5 s behind after the disconnection, a 10 s session
// lives 15 s of real time: the runtime timer wakes the broker, the
// injected clock decides.
func TestSessionExpiryFollowsConfigNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var clk brokertest.Clock
		s, addr := brokertest.StartMem(t, broker.Config{Now: clk.Now}, nil)
		c, _ := brokertest.V5Dial(t, addr, brokertest.V5Expiry(brokertest.V5Connect("c", true), 10))
		offlineFor(c)
		start := time.Now()
		clk.Advance(-5 * time.Second)
		wantSessionAt(t, s, "c", start, 15*time.Second-time.Nanosecond, true)
		wantSessionAt(t, s, "c", start, 15*time.Second, false)
	})
}

// TestWillDelayFollowsConfigNow: the will delay is protocol time too.
func TestWillDelayFollowsConfigNow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var clk brokertest.Clock
		_, addr := brokertest.StartMem(t, broker.Config{Now: clk.Now}, nil)
		w := v5WillWatcher(t, addr)
		c, _ := brokertest.V5Dial(t, addr, v5WillConnect("c", 10, 60))
		c.Conn.Close()
		synctest.Wait()
		start := time.Now()
		clk.Advance(-5 * time.Second)
		w.ExpectSilence(15*time.Second - time.Nanosecond)
		if m := w.ExpectPublish(); string(m.Payload) != "c gone" {
			t.Errorf("will payload %q", m.Payload)
		}
		if el, want := time.Since(start), 15*time.Second; el != want {
			t.Errorf("will published after %v, want %v", el, want)
		}
	})
}
