package broker

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
)

// pendingConnect is a CONNECT's outcome, copied out of the read buffer so
// that it can wait for a 5.0 enhanced authentication exchange.
type pendingConnect struct {
	clean        bool
	expiry       uint32
	expiryCapped bool
	keepAlive    uint16
	kaCapped     bool
	assigned     bool
	recvMax      uint16
	maxPacket    uint32
	aliasMax     uint16
	problem      bool
	will         *will
	method       string
	authData     []byte // the Authenticator's last Authentication Data
	principal    string // the Authenticator's last AuthResult.Principal
	credExpiry   time.Time
}

// handleConnect processes the first packet of a connection.
func (c *conn) handleConnect(flags byte, body []byte) error {
	var cp packet.Connect
	if err := cp.Decode(flags, body); err != nil {
		switch code := packet.CodeOf(err); {
		case code == packet.UnsupportedProtocolVersion:
			// [MQTT-3.1.2-2]: answer in 3.1.1 form with return code 1.
			c.reply([]byte{byte(packet.CONNACK) << 4, 2, 0, 1}, replyNow)
			return errClosed
		case cp.Version == packet.V5:
			c.setVersion(packet.V5)
			c.writeConnack(false, code, nil) // [MQTT-4.13.1-1]
			return errClosed
		}
		return err
	}
	c.setVersion(cp.Version)
	c.bridge = cp.Bridge
	v := cp.Version
	lim := &c.srv.lim
	p := c.srv.pendings.Get().(*pendingConnect) // back in authDone once attached
	*p = pendingConnect{clean: cp.CleanStart, keepAlive: cp.KeepAlive, recvMax: 65535, problem: true}

	id := string(cp.ClientID)
	if id == "" {
		if v != packet.V5 && (v == packet.V31 || !cp.CleanStart) {
			return c.refuse(packet.ClientIdentifierNotValid) // [MQTT-3.1.3-8]
		}
		id, p.assigned = newClientID(), true
	}
	if len(id) > lim.MaxClientIDLength {
		return c.refuse(packet.ClientIdentifierNotValid)
	}
	if r := c.srv.reservedID; r != "" && !c.port.ReservedClientIDs && strings.HasPrefix(id, r) {
		c.srv.sec.Event(seclog.ConnectDenied, "reserved client identifier refused", "client", id,
			"port", c.port.Name, "remote", remoteString(c.nc))
		return c.refuse(packet.ClientIdentifierNotValid)
	}

	if v == packet.V5 {
		pr := &cp.Props
		p.expiry = pr.SessionExpiry
		if pr.Has(packet.PropReceiveMaximum) {
			p.recvMax = pr.ReceiveMaximum
		}
		if pr.Has(packet.PropMaximumPacketSize) {
			p.maxPacket = pr.MaximumPacketSize
		}
		p.aliasMax = pr.TopicAliasMaximum
		if pr.Has(packet.PropRequestProblemInfo) {
			p.problem = pr.RequestProblemInfo == 1
		}
		if p.expiry > lim.MaxSessionExpiry {
			p.expiry, p.expiryCapped = lim.MaxSessionExpiry, true
		}
		if lim.MaxKeepAlive < 65535 && (p.keepAlive == 0 || p.keepAlive > lim.MaxKeepAlive) {
			p.keepAlive, p.kaCapped = lim.MaxKeepAlive, true
		}
		p.method = string(pr.AuthMethod)
	} else if !cp.CleanStart {
		p.expiry = lim.MaxSessionExpiry
	}

	if cp.WillFlag {
		if err := c.srv.tlim.ValidName(cp.WillTopic); err != nil {
			return c.refuse(packet.TopicNameInvalid)
		}
		wp := &cp.WillProps
		if wp.Has(packet.PropPayloadFormat) && wp.PayloadFormat == 1 && !utf8.Valid(cp.WillPayload) {
			return c.refuse(packet.PayloadFormatInvalid) // [MQTT-3.1.3-11]
		}
		pub := packet.Publish{Topic: cp.WillTopic, Payload: cp.WillPayload, QoS: cp.WillQoS, Retain: cp.WillRetain, Props: *wp}
		p.will = &will{msg: c.srv.newMessage(&pub, c.srv.now(), nil), delay: wp.WillDelay}
	}

	c.client = &Client{
		ID:       id,
		Username: string(cp.Username),
		Version:  v,
		Port:     c.port.Name,
		Remote:   c.nc.RemoteAddr(),
		TLS:      tlsState(c.nc),
	}
	if c.pending = p; c.authenticate(&packet.Auth{}, &cp) {
		return nil // waiting for AUTH
	}
	return c.authDone()
}

