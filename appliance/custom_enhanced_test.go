package appliance_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// tokenServer is a custom authentication server (API 0.5.0) for the 5.0
// enhanced method "token": at CONNECT the data "t1" is good for 800ms,
// "t0" forever, "deny" is refused (135); at re-authentication (type
// "auth") "t2" is good for 2.5s and "stolen" is refused (134).
func tokenServer(t *testing.T) (srv interface{ Close() }, url, rootPEM string, calls chan map[string]string) {
	t.Helper()
	calls = make(chan map[string]string, 16)
	s, root := startAuthServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		json.NewDecoder(r.Body).Decode(&body)
		calls <- body
		data, _ := base64.StdEncoding.DecodeString(body["authenticationData"])
		w.Header().Set("Content-Type", "application/json")
		switch k := body["type"] + " " + body["authenticationMethod"] + " " + string(data); k {
		case "connect token t1":
			fmt.Fprintf(w, `{"expiry": %q, "attributes": {}}`, time.Now().Add(800*time.Millisecond).Format(time.RFC3339Nano))
		case "connect token t0":
			fmt.Fprint(w, `{"attributes": {}}`)
		case "auth token t2":
			fmt.Fprintf(w, `{"expiry": %q, "attributes": {}}`, time.Now().Add(2500*time.Millisecond).Format(time.RFC3339Nano))
		case "connect token deny":
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"reason": 135, "message": "denied"}`)
		case "auth token stolen":
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"reason": 134, "message": "not yours"}`)
		default:
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	return s, s.URL + "/", string(root.CertPEM()), calls
}

// tokenClient is a paho.golang 5.0 client; lost gets the error that
// ended its connection.
type tokenClient struct {
	*paho.Client
	lost chan error
}

// oneStep is the paho Auther of a one-step method: the server never
// continues the exchange at CONNECT.
type oneStep struct{}

func (oneStep) Authenticate(*paho.Auth) *paho.Auth { return &paho.Auth{ReasonCode: 0x80} }
func (oneStep) Authenticated()                     {}

// tokenConnect connects with enhanced authentication method "token" and
// data. A refused CONNACK is returned with the error.
func tokenConnect(t *testing.T, addr net.Addr, id, data string) (*tokenClient, *paho.Connack, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tokenClient{lost: make(chan error, 1)}
	tc.Client = paho.NewClient(paho.ClientConfig{Conn: testenv.LockedConn(nc), PacketTimeout: wait, AuthHandler: oneStep{},
		OnClientError: func(err error) { tc.lost <- err }})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ack, err := tc.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{AuthMethod: "token", AuthData: []byte(data)}})
	if err != nil {
		nc.Close()
		return nil, ack, err
	}
	t.Cleanup(func() { tc.Disconnect(&paho.Disconnect{}) })
	return tc, ack, nil
}

// reauth sends AUTH 0x19 and returns the server's AUTH or DISCONNECT.
func (c *tokenClient) reauth(t *testing.T, method, data string) *paho.AuthResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	resp, err := c.Authenticate(ctx, &paho.Auth{ReasonCode: 0x19,
		Properties: &paho.AuthProperties{AuthMethod: method, AuthData: []byte(data)}})
	if err != nil {
		t.Fatalf("re-authenticate: %v", err)
	}
	return resp
}

