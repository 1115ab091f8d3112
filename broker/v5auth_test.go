package broker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker"
	"edgebroker/broker/packet"
)

// TestV5ShutdownDisconnect: Server.Shutdown tells a connected 5.0 client
// 0x8B Server shutting down.
func TestV5ShutdownDisconnect(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c, _ := v5Paho(t, addr, &paho.Connect{ClientID: "c", CleanStart: true, KeepAlive: 30})
	ctx, cancel := context.WithTimeout(context.Background(), waitTime)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got, want := c.expectDisconnect().ReasonCode, byte(packet.ServerShuttingDown); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
}

// TestV5ServerDisconnect: Server.Disconnect closes one client with the
// given reason code and leaves the others alone.
func TestV5ServerDisconnect(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	c, _ := v5Paho(t, addr, &paho.Connect{ClientID: "victim", CleanStart: true, KeepAlive: 30})
	other, _ := v5Paho(t, addr, &paho.Connect{ClientID: "other", CleanStart: true, KeepAlive: 30})
	if !s.Disconnect("victim", packet.AdministrativeAction) {
		t.Fatal("Disconnect: client not connected")
	}
	if got, want := c.expectDisconnect().ReasonCode, byte(packet.AdministrativeAction); got != want {
		t.Errorf("DISCONNECT %#x, want %#x", got, want)
	}
	other.sub(paho.SubscribeOptions{Topic: "alive", QoS: 1}, 0)
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
	c := v5Connect(id, true)
	c.Version, c.ProtocolName = packet.V5, []byte("MQTT")
	c.Props.Set(packet.PropAuthMethod)
	c.Props.AuthMethod = []byte(method)
	return c
}

