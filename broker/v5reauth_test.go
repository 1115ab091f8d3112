package broker_test

import (
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/brokertest"
	"edgebroker/broker/packet"
)

// tokenAuth admits anyone without enhanced authentication, and the
// enhanced method "token": the CONNECT's data "t1"
// for 400ms; on re-authentication (Step > 0) "t2" for 1.5s, "down" is a
// transient failure (0x18), anything else 0x87. At re-authentication it
// renames the Client it is given, which must not reach the connected
// client (fixed since the CONNACK).
type tokenAuth struct{}

func (tokenAuth) Authenticate(c *broker.Client, r *broker.AuthRequest) broker.AuthResult {
	switch r.Method {
	case "":
		return broker.AuthResult{Code: packet.Success} // no enhanced authentication
	case "token":
	default:
		return broker.AuthResult{Code: packet.BadAuthenticationMethod}
	}
	if r.Step > 0 {
		c.Username = "renamed"
	}
	switch {
	case r.Step == 0 && string(r.Data) == "t1":
		return broker.AuthResult{Code: packet.Success, Expiry: time.Now().Add(400 * time.Millisecond)}
	case r.Step > 0 && string(r.Data) == "t2":
		return broker.AuthResult{Code: packet.Success, Expiry: time.Now().Add(1500 * time.Millisecond), AuthData: []byte("ok")}
	case r.Step > 0 && string(r.Data) == "down":
		return broker.AuthResult{Code: packet.ContinueAuthentication}
	}
	return broker.AuthResult{Code: packet.NotAuthorized}
}

// reauth is an AUTH packet with the given code, method and data.
func reauth(code packet.Code, method, data string) *packet.Auth {
	a := &packet.Auth{Code: code}
	a.Props.Set(packet.PropAuthMethod)
	a.Props.AuthMethod = []byte(method)
	a.Props.Set(packet.PropAuthData)
	a.Props.AuthData = []byte(data)
	return a
}

// expectAuth reads the server's AUTH.
func expectAuth(r *brokertest.Raw) *packet.Auth {
	r.T.Helper()
	h, body := r.Read()
	var a packet.Auth
	if h.Type != packet.AUTH {
		r.T.Fatalf("got packet type %d, want AUTH", h.Type)
	}
	if err := a.Decode(packet.V5, h.Flags, body); err != nil {
		r.T.Fatalf("AUTH: %v", err)
	}
	return &a
}

// tokenClient connects with method "token" and data "t1".
func tokenClient(t *testing.T, addr string) *brokertest.Raw {
	t.Helper()
	c := brokertest.Dial(t, addr, packet.V5)
	cp := connectAuth("c", "token")
	cp.Props.Set(packet.PropAuthData)
	cp.Props.AuthData = []byte("t1")
	if ack := c.Connect(cp); ack.Code != packet.Success {
		t.Fatalf("CONNACK %#x", byte(ack.Code))
	}
	return c
}

// TestV5Reauthenticate: AUTH 0x19 with the CONNECT's method and new data
// is answered AUTH 0x00 and replaces the credential expiry: the
// connection outlives the old expiry and closes, without DISCONNECT, at
// the new one.
func TestV5Reauthenticate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		gone := make(chan string, 1)
		_, addr := brokertest.StartMem(t, broker.Config{OnDisconnect: func(c *broker.Client) { gone <- c.Username }},
			&broker.Port{Name: "auth", Authenticator: tokenAuth{}})
		c := tokenClient(t, addr)
		t0 := time.Now()
		c.Send(reauth(packet.ReAuthenticate, "token", "t2"))
		a := expectAuth(c)
		if a.Code != packet.Success || string(a.Props.AuthMethod) != "token" || string(a.Props.AuthData) != "ok" {
			t.Fatalf("AUTH %#x method %q data %q, want 0x00 token ok", byte(a.Code), a.Props.AuthMethod, a.Props.AuthData)
		}
		if got := c.ExpectClosed(); got != -1 {
			t.Errorf("DISCONNECT %#x before the close, want none", got)
		}
		if d, want := time.Since(t0), 1500*time.Millisecond; d != want {
			t.Errorf("closed %v after re-authenticating, want %v: the new expiry, not the old one (400ms)", d, want)
		}
		select {
		case u := <-gone:
			if u != "" {
				t.Errorf("the re-authentication changed the connected client's username to %q", u)
			}
		case <-time.After(brokertest.WaitTime):
			t.Error("OnDisconnect not called")
		}
	})
}

// TestV5ReauthenticateFailures: a transient failure answers AUTH 0x18 and
// keeps the connection; a refusal and a different method end it with
// DISCONNECT; without enhanced authentication at CONNECT, AUTH is a
// protocol error.
func TestV5ReauthenticateFailures(t *testing.T) {
	_, addr := brokertest.Start(t, broker.Config{}, &broker.Port{Name: "auth", Authenticator: tokenAuth{}})

	c := tokenClient(t, addr)
	c.Send(reauth(packet.ReAuthenticate, "token", "down"))
	if a := expectAuth(c); a.Code != packet.ContinueAuthentication || string(a.Props.AuthMethod) != "token" {
		t.Errorf("transient failure: AUTH %#x method %q, want 0x18 token", byte(a.Code), a.Props.AuthMethod)
	}
	c.Write(packet.AppendPingreq(nil))
	if h, _ := c.Read(); h.Type != packet.PINGRESP {
		t.Errorf("after AUTH 0x18: packet type %d, want PINGRESP", h.Type)
	}

	for _, tc := range []struct {
		name         string
		method, data string
		want         packet.Code
	}{
		{"refused", "token", "stolen", packet.NotAuthorized},
		{"other method", "other", "t2", packet.ProtocolError}, // [MQTT-4.12.1-1]
	} {
		c := tokenClient(t, addr)
		c.Send(reauth(packet.ReAuthenticate, tc.method, tc.data))
		if got := c.ExpectClosed(); got != int(tc.want) {
			t.Errorf("%s: DISCONNECT %#x, want %#x", tc.name, got, byte(tc.want))
		}
	}

	anon, _ := brokertest.V5Dial(t, addr, brokertest.V5Connect("anon", true))
	anon.Send(reauth(packet.ReAuthenticate, "token", "t2"))
	if got := anon.ExpectClosed(); got != int(packet.ProtocolError) {
		t.Errorf("AUTH without enhanced authentication at CONNECT: DISCONNECT %#x, want 0x82", got)
	}
}
