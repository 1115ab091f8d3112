package wsnet_test

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/wsnet"
)

// rawClient is an MQTT client over a WebSocket on a plain socket, written
// frame by frame, so that tests choose how frames and TCP segments cut
// the packets.
type rawClient struct {
	nc    net.Conn
	br    *bufio.Reader
	buf   []byte   // binary payload received, not yet parsed into packets
	pongs []string // pong payloads received
}

// dialRaw upgrades a socket to addr (over TLS with tc) with subprotocol
// "mqtt"; first is sent in the same write as the upgrade request (frames
// the server may buffer with the request).
func dialRaw(addr string, tc *tls.Config, first []byte) (*rawClient, error) {
	d := &net.Dialer{Timeout: 10 * time.Second}
	var nc net.Conn
	var err error
	if tc != nil {
		nc, err = tls.DialWithDialer(d, "tcp", addr, tc)
	} else {
		nc, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET /mqtt HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"
	if _, err := nc.Write(append([]byte(req), first...)); err != nil {
		nc.Close()
		return nil, err
	}
	c := &rawClient{nc: nc, br: bufio.NewReaderSize(nc, 512)}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "mqtt" {
		nc.Close()
		return nil, fmt.Errorf("upgrade: %s, protocol %q", resp.Status, resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// connectFrame is a 3.1.1 CONNECT (and a SUBSCRIBE to filter at QoS 0
// unless filter is empty) in one binary frame.
func connectFrame(id string, keepAlive uint16, filter string) []byte {
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V311, CleanStart: true,
		KeepAlive: keepAlive, ClientID: []byte(id)}
	b := cp.Append(nil)
	if filter != "" {
		sp := packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: []byte(filter)}}}
		b = sp.Append(b, packet.V311)
	}
	return wsnet.ClientFrame(true, wsnet.OpBinary, b, false)
}

// connect dials (over TLS with tc), connects and subscribes, and waits
// for CONNACK (and SUBACK).
func connect(addr string, tc *tls.Config, id string, keepAlive uint16, filter string) (*rawClient, error) {
	c, err := dialRaw(addr, tc, connectFrame(id, keepAlive, filter))
	if err != nil {
		return nil, err
	}
	want := []packet.Type{packet.CONNACK}
	if filter != "" {
		want = append(want, packet.SUBACK)
	}
	for _, typ := range want {
		h, _, err := c.packet(10 * time.Second)
		if err == nil && h.Type != typ {
			err = fmt.Errorf("got packet type %d, want %d", h.Type, typ)
		}
		if err != nil {
			c.nc.Close()
			return nil, err
		}
	}
	return c, nil
}

// write sends frames.
func (c *rawClient) write(frames ...[]byte) error {
	for _, f := range frames {
		if _, err := c.nc.Write(f); err != nil {
			return err
		}
	}
	return nil
}

// packet returns the next MQTT packet the server sent, recording pongs;
// a close frame is an error.
func (c *rawClient) packet(d time.Duration) (packet.FixedHeader, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(d))
	for {
		h, n, err := packet.ParseFixedHeader(c.buf)
		if err == nil && len(c.buf) >= n+h.Remaining {
			body := c.buf[n : n+h.Remaining]
			c.buf = c.buf[n+h.Remaining:]
			return h, body, nil
		}
		if f, err := c.frame(); err != nil {
			return h, nil, err
		} else if f.op == wsnet.OpClose {
			return h, nil, fmt.Errorf("closed by the server: % x", f.payload)
		}
	}
}

type serverFrame struct {
	op      byte
	payload []byte
}

// frame reads the next frame, appending data to buf and recording pongs.
func (c *rawClient) frame() (serverFrame, error) {
	_, op, p, err := wsnet.ReadServerFrame(c.br)
	if err != nil {
		return serverFrame{}, err
	}
	switch op {
	case wsnet.OpBinary, wsnet.OpContinuation:
		c.buf = append(c.buf, p...)
	case wsnet.OpPong:
		c.pongs = append(c.pongs, string(p))
	}
	return serverFrame{op, p}, nil
}
