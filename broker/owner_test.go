package broker_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/testenv"
)

// passAuth admits a user whose password is "pw-" and the username, as the
// principal "user:" and the username.
type passAuth struct{}

func (passAuth) Authenticate(c *broker.Client, r *broker.AuthRequest) broker.AuthResult {
	u := string(r.Username)
	if u == "" || !r.HasPassword || string(r.Password) != "pw-"+u {
		return broker.AuthResult{Code: packet.BadUsernameOrPassword}
	}
	c.Username = u
	return broker.AuthResult{Code: packet.Success, Principal: "user:" + u}
}

// userConnect is a CONNECT by user with client id; a persistent one (clean
// false) has a session expiry of an hour in 5.0.
func userConnect(v byte, user, id string, clean bool) *packet.Connect {
	cp := &packet.Connect{ClientID: []byte(id), CleanStart: clean, KeepAlive: 60,
		UsernameFlag: true, Username: []byte(user), PasswordFlag: true, Password: []byte("pw-" + user)}
	if v == packet.V5 && !clean {
		brokertest.V5Expiry(cp, 3600)
	}
	return cp
}

// dialUser connects user with client id and requires success.
func dialUser(t *testing.T, addr string, v byte, user, id string, clean bool) (*brokertest.Raw, *packet.Connack) {
	t.Helper()
	r := brokertest.Dial(t, addr, v)
	ack := r.Connect(userConnect(v, user, id, clean))
	if ack.Code != 0 {
		t.Fatalf("CONNACK for %s as %q: code %#x", user, id, byte(ack.Code))
	}
	return r, ack
}

// pubAcked publishes at QoS 1 and waits for the PUBACK: the broker has
// routed the message.
func pubAcked(r *brokertest.Raw, pid uint16, topic, payload string) {
	r.T.Helper()
	r.Send(&packet.Publish{Topic: []byte(topic), Payload: []byte(payload), QoS: 1, PacketID: pid})
	r.ExpectAck(packet.PUBACK)
}

// expectMsg requires the next packet to be a PUBLISH of payload on topic
// and acknowledges it.
func expectMsg(r *brokertest.Raw, topic, payload string) {
	r.T.Helper()
	p := r.ExpectPublish()
	if string(p.Topic) != topic || string(p.Payload) != payload {
		r.T.Fatalf("got %q on %q, want %q on %q", p.Payload, p.Topic, payload, topic)
	}
	if p.QoS > 0 {
		r.Send(&packet.Ack{Type: packet.PUBACK, PacketID: p.PacketID})
	}
}

