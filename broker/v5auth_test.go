package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// TestV5ShutdownDisconnect: Server.Shutdown tells a connected 5.0 client
// 0x8B Server shutting down.
func TestV5ShutdownDisconnect(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "c", CleanStart: true, KeepAlive: 30})
	ctx, cancel := context.WithTimeout(context.Background(), brokertest.WaitTime)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got, want := c.ExpectDisconnect().ReasonCode, byte(packet.ServerShuttingDown); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
}

// TestV5ServerDisconnect: Server.Disconnect closes one client with the
// given reason code and leaves the others alone.
func TestV5ServerDisconnect(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	c, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "victim", CleanStart: true, KeepAlive: 30})
	other, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "other", CleanStart: true, KeepAlive: 30})
	if !s.Disconnect("victim", packet.AdministrativeAction) {
		t.Fatal("Disconnect: client not connected")
	}
	if got, want := c.ExpectDisconnect().ReasonCode, byte(packet.AdministrativeAction); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
	other.Sub(paho.SubscribeOptions{Topic: "alive", QoS: 1}, 0)
	if s.Disconnect("nobody", packet.AdministrativeAction) {
		t.Error("Disconnect of an unknown client reported true")
	}
}

// challengeAuth accepts username/password "u"/"p", or the enhanced method
// "challenge": it sends "nonce" and accepts the answer "answer".
type challengeAuth struct {
	mu    sync.Mutex
	steps []int
}

func (a *challengeAuth) Authenticate(c *broker.Client, r *broker.AuthRequest) broker.AuthResult {
	a.mu.Lock()
	a.steps = append(a.steps, r.Step)
	a.mu.Unlock()
	switch {
	case r.Method == "" && string(r.Username) == "u" && string(r.Password) == "p":
		return broker.AuthResult{Code: packet.Success}
	case r.Method == "":
		return broker.AuthResult{Code: packet.BadUsernameOrPassword}
	case r.Method != "challenge":
		return broker.AuthResult{Code: packet.BadAuthenticationMethod}
	case r.Step == 0:
		return broker.AuthResult{Code: packet.ContinueAuthentication, AuthData: []byte("nonce")}
	case r.Step == 1 && string(r.Data) == "answer":
		return broker.AuthResult{Code: packet.Success, AuthData: []byte("welcome")}
	}
	return broker.AuthResult{Code: packet.NotAuthorized}
}

// connectAuth is a CONNECT with an Authentication Method.
func connectAuth(id, method string) *packet.Connect {
	c := brokertest.V5Connect(id, true)
	c.Version, c.ProtocolName = packet.V5, []byte("MQTT")
	c.Props.Set(packet.PropAuthMethod)
	c.Props.AuthMethod = []byte(method)
	return c
}

// TestV5AuthMethodWithoutAuthenticator: enhanced authentication on a port
// without an Authenticator gets CONNACK 0x8C.
func TestV5AuthMethodWithoutAuthenticator(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, nil)
	c := brokertest.Dial(t, addr, packet.V5)
	if ack := c.Connect(connectAuth("c", "challenge")); ack.Code != packet.BadAuthenticationMethod {
		t.Errorf("CONNACK %#x, want 0x8C", byte(ack.Code))
	}
	c.ExpectClosed()
}

// pahoAuther answers the server's challenge.
type pahoAuther struct{ got chan *paho.Auth }

func (a pahoAuther) Authenticate(in *paho.Auth) *paho.Auth {
	a.got <- in
	return &paho.Auth{ReasonCode: byte(packet.ContinueAuthentication),
		Properties: &paho.AuthProperties{AuthMethod: "challenge", AuthData: []byte("answer")}}
}
func (pahoAuther) Authenticated() {}

