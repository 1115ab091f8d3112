package loadgen

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"edgebroker/broker/packet"

	"github.com/coder/websocket"
)

// client is one raw MQTT connection built on the project's codec. One
// goroutine reads (next); any goroutine may write under wmu.
type client struct {
	nc net.Conn
	v  byte

	wmu  sync.Mutex
	w    *bufio.Writer
	wbuf []byte // encode scratch, guarded by wmu

	rbuf []byte // read buffer: rbuf[rpos:] is unread
	rpos int

	recvMax int // the broker's Receive Maximum (5.0), 65535 otherwise
}

// dialer opens the connections of one run.
type dialer struct {
	addr string
	tls  *tls.Config // nil: plain TCP
	v    byte
	ka   uint16
	ws   string // the WebSocket URL path; "": MQTT straight on the stream
}

func newDialer(cfg *Config) (*dialer, error) {
	d := &dialer{addr: cfg.Addr, v: cfg.Version, ka: cfg.KeepAlive}
	if cfg.WebSocket {
		d.ws = cmp.Or(cfg.WebSocketPath, "/mqtt")
	}
	if !cfg.TLS && cfg.CAFile == "" && !cfg.Insecure && cfg.TLSVersion == 0 {
		return d, nil
	}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	// No ClientSessionCache: every connection makes a full handshake.
	d.tls = &tls.Config{ServerName: host, InsecureSkipVerify: cfg.Insecure,
		MinVersion: cfg.TLSVersion, MaxVersion: cfg.TLSVersion, CurvePreferences: cfg.Curves}
	if cfg.ServerName != "" {
		d.tls.ServerName = cfg.ServerName
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loadgen: %w", err)
		}
		d.tls.RootCAs = x509.NewCertPool()
		if !d.tls.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("loadgen: %s: no PEM certificates", cfg.CAFile)
		}
	}
	return d, nil
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind the
// source address now but choose the port at connect, per 4-tuple.
const ipBindAddressNoPort = 24

// persistentExpiry is the Session Expiry Interval (seconds) a 5.0 client
// asks for when its session is to persist.
const persistentExpiry = 3600

// dial connects, sends CONNECT and waits for the CONNACK. The session is
// clean unless persistent (3.1.1: clean session false; 5.0: a session
// expiry of persistentExpiry). local, when set, is the source address.
func (d *dialer) dial(ctx context.Context, id string, local net.IP, persistent bool) (*client, error) {
	nc, err := d.stream(ctx, local)
	if err != nil {
		return nil, err
	}
	c := &client{nc: nc, v: d.v, w: bufio.NewWriterSize(nc, 32<<10), rbuf: make([]byte, 0, 4<<10), recvMax: 65535}
	if err := c.connect(ctx, id, d.ka, persistent); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	return c, nil
}

// stream opens the byte stream MQTT runs on: TCP, TLS over TCP, or a
// WebSocket (subprotocol mqtt, binary messages) over either.
func (d *dialer) stream(ctx context.Context, local net.IP) (net.Conn, error) {
	nd := &net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		nd.LocalAddr = &net.TCPAddr{IP: local}
		nd.Control = func(_, _ string, rc syscall.RawConn) error {
			rc.Control(func(fd uintptr) {
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			})
			return nil
		}
	}
	if d.ws != "" {
		return d.websocket(ctx, nd)
	}
	nc, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	if d.tls != nil {
		tc := tls.Client(nc, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		nc = tc
	}
	return nc, nil
}

// websocket opens a WebSocket to d.addr at path d.ws, with TLS (wss) when
// d.tls is set.
func (d *dialer) websocket(ctx context.Context, nd *net.Dialer) (net.Conn, error) {
	scheme := "ws"
	if d.tls != nil {
		scheme = "wss"
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: nd.DialContext, TLSClientConfig: d.tls}}
	ws, _, err := websocket.Dial(ctx, scheme+"://"+d.addr+d.ws, &websocket.DialOptions{
		HTTPClient: hc, Subprotocols: []string{"mqtt"}, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	if ws.Subprotocol() != "mqtt" {
		ws.CloseNow()
		return nil, fmt.Errorf("loadgen: WebSocket subprotocol %q, want mqtt", ws.Subprotocol())
	}
	// The stream outlives ctx (a dial's timeout); closing it ends it.
	return websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary), nil
}