// TestTakeoverByOtherPrincipalRefused: alice cannot connect with the
// client id of bob's session, online or offline (3.1.1: CONNACK 5, 5.0:
// 0x87, no session present); bob keeps his connection, does not lose his
// will, receives his live messages and, after going offline, his queued
// ones. The refusal is counted and logged without the password. Bob
// himself still takes over his own session.
func TestTakeoverByOtherPrincipalRefused(t *testing.T) {
	for _, v := range []byte{packet.V311, packet.V5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			var logs testenv.SyncBuffer
			sec := seclog.New(slog.New(slog.NewTextHandler(&logs, nil)), nil)
			s, addr := brokertest.Start(t, broker.Config{Security: sec}, &broker.Port{Name: "pw", Authenticator: passAuth{}})
			refused := byte(packet.NotAuthorized)
			if v != packet.V5 {
				refused = 5
			}
			tryAlice := func() {
				t.Helper()
				a := brokertest.Dial(t, addr, v)
				ack := a.Connect(userConnect(v, "alice", "dev", false))
				if byte(ack.Code) != refused || ack.SessionPresent {
					t.Fatalf("alice as bob's client id: CONNACK code %#x present %v, want %#x", byte(ack.Code), ack.SessionPresent, refused)
				}
				a.ExpectClosed()
			}

			bobCP := userConnect(v, "bob", "dev", false)
			bobCP.WillFlag, bobCP.WillTopic, bobCP.WillPayload = true, []byte("will/dev"), []byte("bob gone")
			bob := brokertest.Dial(t, addr, v)
			if ack := bob.Connect(bobCP); ack.Code != 0 {
				t.Fatalf("bob: CONNACK %#x", byte(ack.Code))
			}
			if codes := bob.Subscribe(1, packet.Subscription{Filter: []byte("bob/#"), QoS: 1}); codes[0] != 1 {
				t.Fatalf("bob's SUBACK %v", codes)
			}
			carol, _ := dialUser(t, addr, v, "carol", "carol", true)
			carol.Subscribe(1, packet.Subscription{Filter: []byte("will/#"), QoS: 1})

			tryAlice() // bob online
			pubAcked(carol, 1, "bob/live", "for bob")
			expectMsg(bob, "bob/live", "for bob")
			// Had bob's will fired, it would reach carol before her marker.
			pubAcked(bob, 2, "will/marker", "m")
			expectMsg(carol, "will/marker", "m")

			bob.Send(&packet.Disconnect{})
			bob.ExpectClosed()
			brokertest.WaitConns(t, s, 1)
			pubAcked(carol, 3, "bob/queued", "kept for bob")
			tryAlice() // bob offline

			bob, ack := dialUser(t, addr, v, "bob", "dev", false)
			if !ack.SessionPresent {
				t.Fatal("bob's session not present after alice's attempts")
			}
			expectMsg(bob, "bob/queued", "kept for bob")
			bob.Sync() // the PUBACK is handled

			// The owner still takes over his own session.
			bob2, ack := dialUser(t, addr, v, "bob", "dev", false)
			if !ack.SessionPresent {
				t.Error("bob's takeover: session not present")
			}
			if code := bob.ExpectClosed(); v == packet.V5 && code != int(packet.SessionTakenOver) {
				t.Errorf("bob's old connection: DISCONNECT %#x, want 0x8E", code)
			}
			pubAcked(carol, 4, "bob/after", "x")
			expectMsg(bob2, "bob/after", "x")

			if n := s.Security().Count(seclog.TakeoverRefused); n != 2 {
				t.Errorf("takeover_refused counted %d, want 2", n)
			}
			out := logs.String()
			if !strings.Contains(out, "event=takeover_refused") || !strings.Contains(out, "principal=user:alice") ||
				!strings.Contains(out, "client=dev") || !strings.Contains(out, "remote=127.0.0.1:") {
				t.Errorf("log lacks the refused takeover:\n%s", out)
			}
			if strings.Contains(out, "pw-alice") {
				t.Errorf("log shows a password:\n%s", out)
			}
		})
	}
}

// TestSessionOwnerPersisted: the owner is in the journal with the session
// and restored, so after a restart alice still cannot take bob's session.
// A session written before sessions had owners is claimed by the first
// principal that connects with its id, and the claim is written too.
func TestSessionOwnerPersisted(t *testing.T) {
	d := &durableBroker{t: t, dir: t.TempDir(), port: &broker.Port{Name: "pw", Authenticator: passAuth{}}}
	d.mustStart()
	bob, _ := dialUser(t, d.addr, packet.V311, "bob", "dev", false)
	bob.Subscribe(1, packet.Subscription{Filter: []byte("bob/#"), QoS: 1})
	if st := d.session("dev"); st == nil || st.Owner != "user:bob" {
		t.Fatalf("session in the journal: %+v, want owner user:bob", st)
	}
	d.stop()

	// A record from before owners: no owner.
	seedJournal(t, d.dir, nil, []broker.StoredSession{{ID: "old", Expiry: 3600}})
	d.mustStart()
	a := brokertest.Dial(t, d.addr, packet.V5)
	if ack := a.Connect(userConnect(packet.V5, "alice", "dev", false)); ack.Code != packet.NotAuthorized {
		t.Fatalf("alice after restart: CONNACK %#x, want 0x87", byte(ack.Code))
	}
	carol, _ := dialUser(t, d.addr, packet.V311, "carol", "carol", true)
	pubAcked(carol, 1, "bob/1", "after restart")
	bob, ack := dialUser(t, d.addr, packet.V311, "bob", "dev", false)
	if !ack.SessionPresent {
		t.Fatal("bob's session not present after restart")
	}
	expectMsg(bob, "bob/1", "after restart")

	if _, ack := dialUser(t, d.addr, packet.V311, "alice", "old", false); !ack.SessionPresent {
		t.Error("alice did not resume the session without an owner")
	}
	if st := d.session("old"); st == nil || st.Owner != "user:alice" {
		t.Errorf("claimed session in the journal: %+v, want owner user:alice", st)
	}
	d.restart()
	b := brokertest.Dial(t, d.addr, packet.V311)
	if ack := b.Connect(userConnect(packet.V311, "bob", "old", false)); ack.Code != 5 {
		t.Errorf("bob for the session alice claimed, after a restart: CONNACK %d, want 5", ack.Code)
	}
}

