package appliance

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Limits of the appliance's HTTP servers on the LAN (the status endpoint,
// ACME http-01): a request's headers, how long they may take, and how
// many connections are served at once (more wait in the kernel's accept
// queue, costing the process nothing).
const (
	lanMaxHeaderBytes = 8 << 10
	lanMaxConns       = 64
)

// lanHTTP returns a server for h with the LAN limits, and ln limited to
// lanMaxConns connections at once. It speaks HTTP/1 only, over TLS too:
// HTTP/2 would serve many requests at once on each connection, past
// lanMaxConns.
func lanHTTP(h http.Handler, ln net.Listener) (*http.Server, net.Listener) {
	var http1 http.Protocols
	http1.SetHTTP1(true)
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    lanMaxHeaderBytes,
		Protocols:         &http1,
	}, netutil.LimitListener(ln, lanMaxConns)
}