// authenticate runs one authentication step. It returns true when a 5.0
// enhanced authentication exchange continues; otherwise the verdict is in
// c.authCode (checked by authDone).
func (c *conn) authenticate(a *packet.Auth, cp *packet.Connect) bool {
	p := c.pending
	step := c.authStep
	c.authStep++
	au := c.port.Authenticator
	if au == nil {
		c.authCode = packet.Success
		if p.method != "" {
			c.authCode = packet.BadAuthenticationMethod // no enhanced methods without an authenticator
		}
		return false
	}
	req := AuthRequest{Method: p.method, Step: int(step)} // escapes (an interface call): made only here
	if cp != nil {
		req.Username, req.Password, req.HasPassword = cp.Username, cp.Password, cp.PasswordFlag
		req.Data = cp.Props.AuthData
	} else {
		req.Data = a.Props.AuthData
	}
	res := au.Authenticate(c.client, &req)
	c.authCode, p.credExpiry, p.authData, p.principal = res.Code, res.Expiry, res.AuthData, res.Principal
	if res.Code == packet.ContinueAuthentication && p.method != "" && c.version == packet.V5 {
		out := packet.Auth{Code: packet.ContinueAuthentication}
		out.Props.Set(packet.PropAuthMethod)
		out.Props.AuthMethod = []byte(p.method)
		if res.AuthData != nil {
			out.Props.Set(packet.PropAuthData)
			out.Props.AuthData = res.AuthData
		}
		var b [64]byte
		c.reply(out.Append(b[:0], c.version), replyBatched)
		return true
	}
	if res.Code == packet.ContinueAuthentication {
		c.authCode = packet.BadAuthenticationMethod
	}
	return false
}

// authDone finishes a CONNECT whose authentication has a verdict.
func (c *conn) authDone() error {
	p := c.pending
	if c.authCode != packet.Success {
		c.srv.sec.Event(seclog.AuthFailed, "authentication failed", "client", c.client.ID,
			"username", c.client.Username, "port", c.port.Name, "remote", remoteString(c.nc),
			"reason", c.authCode.Error())
		return c.refuse(c.authCode)
	}
	c.client.Principal = c.srv.principalOf(c.port, p.principal)
	if az := c.port.Authorizer; az != nil {
		if c.perms = az.Authorize(c.client); c.perms == nil {
			c.srv.sec.Event(seclog.ConnectDenied, "connection not authorized", "principal", c.client.Principal,
				"client", c.client.ID, "port", c.port.Name, "remote", remoteString(c.nc))
			return c.refuse(packet.NotAuthorized)
		}
	}
	if c.srv.Stats.Connections.Load() >= int64(c.srv.lim.MaxConnections) {
		return c.refuse(packet.QuotaExceeded)
	}
	if p.expiry > 0 && !c.srv.sessionRoom(c.client.ID) {
		return c.refuseSession()
	}
	if w := p.will; w != nil {
		if c.perms != nil && !c.perms.AllowPublish(w.msg.Topic) {
			c.srv.sec.Event(seclog.PublishDenied, "will not authorized: dropped", "principal", c.client.Principal,
				"client", c.client.ID, "topic", string(w.msg.Topic), "remote", remoteString(c.nc))
			w.msg.release() // a will the client may not publish is dropped
			p.will = nil
		}
	}
	c.pending = nil
	if c.version == packet.V5 || !p.credExpiry.IsZero() {
		c.ext = &connExt{authMethod: p.method}
	}
	c.keepAlive = p.keepAlive
	c.maxOut, c.aliasMax, c.problem = p.maxPacket, p.aliasMax, p.problem
	c.window = min(p.recvMax, c.srv.lim.MaxInflight)
	c.srv.Stats.Connections.Add(1)
	c.connectDone()
	owner, ok := c.srv.attach(c, p)
	if !ok {
		// The owner's clean session may be ending: its client sent
		// DISCONNECT or closed the socket just before this CONNECT,
		// and the broker, reading connections in parallel, has not
		// read that yet. Give it a moment before refusing.
		c.srv.awaitEnding(c.client.ID, endingGrace)
		owner, ok = c.srv.attach(c, p)
	}
	if !ok {
		c.srv.Stats.Connections.Add(-1)
		c.pending = p
		return c.refuseTakeover(owner)
	}
	c.setCredExpiry(p.credExpiry)
	*p = pendingConnect{} // the session has the will; nothing else refers to p
	c.srv.pendings.Put(p)
	return nil
}

