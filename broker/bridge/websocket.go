package bridge

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"

	"github.com/coder/websocket"
)

// DefaultWebSocketPath is the path of an upstream's WebSocket endpoint
// when its host names none: "/mqtt", as AIO's broker, Event Grid, EMQX,
// HiveMQ and AWS IoT use (mosquitto accepts any path).
const DefaultWebSocketPath = "/mqtt"

// wsSubprotocol is the WebSocket subprotocol MQTT requires [MQTT-6.0.0-3].
const wsSubprotocol = "mqtt"

// wsURL is the URL of a WebSocket upstream: host is host:port, or
// host:port/path; wss when tls.
func wsURL(host string, tls bool) string {
	path := DefaultWebSocketPath
	if i := strings.IndexByte(host, '/'); i >= 0 {
		host, path = host[:i], host[i:]
	}
	scheme := "ws"
	if tls {
		scheme = "wss"
	}
	return scheme + "://" + host + path
}

// wsDial returns a remote.Config.Dial that carries MQTT over WebSockets
// (binary messages, subprotocol "mqtt"), over TLS (wss) when tc is set.
// A connection lives until it is closed or ctx (the bridge's) ends; the
// ctx a dial gets bounds only the handshake.
func wsDial(ctx context.Context, tc *tls.Config) func(context.Context, string) (net.Conn, error) {
	tr := &http.Transport{
		TLSClientConfig: tc, // ServerName from the URL when unset
		// No proxy from the environment, and no pooled sockets: a
		// socket serves one upgrade, and one that failed is closed.
		Proxy:             nil,
		DisableKeepAlives: true,
	}
	hc := &http.Client{Transport: tr}
	return func(dctx context.Context, host string) (net.Conn, error) {
		c, _, err := websocket.Dial(dctx, wsURL(host, tc != nil), &websocket.DialOptions{
			HTTPClient: hc, Subprotocols: []string{wsSubprotocol}})
		if err != nil {
			return nil, err
		}
		// A server that answers with another subprotocol is refused by
		// Dial; one that answers with none is taken, as paho does.
		return websocket.NetConn(ctx, c, websocket.MessageBinary), nil
	}
}