// switchPolicy allows subscribing to everything except, once deny is set,
// filters starting with "b/".
type switchPolicy struct{ deny *atomic.Bool }

func (p switchPolicy) Authorize(*broker.Client) broker.Permissions { return p }
func (p switchPolicy) AllowPublish([]byte) bool                    { return true }
func (p switchPolicy) AllowSubscribe(f []byte) bool {
	return !p.deny.Load() || !bytes.HasPrefix(f, []byte("b/"))
}

// TestResumeDropsDeniedSubscriptions: a resumed session keeps only the
// subscriptions today's policy allows; the others are removed (no more
// messages, not saved again) and logged.
func TestResumeDropsDeniedSubscriptions(t *testing.T) {
	var deny atomic.Bool
	var logs testenv.SyncBuffer
	d := &durableBroker{t: t, dir: t.TempDir(), cfg: broker.Config{Security: seclog.New(slog.New(slog.NewTextHandler(&logs, nil)), nil)},
		port: &broker.Port{Name: "pw", Authenticator: passAuth{}, Authorizer: switchPolicy{&deny}}}
	d.mustStart()
	s, addr := d.s, d.addr
	bob, _ := dialUser(t, addr, packet.V5, "bob", "dev", false)
	bob.Subscribe(1, packet.Subscription{Filter: []byte("a/#"), QoS: 1}, packet.Subscription{Filter: []byte("b/#"), QoS: 1},
		packet.Subscription{Filter: []byte("$share/g/b/x"), QoS: 1})
	bob.Send(&packet.Disconnect{})
	bob.ExpectClosed()
	brokertest.WaitConns(t, s, 0)

	deny.Store(true)
	bob, ack := dialUser(t, addr, packet.V5, "bob", "dev", false)
	if !ack.SessionPresent {
		t.Fatal("session not present")
	}
	if st := d.session("dev"); st == nil || len(st.Subscriptions) != 1 || st.Subscriptions[0].Filter != "a/#" {
		t.Errorf("in the journal after resume: %+v, want only a/#", st)
	}
	carol, _ := dialUser(t, addr, packet.V5, "carol", "carol", true)
	pubAcked(carol, 1, "b/x", "denied now")
	pubAcked(carol, 2, "a/1", "allowed")
	expectMsg(bob, "a/1", "allowed") // b/x would have come first
	if n := s.Security().Count(seclog.SubscribeDenied); n != 2 {
		t.Errorf("subscribe_denied counted %d, want 2", n)
	}
	for _, f := range []string{"filter=b/#", "filter=$share/g/b/x"} {
		if !strings.Contains(logs.String(), f) {
			t.Errorf("log lacks %s:\n%s", f, logs.String())
		}
	}
}