// principalOf is who a client that passed authentication on port is:
// what its Authenticator verified or, when it named nobody (an anonymous
// port), the port itself. A port's anonymous principal is made once:
// its clients and their sessions share it.
func (s *Server) principalOf(port *Port, verified string) string {
	if port.Authenticator != nil && verified != "" {
		return verified
	}
	if p, ok := s.anonymous.Load(port); ok {
		return p.(string)
	}
	p, _ := s.anonymous.LoadOrStore(port, "anonymous:"+port.Name)
	return p.(string)
}

// endingGrace is how long a CONNECT for another principal's connected
// clean session waits for that session to end before it is refused (a
// client that disconnects on one port and connects at once on another,
// which is another principal, would otherwise race its own DISCONNECT).
// Only the waiting CONNECT waits.
const endingGrace = 200 * time.Millisecond

// refuseTakeover refuses a CONNECT for a client identifier whose session
// belongs to another principal (3.1.1: CONNACK 5, 5.0: 0x87). The owner's
// connection and session are not touched.
func (c *conn) refuseTakeover(owner string) error {
	c.srv.sec.Event(seclog.TakeoverRefused, "session belongs to another principal: connection refused",
		"principal", c.client.Principal, "client", c.client.ID, "owner", owner, "port", c.port.Name,
		"remote", remoteString(c.nc))
	return c.refuse(packet.NotAuthorized)
}

// remoteString is the connection's remote address for logs.
func remoteString(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return ""
}

// handleAuth continues 5.0 enhanced authentication, or re-authenticates a
// connected client.
func (c *conn) handleAuth(a *packet.Auth) error {
	if c.pending == nil {
		return c.reauthenticate(a)
	}
	if a.Code != packet.ContinueAuthentication || string(a.Props.AuthMethod) != c.pending.method {
		return c.refuse(packet.ProtocolError) // [MQTT-4.12.0-4]
	}
	if c.authenticate(a, nil) {
		return nil
	}
	return c.authDone()
}

// setCredExpiry (re)arms the credential expiry: as AIO does, an expired
// credential (a client certificate's notAfter, a custom server's expiry)
// closes the connection without a DISCONNECT. A zero t never expires.
func (c *conn) setCredExpiry(t time.Time) {
	x := c.ext // made by authDone when the CONNECT's credential expires, and for every 5.0 client
	if x == nil {
		return
	}
	if x.credTimer != nil {
		x.credTimer.Stop()
		x.credTimer = nil
	}
	if !t.IsZero() {
		x.credTimer = time.AfterFunc(t.Sub(c.srv.now()), func() { c.closeWith(0, "") })
	}
}

