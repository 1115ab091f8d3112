package bridge

import "testing"

// TestWSURL: a WebSocket upstream's URL takes the host's path, or
// DefaultWebSocketPath, and wss with TLS.
func TestWSURL(t *testing.T) {
	for _, tc := range []struct {
		host string
		tls  bool
		want string
	}{
		{"127.0.0.1:8080", false, "ws://127.0.0.1:8080/mqtt"},
		{"mqtt.example.net:443", true, "wss://mqtt.example.net:443/mqtt"},
		{"mqtt.example.net:443/", true, "wss://mqtt.example.net:443/"},
		{"[fd00::1]:8443/ws/mqtt", true, "wss://[fd00::1]:8443/ws/mqtt"},
	} {
		if got := wsURL(tc.host, tc.tls); got != tc.want {
			t.Errorf("wsURL(%q, %v): got %q, want %q", tc.host, tc.tls, got, tc.want)
		}
	}
}