// TestCustomEnhancedAuthentication: a 5.0 CONNECT's Authentication Method
// and Data go to the custom server, which admits or refuses it; a port
// without Custom refuses the method with 0x8C; AUTH 0x19 re-authenticates
// (AUTH 0x00 and the new expiry replaces the old), is refused (DISCONNECT
// 0x87), or, with another method, is a protocol error (DISCONNECT 0x82);
// with the server down it answers AUTH 0x18 and keeps the connection.
func TestCustomEnhancedAuthentication(t *testing.T) {
	srv, url, rootPEM, calls := tokenServer(t)
	dir := writeConfig(t, map[string]string{"custom.yaml": fmt.Sprintf(`apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerListener
metadata:
  name: local
spec:
  serviceType: ClusterIp
  ports:
  - port: 1883
    authenticationRef: custom
  - port: 1884
    authenticationRef: users
---
apiVersion: mqttbroker.iotoperations.azure.com/v1
kind: BrokerAuthentication
metadata:
  name: custom
spec:
  authenticationMethods:
  - method: Custom
    customSettings:
      endpoint: %s
      caCertConfigMap: auth-ca
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: auth-ca
data:
  ca.crt: %s
---
%s`, url, block(rootPEM, 4), usersAndPolicy("x"))})
	a := runConfig(t, dir, 1883, 1884)
	addr := served(t, a, "local", 1883)

	// Admitted: the server got the method and the data.
	t0 := time.Now()
	c, ack, err := tokenConnect(t, addr, "dev", "t1")
	if err != nil {
		t.Fatalf("connect with token t1: %v (CONNACK %+v)", err, ack)
	}
	if ack.Properties == nil || ack.Properties.AuthMethod != "token" {
		t.Errorf("CONNACK Authentication Method: %+v, want token", ack.Properties)
	}
	call := <-calls
	if call["type"] != "connect" || call["authenticationMethod"] != "token" || call["authenticationData"] != base64.StdEncoding.EncodeToString([]byte("t1")) {
		t.Errorf("request to the auth server: %v", call)
	}

	// Re-authenticated before the 800ms expiry: the connection lives
	// until the new one, 2.5s later, and then closes without DISCONNECT.
	if r := c.reauth(t, "token", "t2"); !r.Success || r.ReasonCode != 0 {
		t.Fatalf("re-authenticate: AUTH %#x success %v, want 0x00", r.ReasonCode, r.Success)
	}
	if call := <-calls; call["type"] != "auth" || call["authenticationMethod"] != "token" || call["authenticationData"] != base64.StdEncoding.EncodeToString([]byte("t2")) {
		t.Errorf("re-authentication request to the auth server: %v", call)
	}
	select {
	case <-c.lost:
		if d := time.Since(t0); d < 2*time.Second {
			t.Errorf("connection closed %v after CONNECT: the first credential's expiry (800ms) still applied", d)
		}
	case <-time.After(wait):
		t.Fatal("the connection outlived the re-authenticated credential's expiry")
	}

	// Refused at CONNECT with the server's code.
	if _, ack, err := tokenConnect(t, addr, "denied", "deny"); err == nil || ack == nil || ack.ReasonCode != 0x87 {
		t.Errorf("connect with token deny: CONNACK %+v err %v, want 0x87", ack, err)
	}
	<-calls

	// A port without the Custom method does not take the method.
	if _, ack, err := tokenConnect(t, served(t, a, "local", 1884), "other", "t0"); err == nil || ack == nil || ack.ReasonCode != 0x8C {
		t.Errorf("enhanced auth on a UsernamePassword port: CONNACK %+v err %v, want 0x8C", ack, err)
	}

	for _, tc := range []struct {
		name, method, data string
		want               byte
	}{
		{"refused", "token", "stolen", 0x87},    // the server's 0x86 is no DISCONNECT code
		{"another method", "other", "t2", 0x82}, // [MQTT-4.12.1-1] protocol error
	} {
		c, _, err := tokenConnect(t, addr, "dev-"+tc.method, "t0")
		if err != nil {
			t.Fatalf("%s: connect: %v", tc.name, err)
		}
		if r := c.reauth(t, tc.method, tc.data); r.Success || r.ReasonCode != tc.want {
			t.Errorf("%s: re-authenticate answered %#x success %v, want DISCONNECT %#x", tc.name, r.ReasonCode, r.Success, tc.want)
		}
		select {
		case <-c.lost:
		case <-time.After(wait):
			t.Errorf("%s: connection still open after the DISCONNECT", tc.name)
		}
	}

	// The server down: AUTH 0x18, and the client stays connected. paho
	// answers an AUTH 0x18 through its Auther instead of returning it, so
	// this step speaks MQTT directly.
	raw := rawTokenConnect(t, addr, "dev-down", "t0")
	srv.Close()
	auth := &packet.Auth{Code: packet.ReAuthenticate}
	auth.Props.Set(packet.PropAuthMethod)
	auth.Props.AuthMethod = []byte("token")
	auth.Props.Set(packet.PropAuthData)
	auth.Props.AuthData = []byte("t2")
	raw.write(auth.Append(nil, packet.V5))
	h, body := raw.read()
	var got packet.Auth
	if h.Type != packet.AUTH || got.Decode(packet.V5, h.Flags, body) != nil || got.Code != packet.ContinueAuthentication {
		t.Fatalf("re-authenticate with the server down: packet type %d code %#x, want AUTH 0x18", h.Type, byte(got.Code))
	}
	raw.write(packet.AppendPingreq(nil))
	if h, _ := raw.read(); h.Type != packet.PINGRESP {
		t.Errorf("after AUTH 0x18: packet type %d, want PINGRESP (still connected)", h.Type)
	}
}

// rawConn speaks MQTT 5.0 packet by packet.
type rawConn struct {
	t   *testing.T
	nc  net.Conn
	buf []byte
}

func (r *rawConn) write(b []byte) {
	r.t.Helper()
	r.nc.SetWriteDeadline(time.Now().Add(wait))
	if _, err := r.nc.Write(b); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// read returns the next packet, failing the test after wait.
func (r *rawConn) read() (packet.FixedHeader, []byte) {
	r.t.Helper()
	r.nc.SetReadDeadline(time.Now().Add(wait))
	for {
		h, n, err := packet.ParseFixedHeader(r.buf)
		if err == nil && len(r.buf) >= n+h.Remaining {
			body := r.buf[n : n+h.Remaining]
			r.buf = r.buf[n+h.Remaining:]
			return h, body
		}
		if err != nil && err != packet.ErrIncomplete {
			r.t.Fatalf("read: %v", err)
		}
		var tmp [4096]byte
		k, err := r.nc.Read(tmp[:])
		if err != nil {
			r.t.Fatalf("read: %v", err)
		}
		r.buf = append(r.buf, tmp[:k]...)
	}
}

// rawTokenConnect connects with method "token" and data, requiring
// CONNACK success.
func rawTokenConnect(t *testing.T, addr net.Addr, id, data string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr.String(), wait)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	r := &rawConn{t: t, nc: nc}
	cp := &packet.Connect{Version: packet.V5, ProtocolName: []byte("MQTT"), ClientID: []byte(id), CleanStart: true}
	cp.Props.Set(packet.PropAuthMethod)
	cp.Props.AuthMethod = []byte("token")
	cp.Props.Set(packet.PropAuthData)
	cp.Props.AuthData = []byte(data)
	r.write(cp.Append(nil))
	h, body := r.read()
	var ack packet.Connack
	if h.Type != packet.CONNACK || ack.Decode(packet.V5, h.Flags, body) != nil || ack.Code != packet.Success {
		t.Fatalf("connect %s: packet type %d CONNACK %#x", id, h.Type, byte(ack.Code))
	}
	return r
}