// reauthenticate handles a connected 5.0 client's AUTH [MQTT-4.12.1]: 0x19
// starts a re-authentication (0x18 continues one) with the CONNECT's
// method; the Authenticator sees Step > 0 and a copy of the Client, which
// cannot change after the CONNACK. Success answers AUTH 0x00 and replaces
// the credential expiry; Continue answers AUTH 0x18 (another step, or,
// as AIO does, a transient failure the client may retry) and the
// connection stays; any other code ends it with DISCONNECT 0x87 (or 0x80,
// 0x83, 0x89 as given). Another method than the CONNECT's is a protocol
// error (DISCONNECT 0x82).
func (c *conn) reauthenticate(a *packet.Auth) error {
	if c.ext == nil || c.ext.authMethod == "" || (a.Code != packet.ReAuthenticate && a.Code != packet.ContinueAuthentication) {
		return packet.ProtocolError // [MQTT-4.12.1-1]: only after enhanced authentication
	}
	au := c.port.Authenticator
	if string(a.Props.AuthMethod) != c.ext.authMethod || au == nil {
		// [MQTT-4.12.1-1]. 0x8C Bad authentication method is not a
		// DISCONNECT reason code.
		return packet.ProtocolError
	}
	req := AuthRequest{Method: c.ext.authMethod, Data: a.Props.AuthData, Step: int(c.authStep)}
	c.authStep++
	cl := *c.client
	res := au.Authenticate(&cl, &req)
	switch res.Code {
	case packet.Success:
		c.setCredExpiry(res.Expiry)
		return c.writeAuth(res)
	case packet.ContinueAuthentication:
		return c.writeAuth(res)
	}
	c.srv.sec.Event(seclog.AuthFailed, "re-authentication failed", "principal", c.client.Principal,
		"client", c.client.ID, "port", c.port.Name, "remote", remoteString(c.nc), "reason", res.Code.Error())
	switch res.Code {
	case packet.UnspecifiedError, packet.ImplementationSpecificError, packet.ServerBusy:
		return res.Code
	default:
		// CONNACK-only codes (0x86 Bad user name or password, ...) are
		// not DISCONNECT reason codes.
		return packet.NotAuthorized
	}
}

// writeAuth answers a re-authentication step with AUTH res.Code.
func (c *conn) writeAuth(res AuthResult) error {
	out := packet.Auth{Code: res.Code}
	out.Props.Set(packet.PropAuthMethod)
	out.Props.AuthMethod = []byte(c.ext.authMethod)
	if res.AuthData != nil {
		out.Props.Set(packet.PropAuthData)
		out.Props.AuthData = res.AuthData
	}
	var b [64]byte
	c.reply(out.Append(b[:0], c.version), replyBatched)
	return nil
}

// refuse sends a failing CONNACK and ends the connection.
func (c *conn) refuse(code packet.Code) error {
	if c.pending != nil && c.pending.will != nil {
		c.pending.will.msg.release()
		c.pending.will = nil
	}
	c.writeConnack(false, code, nil)
	return errClosed
}

// writeConnack appends a CONNACK. A 5.0 success carries the server's
// limits and whatever it changed of the client's request.
func (c *conn) writeConnack(present bool, code packet.Code, p *pendingConnect) {
	ack := packet.Connack{SessionPresent: present, Code: code}
	if c.version != packet.V5 {
		ack.Code = packet.Code(packet.ConnackV3(code))
	} else if p != nil {
		lim := &c.srv.lim
		pr := &ack.Props
		pr.Set(packet.PropReceiveMaximum)
		pr.ReceiveMaximum = lim.MaxInflight
		pr.Set(packet.PropMaximumPacketSize)
		pr.MaximumPacketSize = lim.MaxPacketSize
		pr.Set(packet.PropTopicAliasMaximum)
		pr.TopicAliasMaximum = lim.MaxTopicAliases
		if p.assigned {
			pr.Set(packet.PropAssignedClientID)
			pr.AssignedClientID = []byte(c.client.ID)
		}
		if p.kaCapped {
			pr.Set(packet.PropServerKeepAlive)
			pr.ServerKeepAlive = p.keepAlive
		}
		if p.expiryCapped {
			pr.Set(packet.PropSessionExpiry)
			pr.SessionExpiry = p.expiry
		}
		if p.method != "" {
			pr.Set(packet.PropAuthMethod)
			pr.AuthMethod = []byte(p.method)
			if p.authData != nil {
				pr.Set(packet.PropAuthData)
				pr.AuthData = p.authData
			}
		}
	}
	var b [64]byte
	c.reply(ack.Append(b[:0], c.version), replyBatched)
}

// setVersion sets the protocol version, which closeWith reads under
// out.mu.
func (c *conn) setVersion(v byte) {
	c.out.mu.Lock()
	c.version = v
	c.out.mu.Unlock()
}

// newClientID returns a server-assigned client identifier [MQTT-3.1.3-6].
func newClientID() string {
	var b [12]byte
	rand.Read(b[:])
	return "auto-" + hex.EncodeToString(b[:])
}