// TestV5EnhancedAuth: a paho client completes a challenge/response
// exchange: AUTH 0x18 from the server, AUTH 0x18 back, CONNACK 0x00.
func TestV5EnhancedAuth(t *testing.T) {
	au := &challengeAuth{}
	_, addr := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "auth", Authenticator: au})
	auther := pahoAuther{got: make(chan *paho.Auth, 1)}
	c, ack, err := brokertest.V5DialPaho(t, addr, &paho.Connect{ClientID: "c", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{AuthMethod: "challenge", AuthData: []byte("hello")},
	}, func(cfg *paho.ClientConfig) { cfg.AuthHandler = auther })
	if err != nil {
		t.Fatalf("connect: %v (CONNACK %+v)", err, ack)
	}
	in := <-auther.got
	if in.ReasonCode != byte(packet.ContinueAuthentication) || in.Properties == nil ||
		in.Properties.AuthMethod != "challenge" || string(in.Properties.AuthData) != "nonce" {
		t.Errorf("server AUTH: code %#x props %+v", in.ReasonCode, in.Properties)
	}
	if got, want := ack.Properties.AuthMethod, "challenge"; got != want {
		t.Errorf("CONNACK Authentication Method %q, want %q", got, want)
	}
	if got, want := string(ack.Properties.AuthData), "welcome"; got != want {
		t.Errorf("CONNACK Authentication Data %q, want the authenticator's final %q", got, want)
	}
	c.Sub(paho.SubscribeOptions{Topic: "ok", QoS: 0}, 0)
	au.mu.Lock()
	defer au.mu.Unlock()
	if len(au.steps) != 2 || au.steps[0] != 0 || au.steps[1] != 1 {
		t.Errorf("authenticator steps %v, want [0 1]", au.steps)
	}
}

// TestV5EnhancedAuthWrongMethod: an AUTH with another method than the
// CONNECT's fails the connection [MQTT-4.12.0-5].
func TestV5EnhancedAuthWrongMethod(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "auth", Authenticator: &challengeAuth{}})
	c := brokertest.Dial(t, addr, packet.V5)
	c.Write(connectAuth("c", "challenge").Append(nil))
	h, body := c.Read()
	var a packet.Auth
	if h.Type != packet.AUTH || a.Decode(packet.V5, h.Flags, body) != nil || a.Code != packet.ContinueAuthentication {
		t.Fatalf("got packet type %d code %#x, want AUTH 0x18", h.Type, byte(a.Code))
	}
	reply := &packet.Auth{Code: packet.ContinueAuthentication}
	reply.Props.Set(packet.PropAuthMethod)
	reply.Props.AuthMethod = []byte("other")
	reply.Props.Set(packet.PropAuthData)
	reply.Props.AuthData = []byte("answer")
	c.Send(reply)
	h, body = c.Read()
	var ack packet.Connack
	if h.Type != packet.CONNACK || ack.Decode(packet.V5, h.Flags, body) != nil {
		t.Fatalf("got packet type %d, want CONNACK", h.Type)
	}
	if !ack.Code.IsFailure() {
		t.Errorf("CONNACK %#x, want a failure", byte(ack.Code))
	}
	c.ExpectClosed()
}

// TestV5BadPassword: an Authenticator's 0x86 reaches the client as
// CONNACK 0x86.
func TestV5BadPassword(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "auth", Authenticator: &challengeAuth{}})
	for _, tt := range []struct {
		pass string
		want packet.Code
	}{{"p", packet.Success}, {"wrong", packet.BadUsernameOrPassword}} {
		c := brokertest.Dial(t, addr, packet.V5)
		cp := brokertest.V5Connect("c", true)
		cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, []byte("u"), true, []byte(tt.pass)
		if ack := c.Connect(cp); ack.Code != tt.want {
			t.Errorf("password %q: CONNACK %#x, want %#x", tt.pass, byte(ack.Code), byte(tt.want))
		}
		c.Conn.Close()
	}
}

// TestV5Authorizer: a denied publish gets PUBACK 0x87 and reaches nobody,
// a denied subscribe gets SUBACK 0x87, a denied client CONNACK 0x87.
func TestV5Authorizer(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "acl", Authorizer: denyTopic{topic: "secret", client: "banned"}})
	c := brokertest.Dial(t, addr, packet.V5)
	if ack := c.Connect(brokertest.V5Connect("banned", true)); ack.Code != packet.NotAuthorized {
		t.Errorf("denied client: CONNACK %#x, want 0x87", byte(ack.Code))
	}

	sub, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("sub", true))
	sub.V5Sub(1, packet.Subscription{Filter: []byte("#"), QoS: 1}, 1)
	sub.V5Sub(2, packet.Subscription{Filter: []byte("secret"), QoS: 1}, packet.NotAuthorized)
	p, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("p", true))
	p.V5Pub("secret", 1, 1, "x")
	if a := p.ExpectAck(packet.PUBACK); a.Code != packet.NotAuthorized {
		t.Errorf("denied publish: PUBACK %#x, want 0x87", byte(a.Code))
	}
	sub.ExpectSilence(100 * time.Millisecond)
}