// TestV5AuthMethodWithoutAuthenticator: enhanced authentication on a port
// without an Authenticator gets CONNACK 0x8C.
func TestV5AuthMethodWithoutAuthenticator(t *testing.T) {
	_, addr := startServer(t, broker.Config{}, nil)
	c := dialRaw(t, addr, packet.V5)
	if ack := c.connect(connectAuth("c", "challenge")); ack.Code != packet.BadAuthenticationMethod {
		t.Errorf("CONNACK %#x, want 0x8C", byte(ack.Code))
	}
	c.expectClosed()
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
	_, addr := startServer(t, broker.Config{}, &broker.Port{Name: "auth", Authenticator: au})
	auther := pahoAuther{got: make(chan *paho.Auth, 1)}
	c, ack, err := v5DialPaho(t, addr, &paho.Connect{ClientID: "c", CleanStart: true, KeepAlive: 30,
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
	c.sub(paho.SubscribeOptions{Topic: "ok", QoS: 0}, 0)
	au.mu.Lock()
	defer au.mu.Unlock()
	if len(au.steps) != 2 || au.steps[0] != 0 || au.steps[1] != 1 {
		t.Errorf("authenticator steps %v, want [0 1]", au.steps)
	}
}

// TestV5EnhancedAuthWrongMethod: an AUTH with another method than the
// CONNECT's fails the connection [MQTT-4.12.0-5].
func TestV5EnhancedAuthWrongMethod(t *testing.T) {
	_, addr := startServer(t, broker.Config{}, &broker.Port{Name: "auth", Authenticator: &challengeAuth{}})
	c := dialRaw(t, addr, packet.V5)
	c.write(connectAuth("c", "challenge").Append(nil))
	h, body := c.read()
	var a packet.Auth
	if h.Type != packet.AUTH || a.Decode(packet.V5, h.Flags, body) != nil || a.Code != packet.ContinueAuthentication {
		t.Fatalf("got packet type %d code %#x, want AUTH 0x18", h.Type, byte(a.Code))
	}
	reply := &packet.Auth{Code: packet.ContinueAuthentication}
	reply.Props.Set(packet.PropAuthMethod)
	reply.Props.AuthMethod = []byte("other")
	reply.Props.Set(packet.PropAuthData)
	reply.Props.AuthData = []byte("answer")
	c.send(reply)
	h, body = c.read()
	var ack packet.Connack
	if h.Type != packet.CONNACK || ack.Decode(packet.V5, h.Flags, body) != nil {
		t.Fatalf("got packet type %d, want CONNACK", h.Type)
	}
	if !ack.Code.IsFailure() {
		t.Errorf("CONNACK %#x, want a failure", byte(ack.Code))
	}
	c.expectClosed()
}

// TestV5BadPassword: an Authenticator's 0x86 reaches the client as
// CONNACK 0x86.
func TestV5BadPassword(t *testing.T) {
	_, addr := startServer(t, broker.Config{}, &broker.Port{Name: "auth", Authenticator: &challengeAuth{}})
	for _, tt := range []struct {
		pass string
		want packet.Code
	}{{"p", packet.Success}, {"wrong", packet.BadUsernameOrPassword}} {
		c := dialRaw(t, addr, packet.V5)
		cp := v5Connect("c", true)
		cp.UsernameFlag, cp.Username, cp.PasswordFlag, cp.Password = true, []byte("u"), true, []byte(tt.pass)
		if ack := c.connect(cp); ack.Code != tt.want {
			t.Errorf("password %q: CONNACK %#x, want %#x", tt.pass, byte(ack.Code), byte(tt.want))
		}
		c.nc.Close()
	}
}

// TestV5Authorizer: a denied publish gets PUBACK 0x87 and reaches nobody,
// a denied subscribe gets SUBACK 0x87, a denied client CONNACK 0x87.
func TestV5Authorizer(t *testing.T) {
	_, addr := startServer(t, broker.Config{}, &broker.Port{Name: "acl", Authorizer: denyTopic{topic: "secret", client: "banned"}})
	c := dialRaw(t, addr, packet.V5)
	if ack := c.connect(v5Connect("banned", true)); ack.Code != packet.NotAuthorized {
		t.Errorf("denied client: CONNACK %#x, want 0x87", byte(ack.Code))
	}

	sub, _ := v5Dial(t, addr, v5Connect("sub", true))
	sub.v5Sub(1, packet.Subscription{Filter: []byte("#"), QoS: 1}, 1)
	sub.v5Sub(2, packet.Subscription{Filter: []byte("secret"), QoS: 1}, packet.NotAuthorized)
	p, _ := v5Dial(t, addr, v5Connect("p", true))
	p.v5Pub("secret", 1, 1, "x")
	if a := p.expectAck(packet.PUBACK); a.Code != packet.NotAuthorized {
		t.Errorf("denied publish: PUBACK %#x, want 0x87", byte(a.Code))
	}
	sub.expectSilence(100 * time.Millisecond)
}

// TestV5InprocSubscribe: Server.Subscribe sees a client's publish with its
// properties and sender.
func TestV5InprocSubscribe(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
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
	c, _ := v5Paho(t, addr, &paho.Connect{ClientID: "dev1", CleanStart: true, KeepAlive: 30})
	c.pub(&paho.Publish{Topic: "svc/get", QoS: 1, Payload: []byte("k"), Properties: &paho.PublishProperties{
		ResponseTopic: "dev1/resp", User: paho.UserProperties{{Key: "op", Value: "get"}},
	}})
	select {
	case g := <-ch:
		want := got{topic: "svc/get", payload: "k", sender: "dev1", respTopic: "dev1/resp", user: []string{"op=get"}}
		if g.topic != want.topic || g.payload != want.payload || g.sender != want.sender || g.respTopic != want.respTopic ||
			len(g.user) != 1 || g.user[0] != want.user[0] {
			t.Errorf("got %+v, want %+v", g, want)
		}
	case <-time.After(waitTime):
		t.Fatal("in-process subscriber got nothing")
	}
}

// TestV5InprocPublishAndSendTo: Server.Publish reaches a subscribed 5.0
// client; Server.SendTo reaches a client that never subscribed.
func TestV5InprocPublishAndSendTo(t *testing.T) {
	s, addr := startServer(t, broker.Config{}, nil)
	sub, _ := v5Paho(t, addr, &paho.Connect{ClientID: "sub", CleanStart: true, KeepAlive: 30})
	sub.sub(paho.SubscribeOptions{Topic: "news", QoS: 1}, 0)
	lone, _ := v5Paho(t, addr, &paho.Connect{ClientID: "lone", CleanStart: true, KeepAlive: 30})

	p := &packet.Publish{Topic: []byte("news"), QoS: 1, Payload: []byte("hello")}
	p.Props.Set(packet.PropContentType)
	p.Props.ContentType = []byte("text/plain")
	if err := s.Publish(p); err != nil {
		t.Fatal(err)
	}
	if m := sub.expectMessage(); m.Topic != "news" || string(m.Payload) != "hello" || m.Properties.ContentType != "text/plain" {
		t.Errorf("got %q %q content type %q", m.Topic, m.Payload, m.Properties.ContentType)
	}

	if !s.SendTo("lone", &packet.Publish{Topic: []byte("notify/lone"), QoS: 1, Payload: []byte("direct")}) {
		t.Fatal("SendTo: no session for lone")
	}
	if m := lone.expectMessage(); m.Topic != "notify/lone" || string(m.Payload) != "direct" {
		t.Errorf("got %q %q", m.Topic, m.Payload)
	}
	sub.expectNoMessage(50 * time.Millisecond)
	if s.SendTo("missing", &packet.Publish{Topic: []byte("x")}) {
		t.Error("SendTo an unknown client reported true")
	}
}
