// Command mqttload generates MQTT load against a broker on this machine and
// reports throughput, loss and latency.
//
//	mqttload -mode fan-in -pubs 8 -qos 1 -duration 10s -count 1000000 -addr 127.0.0.1:1883
//	mqttload -mode fan-out -subs 100 -qos 0
//	mqttload -mode latency -rate 5000 -mqtt 5 -json lat.json
//	mqttload -mode conns -count 2000 -pid $(pidof edgebroker)
//	mqttload -mode fan-in -pubs 64 -qos 1 -inflight 1 -persistent
//	mqttload -mode connects -tls-version 1.3 -cafile ca.pem -addr 127.0.0.1:8883
//	mqttload -mode fan-in -ws -addr 127.0.0.1:8080
//
// Progress goes to stderr once a second, a one-line summary to stdout and
// the full result to -json. Only loopback targets are allowed unless
// -allow-remote is given. The exit status is 1 on errors and 3 when QoS 1
// or 2 messages were lost.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"edgebroker/tools/loadgen"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("mqttload: ")
	var cfg loadgen.Config
	var mode, version, jsonPath string
	var qos, keepAlive uint
	var quiet bool
	flag.StringVar(&mode, "mode", "fan-in", "fan-in, fan-out, latency, conns or connects (connect and disconnect again and again)")
	flag.StringVar(&cfg.Addr, "addr", "127.0.0.1:1883", "broker host:port")
	flag.StringVar(&cfg.SubAddr, "sub-addr", "", "subscribers' broker host:port (the upstream of a bridge from -addr); default -addr")
	flag.StringVar(&version, "mqtt", "3.1.1", "MQTT version: 3.1.1 or 5")
	flag.UintVar(&qos, "qos", 0, "QoS of publishes and subscriptions (0, 1, 2)")
	flag.IntVar(&cfg.Payload, "payload", 64, "payload bytes (at least 16: send time and sequence)")
	flag.IntVar(&cfg.Publishers, "pubs", 0, "publishers (default 8 for fan-in, else 1)")
	flag.IntVar(&cfg.Subscribers, "subs", 0, "subscribers (default 100 for fan-out, else 1)")
	flag.Float64Var(&cfg.Rate, "rate", 0, "messages per second over all publishers; 0: as fast as the windows allow (latency default 1000)")
	flag.Int64Var(&cfg.Count, "count", 100000, "messages to publish (conns: clients to connect)")
	flag.DurationVar(&cfg.Duration, "duration", 0, "stop publishing after this long (conns: time allowed to connect) (default 10s)")
	flag.DurationVar(&cfg.Drain, "drain", 0, "after publishing, wait this long without progress for the rest (default 1s)")
	flag.IntVar(&cfg.Inflight, "inflight", 32, "QoS 1/2 in-flight window per publisher")
	flag.IntVar(&cfg.Window, "window", 500, "end-to-end window: messages a subscriber may lag; -1: open loop")
	flag.UintVar(&keepAlive, "keepalive", 60, "keep-alive in seconds")
	flag.DurationVar(&cfg.Hold, "hold", 0, "conns: how long to keep the clients connected (default 1s)")
	flag.IntVar(&cfg.Sources, "sources", 16, "conns: spread over this many 127.0.0.x source addresses")
	flag.IntVar(&cfg.Dialers, "dialers", 32, "concurrent connection attempts")
	flag.StringVar(&cfg.TopicPrefix, "topic", "mqttload", "topic prefix")
	flag.BoolVar(&cfg.Persistent, "persistent", false, "subscribers keep their session (3.1.1 clean session false, 5.0 session expiry 1h)")
	flag.BoolVar(&cfg.TLS, "tls", false, "connect with TLS (implied by -cafile and -insecure)")
	flag.StringVar(&cfg.CAFile, "cafile", "", "PEM CA certificates to verify the broker with")
	flag.BoolVar(&cfg.Insecure, "insecure", false, "do not verify the broker's certificate")
	flag.Func("curves", "TLS key exchanges to offer, comma-separated (x25519, p256, x25519mlkem768); default: Go's", func(v string) error {
		for _, name := range strings.Split(v, ",") {
			id, ok := map[string]tls.CurveID{"x25519": tls.X25519, "p256": tls.CurveP256, "p384": tls.CurveP384,
				"x25519mlkem768": tls.X25519MLKEM768}[strings.TrimSpace(name)]
			if !ok {
				return fmt.Errorf("unknown key exchange %q", name)
			}
			cfg.Curves = append(cfg.Curves, id)
		}
		return nil
	})
	flag.Func("tls-version", "offer only this TLS version (1.2 or 1.3); implies -tls", func(v string) error {
		switch v {
		case "1.2":
			cfg.TLSVersion = tls.VersionTLS12
		case "1.3":
			cfg.TLSVersion = tls.VersionTLS13
		default:
			return fmt.Errorf("want 1.2 or 1.3, got %q", v)
		}
		return nil
	})
	flag.BoolVar(&cfg.WebSocket, "ws", false, "MQTT over a WebSocket (subprotocol mqtt; wss with TLS)")
	flag.StringVar(&cfg.WebSocketPath, "ws-path", "/mqtt", "the WebSocket's URL path")
	flag.StringVar(&cfg.ServerName, "servername", "", "TLS server name (default: the host of -addr)")
	flag.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a target that is not loopback")
	flag.IntVar(&cfg.BrokerPID, "pid", 0, "broker process to read CPU time and RSS of from /proc")
	flag.StringVar(&jsonPath, "json", "", "write the result as JSON to this file (- for stdout)")
	flag.BoolVar(&quiet, "q", false, "no progress lines")
	flag.Parse()

	cfg.Mode = loadgen.Mode(mode)
	cfg.QoS, cfg.KeepAlive = byte(min(qos, 3)), uint16(min(keepAlive, 65535))
	v, err := loadgen.ParseVersion(version)
	if err != nil {
		log.Fatal(err)
	}
	cfg.Version = v
	if cfg.Count <= 0 || cfg.Duration < 0 {
		log.Fatal("-count and -duration must be positive: every run is bounded by both")
	}
	var progress io.Writer = os.Stderr
	if quiet {
		progress = nil
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	res, err := loadgen.Run(ctx, cfg, progress)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Summary())
	if jsonPath != "" {
		if err := writeJSON(jsonPath, res); err != nil {
			log.Fatal(err)
		}
	}
	switch {
	case len(res.Errors) > 0:
		os.Exit(1)
	case res.QoS > 0 && res.Lost > 0:
		os.Exit(3)
	}
}

func writeJSON(path string, res *loadgen.Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if path == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