// TestV5InprocSubscribe: Server.Subscribe sees a client's publish with its
// properties and sender.
func TestV5InprocSubscribe(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	type got struct {
		topic, payload, sender, respTopic string
		user                              []string
	}
	ch := make(chan got, 10)
	unsub, err := s.Subscribe("svc/#", 1, func(m *broker.Message) {
		g := got{topic: string(m.Topic), payload: string(m.Payload), respTopic: string(m.Props.ResponseTopic)}
		if m.Sender != nil {
			g.sender = m.Sender.ID
		}
		for _, u := range m.Props.User {
			g.user = append(g.user, string(u.Key)+"="+string(u.Value))
		}
		ch <- g
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	c, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "dev1", CleanStart: true, KeepAlive: 30})
	c.Pub(&paho.Publish{Topic: "svc/get", QoS: 1, Payload: []byte("k"), Properties: &paho.PublishProperties{
		ResponseTopic: "dev1/resp", User: paho.UserProperties{{Key: "op", Value: "get"}},
	}})
	select {
	case g := <-ch:
		want := got{topic: "svc/get", payload: "k", sender: "dev1", respTopic: "dev1/resp", user: []string{"op=get"}}
		if g.topic != want.topic || g.payload != want.payload || g.sender != want.sender || g.respTopic != want.respTopic ||
			len(g.user) != 1 || g.user[0] != want.user[0] {
			t.Errorf("got %+v, want %+v", g, want)
		}
	case <-time.After(brokertest.WaitTime):
		t.Fatal("in-process subscriber got nothing")
	}
}

// senderOf returns the Client that publishes on topic next, as an
// in-process subscriber sees it.
func senderOf(t *testing.T, s *broker.Server, topic string) <-chan *broker.Client {
	t.Helper()
	ch := make(chan *broker.Client, 1)
	unsub, err := s.Subscribe(topic, 0, func(m *broker.Message) {
		select {
		case ch <- m.Sender:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unsub)
	return ch
}

func recvClient(t *testing.T, ch <-chan *broker.Client) *broker.Client {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(brokertest.WaitTime):
		t.Fatal("no sender seen")
		return nil
	}
}

// TestV5InprocPublishAndSendTo: Server.Publish reaches a subscribed 5.0
// client; Server.SendTo reaches a client that never subscribed.
func TestV5InprocPublishAndSendTo(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, nil)
	sub, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30})
	sub.Sub(paho.SubscribeOptions{Topic: "news", QoS: 1}, 0)
	lone, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "lone", CleanStart: true, KeepAlive: 30})
	who := senderOf(t, s, "whoami")
	lone.Pub(&paho.Publish{Topic: "whoami", QoS: 1})
	loneClient := recvClient(t, who)

	p := &packet.Publish{Topic: []byte("news"), QoS: 1, Payload: []byte("hello")}
	p.Props.Set(packet.PropContentType)
	p.Props.ContentType = []byte("text/plain")
	if err := s.Publish(p); err != nil {
		t.Fatal(err)
	}
	if m := sub.ExpectMessage(); m.Topic != "news" || string(m.Payload) != "hello" || m.Properties.ContentType != "text/plain" {
		t.Errorf("got %q %q content type %q", m.Topic, m.Payload, m.Properties.ContentType)
	}

	if !s.SendTo(loneClient.Session, &packet.Publish{Topic: []byte("notify/lone"), QoS: 1, Payload: []byte("direct")}) {
		t.Fatal("SendTo: no session for lone")
	}
	if m := lone.ExpectMessage(); m.Topic != "notify/lone" || string(m.Payload) != "direct" {
		t.Errorf("got %q %q", m.Topic, m.Payload)
	}
	sub.ExpectNoMessage(50 * time.Millisecond)
	if s.SendTo(broker.SessionRef{}, &packet.Publish{Topic: []byte("x")}) {
		t.Error("SendTo the zero SessionRef reported true")
	}
}