// connect performs the CONNECT/CONNACK exchange.
func (c *client) connect(ctx context.Context, id string, ka uint16, persistent bool) error {
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: c.v, CleanStart: true, KeepAlive: ka, ClientID: []byte(id)}
	if persistent {
		cp.CleanStart = false // the client ids are fresh: no session to resume
		if c.v == packet.V5 {
			cp.Props.SessionExpiry = persistentExpiry
			cp.Props.Set(packet.PropSessionExpiry)
		}
	}
	if err := c.send(cp.Append(nil)); err != nil {
		return err
	}
	h, body, err := c.next()
	if err != nil {
		return fmt.Errorf("CONNACK: %w", err)
	}
	if h.Type != packet.CONNACK {
		return fmt.Errorf("got packet type %d, want CONNACK", h.Type)
	}
	var ack packet.Connack
	if err := ack.Decode(c.v, h.Flags, body); err != nil {
		return fmt.Errorf("CONNACK: %w", err)
	}
	if ack.Code != packet.Success {
		return fmt.Errorf("connection refused: %w", ack.Code)
	}
	if ack.Props.Has(packet.PropReceiveMaximum) {
		c.recvMax = int(ack.Props.ReceiveMaximum)
	}
	return nil
}

// subscribe subscribes to one filter and waits for the SUBACK. It must be
// called before the reader loop starts.
func (c *client) subscribe(filter string, qos byte) error {
	s := packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte(filter), QoS: qos}}}
	if err := c.send(s.Append(nil, c.v)); err != nil {
		return err
	}
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.nc.SetReadDeadline(time.Time{})
	h, body, err := c.next()
	if err != nil {
		return fmt.Errorf("SUBACK: %w", err)
	}
	if h.Type != packet.SUBACK {
		return fmt.Errorf("got packet type %d, want SUBACK", h.Type)
	}
	var ack packet.Suback
	if err := ack.Decode(c.v, h.Flags, body); err != nil {
		return fmt.Errorf("SUBACK: %w", err)
	}
	if len(ack.Codes) != 1 || ack.Codes[0] >= 0x80 {
		return fmt.Errorf("subscribe %q refused: %v", filter, ack.Codes)
	}
	return nil
}

// send writes b and flushes.
func (c *client) send(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		return err
	}
	return c.w.Flush()
}

// publish buffers p; it reaches the socket when the buffer fills or at the
// next flush.
func (c *client) publish(p *packet.Publish) error {
	c.wmu.Lock()
	c.wbuf = p.Append(c.wbuf[:0], c.v)
	_, err := c.w.Write(c.wbuf)
	c.wmu.Unlock()
	return err
}

// ack buffers a PUBACK, PUBREC, PUBREL or PUBCOMP.
func (c *client) ack(t packet.Type, pid uint16) error {
	a := packet.Ack{Type: t, PacketID: pid}
	c.wmu.Lock()
	c.wbuf = a.Append(c.wbuf[:0], c.v)
	_, err := c.w.Write(c.wbuf)
	c.wmu.Unlock()
	return err
}

// flush writes what is buffered.
func (c *client) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.w.Buffered() == 0 {
		return nil
	}
	return c.w.Flush()
}

// ping sends a PINGREQ.
func (c *client) ping() error { return c.send(packet.AppendPingreq(nil)) }

// disconnect sends DISCONNECT and closes the connection.
func (c *client) disconnect() {
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	d := packet.Disconnect{}
	c.send(d.Append(nil, c.v))
	c.nc.Close()
}

// next returns the next packet. The body aliases the read buffer and is
// valid until the following call. Buffered writes (acks) are flushed
// before next blocks in a read.
func (c *client) next() (packet.FixedHeader, []byte, error) {
	for {
		h, n, err := packet.ParseFixedHeader(c.rbuf[c.rpos:])
		if err == nil {
			if end := c.rpos + n + h.Remaining; end <= len(c.rbuf) {
				body := c.rbuf[c.rpos+n : end]
				c.rpos = end
				return h, body, nil
			}
		} else if !errors.Is(err, packet.ErrIncomplete) {
			return h, nil, err
		}
		if err := c.fill(n + h.Remaining); err != nil {
			return h, nil, err
		}
	}
}

// fill compacts the read buffer, grows it to hold need bytes, flushes
// pending writes and reads once.
func (c *client) fill(need int) error {
	k := copy(c.rbuf[:cap(c.rbuf)], c.rbuf[c.rpos:])
	c.rbuf, c.rpos = c.rbuf[:k], 0
	if need > cap(c.rbuf) {
		c.rbuf = append(make([]byte, 0, need), c.rbuf...)
	}
	if err := c.flush(); err != nil {
		return err
	}
	if len(c.rbuf) == cap(c.rbuf) { // a partial header at the very end
		c.rbuf = append(c.rbuf, 0)[:len(c.rbuf)]
	}
	m, err := c.nc.Read(c.rbuf[len(c.rbuf):cap(c.rbuf)])
	c.rbuf = c.rbuf[:len(c.rbuf)+m]
	if m == 0 && err != nil {
		return err
	}
	return nil
}
