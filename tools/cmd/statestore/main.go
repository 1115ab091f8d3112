// Command statestore reads and writes the state store of an edgebroker
// appliance (the Azure IoT Operations state store protocol: RESP requests
// over MQTT v5 request/response), using the AIO Go SDK.
//
// Usage:
//
//	statestore [flags] get KEY
//	statestore [flags] set KEY VALUE [-nx | -nex] [-px DURATION] [-ft HLC] [-persist]
//	statestore [flags] del KEY [-ft HLC]
//	statestore [flags] vdel KEY VALUE [-ft HLC]
//	statestore [flags] watch [-count N] KEY...
//
// Connection flags (like mosquitto_pub's), before the command or among its
// arguments ("set lock me -nx -px 10s -v"):
//
//	-h, -host HOST     broker host (default 127.0.0.1)
//	-p, -port PORT     broker port (default 1883, or 8883 with TLS)
//	-u, -username USER
//	-P, -password PASS
//	-tls               use TLS, verifying the broker against the system roots
//	-cafile FILE       PEM CA certificates to verify the broker with (implies -tls)
//	-cert, -key FILE   PEM client certificate and key (imply -tls)
//	-insecure          do not verify the broker's certificate (implies -tls)
//	-servername NAME   TLS server name (default: the host)
//	-id ID             MQTT client identifier (default: statestore-<random hex>)
//	-timeout DURATION  connection and per-request timeout (default 10s)
//	-binary ENC        hex or base64: KEY and VALUE arguments are given in
//	                   ENC, and keys and values are printed in ENC
//	-v                 also print the version (HLC) the store returned, on stderr
//	-debug             log the SDK's MQTT traffic to stderr
//
// Output: get prints the value (and a newline); set prints OK, or skipped
// when -nx/-nex kept the current value; del prints the number of keys
// deleted (0 or 1); vdel prints 1, 0 (no such key) or -1 (the value did
// not match). watch registers KEYNOTIFY for every KEY and prints one line
// per notification, "SET key value" or "DELETE key", until interrupted or
// until -count notifications arrived. -px takes a Go duration ("1500ms",
// "10s") or a number of milliseconds. -ft passes a fencing token, the
// version returned by the SET that took a lock (see -v).
//
// Exit status: 0 on success; 1 when get found no key ("not found" on
// stderr) or set was skipped; 2 when the state store answered with an
// error (-ERR ...); 3 on connection, TLS, authentication, timeout and
// other failures; 64 on usage errors.
//
// Examples:
//
//	statestore set greeting hello
//	statestore -v set lock me -nx -px 10s       # prints OK, version on stderr
//	statestore set config "$(cat cfg.json)" -ft 001767225600000:00001:7c2e...
//	statestore -binary hex get 00ff
//	statestore -cafile ca.pem -cert me.pem -key me.key -h appliance.local watch a b
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