// TestStoredSessionVersion1: a session record saved before sessions had
// owners (version 1: no owner after the id) still loads, with no owner.
func TestStoredSessionVersion1(t *testing.T) {
	want := roundTripSessions[1]
	want.Owner = ""
	v3, err := want.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Version 2 is version 3 without the will (here none: a zero byte at
	// the end); version 1 is version 2 without the owner after the id
	// (here the empty string, one zero byte).
	idEnd := 1 + 1 + len(want.ID)
	if v3[0] != 3 || v3[idEnd] != 0 || v3[len(v3)-1] != 0 {
		t.Fatalf("unexpected encoding % x", v3)
	}
	v1 := append([]byte{1}, v3[1:idEnd]...)
	v1 = append(v1, v3[idEnd+1:len(v3)-1]...)
	var got broker.StoredSession
	if err := got.UnmarshalBinary(v1); err != nil {
		t.Fatalf("decode version 1: %v", err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("version 1 record (-want +got):\n%s", diff)
	}
	if err := got.UnmarshalBinary(append([]byte{4}, v3[1:]...)); err == nil {
		t.Error("version 4 decoded")
	}
}

// TestReservedClientIDPrefix: an identifier that starts with the reserved
// prefix is refused on an ordinary port (3.1.1 CONNACK 2, 5.0 0x85), so a
// LAN client cannot squat on the session of a client the appliance has not
// started yet; a port with ReservedClientIDs accepts it, and other
// identifiers are untouched.
func TestReservedClientIDPrefix(t *testing.T) {
	for _, v := range []byte{packet.V311, packet.V5} {
		t.Run(fmt.Sprintf("v%d", v), func(t *testing.T) {
			var logs testenv.SyncBuffer
			sec := seclog.New(slog.New(slog.NewTextHandler(&logs, nil)), nil)
			s, lan := brokertest.Start(t, broker.Config{Security: sec, ReservedClientIDPrefix: "own-"}, &broker.Port{Name: "lan"})
			own := brokertest.Serve(t, s, &broker.Port{Name: "own", ReservedClientIDs: true})
			refused := byte(packet.ClientIdentifierNotValid)
			if v != packet.V5 {
				refused = 2
			}
			persistent := func(id string) *packet.Connect {
				cp := &packet.Connect{ClientID: []byte(id), KeepAlive: 60}
				if v == packet.V5 {
					brokertest.V5Expiry(cp, 3600)
				}
				return cp
			}
			squat := brokertest.Dial(t, lan, v)
			if ack := squat.Connect(persistent("own-flow")); byte(ack.Code) != refused || ack.SessionPresent {
				t.Fatalf("reserved id on the LAN port: CONNACK %#x present %v, want %#x", byte(ack.Code), ack.SessionPresent, refused)
			}
			squat.ExpectClosed()
			if ack := brokertest.Dial(t, lan, v).Connect(persistent("owner-not-reserved")); ack.Code != 0 {
				t.Fatalf("ordinary id on the LAN port: CONNACK %#x", byte(ack.Code))
			}
			if ack := brokertest.Dial(t, own, v).Connect(persistent("own-flow")); ack.Code != 0 || ack.SessionPresent {
				t.Fatalf("reserved id on its own port: CONNACK %#x present %v (a squatter's session?)", byte(ack.Code), ack.SessionPresent)
			}
			if n := s.Security().Count(seclog.ConnectDenied); n != 1 {
				t.Errorf("connect_denied counted %d, want 1", n)
			}
			if out := logs.String(); !strings.Contains(out, "reserved client identifier") || !strings.Contains(out, "client=own-flow") {
				t.Errorf("log lacks the refusal:\n%s", out)
			}
		})
	}
}

// TestCleanSessionEndingOnAnotherPort: a client that disconnects its
// clean session on one anonymous port and at once connects with the same
// client id on another (another principal) is accepted: the CONNECT
// waits for the session its own DISCONNECT ends, which the broker may
// read later than the new CONNECT. A session that stays connected is
// still refused.
func TestCleanSessionEndingOnAnotherPort(t *testing.T) {
	s, addr1 := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "one"})
	addr2 := brokertest.Serve(t, s, &broker.Port{Name: "two"})
	connect := &packet.Connect{ClientID: []byte("roaming"), CleanStart: true, KeepAlive: 60}

	a := brokertest.Dial(t, addr1, packet.V311)
	if ack := a.Connect(connect); ack.Code != 0 {
		t.Fatalf("first CONNACK %#x", byte(ack.Code))
	}
	b := brokertest.Dial(t, addr2, packet.V311)
	b.Write(connect.Append(nil)) // while a's session is still connected
	a.Write([]byte{0xe0, 0})     // DISCONNECT, after it
	if h, body := b.Read(); h.Type != packet.CONNACK || len(body) != 2 || body[1] != 0 {
		t.Fatalf("second CONNECT: %v % x, want CONNACK 0", h.Type, body)
	}

	// Connected and staying: refused (return code 5).
	c := brokertest.Dial(t, addr1, packet.V311)
	if ack := c.Connect(connect); ack.Code != 5 {
		t.Fatalf("CONNECT while the other principal stays connected: CONNACK %#x, want 5", byte(ack.Code))
	}
}
