// Command benchcompare runs edgebroker and mosquitto through the same
// loads on loopback and prints a Markdown table (see `make bench-compare`).
//
//	benchcompare -edgebroker bin/edgebroker -out tools/benchcompare/RESULTS.md
//	benchcompare -rounds 3 -duration 5s -idle 5000 -only fan-in
//	benchcompare -only durable -durable-payloads 64,1024 -durable-inflight 1
//	benchcompare -only dataflow -dataflow-pubs 8
//	benchcompare -only TLS,WebSocket -duration 2s -rounds 1
//	benchcompare -svg-from tools/benchcompare/results.json -svg results.svg
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"edgebroker/tools/benchcompare"
	"edgebroker/tools/loadgen"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("benchcompare: ")
	var cfg benchcompare.Config
	var version, only, out, jsonOut, svgOut, svgFrom, durablePayloads, rates string
	flag.StringVar(&cfg.Edgebroker, "edgebroker", "bin/edgebroker", "edgebroker binary")
	flag.StringVar(&cfg.Mosquitto, "mosquitto", "", "mosquitto binary (default: from PATH or /usr/sbin)")
	flag.StringVar(&cfg.MosquittoWS, "mosquitto-ws", "", "mosquitto binary for the WebSocket rows (default: -mosquitto; `make bench-compare` builds one with tools/benchcompare/build-mosquitto-ws)")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "rounds per scenario and broker (the table shows medians)")
	flag.DurationVar(&cfg.Duration, "duration", 3*time.Second, "length of each throughput and latency run")
	flag.IntVar(&cfg.Payload, "payload", 64, "payload bytes")
	flag.StringVar(&version, "mqtt", "3.1.1", "MQTT version: 3.1.1 or 5")
	flag.IntVar(&cfg.FanInPubs, "pubs", 8, "fan-in publishers")
	flag.IntVar(&cfg.FanOutSubs, "subs", 100, "fan-out subscribers")
	flag.StringVar(&rates, "rate", "1000,5000", "latency scenarios (paced, 1→1, plain and TLS): comma-separated messages per second, a scenario each")
	flag.IntVar(&cfg.IdleConns, "idle", 2000, "idle-connections scenario (plain TCP): clients")
	flag.IntVar(&cfg.TLSIdleConns, "tls-idle", 0, "TLS idle-connections scenario: clients (0: as -idle)")
	flag.IntVar(&cfg.HandshakeDialers, "handshake-dialers", 8, "TLS handshake scenarios: clients connecting at once")
	flag.IntVar(&cfg.DurablePubs, "durable-pubs", 64, "durable fan-in: QoS 1 publishers")
	flag.IntVar(&cfg.DurableInflight, "durable-inflight", 1, "durable fan-in: PUBLISHes each publisher may have awaiting PUBACK (1: each waits for its PUBACK)")
	flag.IntVar(&cfg.DurableWindow, "durable-window", 20, "durable fan-in: the scenarios again with this many PUBLISHes in flight per publisher (mosquitto_pub's default window; 0: not)")
	flag.StringVar(&durablePayloads, "durable-payloads", "64,1024", "durable fan-in: comma-separated payload sizes in bytes, a scenario each")
	flag.Float64Var(&cfg.DurableRate, "durable-rate", 2000, "durable latency: messages per second of its one QoS 1 publisher")
	flag.IntVar(&cfg.FsyncSamples, "fsync-samples", 200, "durable fan-in: 4 KiB writes + fdatasync timed in the scratch directory")
	flag.IntVar(&cfg.DataflowPubs, "dataflow-pubs", 8, "dataflow: QoS 1 publishers on the broker that forwards to the upstream")
	flag.StringVar(&only, "only", "", "comma-separated scenario name prefixes to run (fan-in, fan-out, latency, idle, TLS, TLS handshakes, WebSocket, durable, dataflow)")
	flag.StringVar(&out, "out", "", "also write the Markdown table to this file")
	flag.StringVar(&jsonOut, "json", "", "write every run's result as JSON to this file")
	flag.StringVar(&svgOut, "svg", "", "also write a bar chart (SVG) of throughput, CPU per message and memory per idle connection to this file")
	flag.StringVar(&svgFrom, "svg-from", "", "run nothing: draw -svg from this JSON file (as -json wrote it)")
	flag.Parse()

	if svgFrom != "" {
		if err := redraw(svgFrom, svgOut); err != nil {
			log.Fatal(err)
		}
		return
	}
	v, err := loadgen.ParseVersion(version)
	if err != nil {
		log.Fatal(err)
	}
	cfg.Version = v
	if only != "" {
		cfg.Only = strings.Split(only, ",")
	}
	if cfg.DurablePayloads, err = benchcompare.ParseSizes(durablePayloads); err != nil {
		log.Fatal(err)
	}
	if cfg.LatencyRates, err = benchcompare.ParseRates(rates); err != nil {
		log.Fatal(err)
	}
	if cfg.Mosquitto == "" {
		if cfg.Mosquitto, err = findMosquitto(); err != nil {
			log.Fatal(err)
		}
	}
	if cfg.Dir, err = os.MkdirTemp("", "benchcompare-"); err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(cfg.Dir)
	cfg.Log = os.Stderr

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, cfg, out, jsonOut, svgOut); err != nil {
		os.RemoveAll(cfg.Dir)
		log.Fatal(err)
	}
}

func run(ctx context.Context, cfg benchcompare.Config, out, jsonOut, svgOut string) error {
	rep, err := benchcompare.Run(ctx, cfg)
	if err != nil {
		return err
	}
	md := rep.Markdown()
	fmt.Print(md)
	if out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if svgOut != "" {
		if err := os.WriteFile(svgOut, rep.SVG(), 0o644); err != nil {
			return err
		}
	}
	if jsonOut != "" {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		return os.WriteFile(jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// redraw writes the chart of a results file.
func redraw(from, svgOut string) error {
	if svgOut == "" {
		return fmt.Errorf("-svg-from needs -svg FILE")
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	rep, err := benchcompare.ReadJSON(b)
	if err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	return os.WriteFile(svgOut, rep.SVG(), 0o644)
}

func findMosquitto() (string, error) {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if _, err := os.Stat("/usr/sbin/mosquitto"); err == nil {
		return "/usr/sbin/mosquitto", nil
	}
	return "", fmt.Errorf("mosquitto not found; run tools/benchcompare/install-mosquitto")
}