// TestV5SendToSessionInstance: a SessionRef names one connection's
// session, not its client ID. After that client disconnects, SendTo
// through its ref reaches neither a new clean session with the same ID
// nor the same persistent session resumed by a new connection, and queues
// nothing while the session is offline.
func TestV5SendToSessionInstance(t *testing.T) {
	gone := make(chan string, 4)
	s, addr := brokertest.Start(t, broker.Config{OnDisconnect: func(c *broker.Client) { gone <- c.ID }}, nil)
	who := senderOf(t, s, "whoami")
	note := func(i int) *packet.Publish {
		return &packet.Publish{Topic: []byte("notify/x"), QoS: 1, Payload: []byte(fmt.Sprint("n", i))}
	}

	// A clean session, replaced by a new clean session.
	first, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "same", CleanStart: true, KeepAlive: 30})
	first.Pub(&paho.Publish{Topic: "whoami", QoS: 1})
	ref := recvClient(t, who).Session
	first.Disconnect(&paho.Disconnect{})
	second, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "same", CleanStart: true, KeepAlive: 30})
	if s.SendTo(ref, note(1)) {
		t.Error("SendTo through the first connection's ref reported true for the new clean session")
	}
	second.ExpectNoMessage(100 * time.Millisecond)

	// A persistent session, resumed by a new connection.
	expiry := uint32(300)
	pers, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "pers", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	pers.Pub(&paho.Publish{Topic: "whoami", QoS: 1})
	ref = recvClient(t, who).Session
	n2 := note(2)
	n2.QoS = 0 // nothing in flight to resend on resumption
	if !s.SendTo(ref, n2) {
		t.Fatal("SendTo through a live ref reported false")
	}
	if m := pers.ExpectMessage(); string(m.Payload) != "n2" {
		t.Errorf("got %q", m.Payload)
	}
	pers.Disconnect(&paho.Disconnect{})
	for id := ""; id != "pers"; {
		select {
		case id = <-gone:
		case <-time.After(brokertest.WaitTime):
			t.Fatal("pers did not disconnect")
		}
	}
	if s.SendTo(ref, note(3)) {
		t.Error("SendTo reported true for an offline session")
	}
	resumed, ack := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "pers", CleanStart: false, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if !ack.SessionPresent {
		t.Fatal("persistent session not resumed")
	}
	if s.SendTo(ref, note(4)) {
		t.Error("SendTo through the old connection's ref reported true for the resumed session")
	}
	resumed.ExpectNoMessage(100 * time.Millisecond) // neither n3 (offline) nor n4

	// DisconnectSession, likewise, closes only the connection it names.
	if s.DisconnectSession(ref, packet.AdministrativeAction) {
		t.Error("DisconnectSession through the old connection's ref reported true")
	}
	resumed.Pub(&paho.Publish{Topic: "whoami", QoS: 1}) // still connected: answered
	now := recvClient(t, who).Session
	if !s.DisconnectSession(now, packet.AdministrativeAction) {
		t.Error("DisconnectSession through the live ref reported false")
	}
	if got, want := resumed.ExpectDisconnect().ReasonCode, byte(packet.AdministrativeAction); got != want {
		t.Errorf("DISCONNECT reason %#x, want %#x", got, want)
	}
}

// TestV5PublishAs: PublishAs applies the client's Permissions and never
// publishes on a '$' topic; an allowed message reaches a No Local
// subscription of that same client.
func TestV5PublishAs(t *testing.T) {
	s, addr := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "p", Authorizer: prefixAuthz{"allowed/"}})
	who := senderOf(t, s, "allowed/whoami")
	c, _ := brokertest.V5Paho(t, addr, &paho.Connect{ClientID: "asker", CleanStart: true, KeepAlive: 30})
	c.Sub(paho.SubscribeOptions{Topic: "#", QoS: 1, NoLocal: true}, 0)
	c.Pub(&paho.Publish{Topic: "allowed/whoami", QoS: 1})
	cl := recvClient(t, who)
	c.ExpectNoMessage(50 * time.Millisecond) // No Local: its own whoami

	for _, topic := range []string{"denied/x", "$SYS/x", "$edgebroker/x"} {
		err := s.PublishAs(cl, &packet.Publish{Topic: []byte(topic), QoS: 1, Payload: []byte("no")})
		if !errors.Is(err, broker.ErrNotAuthorized) {
			t.Errorf("PublishAs on %q: %v, want ErrNotAuthorized", topic, err)
		}
	}
	if err := s.PublishAs(cl, &packet.Publish{Topic: []byte("allowed/resp"), QoS: 1, Payload: []byte("yes")}); err != nil {
		t.Fatal(err)
	}
	if m := c.ExpectMessage(); m.Topic != "allowed/resp" || string(m.Payload) != "yes" {
		t.Errorf("got %q %q", m.Topic, m.Payload)
	}
	c.ExpectNoMessage(50 * time.Millisecond)
}

// prefixAuthz allows publishing under one prefix and subscribing to
// anything.
type prefixAuthz struct{ prefix string }

func (a prefixAuthz) Authorize(*broker.Client) broker.Permissions { return a }
func (a prefixAuthz) AllowPublish(topic []byte) bool {
	return len(topic) >= len(a.prefix) && string(topic[:len(a.prefix)]) == a.prefix
}
func (prefixAuthz) AllowSubscribe([]byte) bool { return true }
