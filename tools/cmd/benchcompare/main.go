// Command benchcompare runs edgebroker and mosquitto through the same
// loads on loopback and prints a Markdown table (see `make bench-compare`).
//
//	benchcompare -edgebroker bin/edgebroker -out tools/benchcompare/RESULTS.md
//	benchcompare -rounds 3 -duration 5s -idle 5000 -only fan-in
//	benchcompare -only durable -durable-payloads 64,1024 -durable-inflight 1
//	benchcompare -only dataflow -dataflow-pubs 8
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
	var version, only, out, jsonOut, durablePayloads string
	flag.StringVar(&cfg.Edgebroker, "edgebroker", "bin/edgebroker", "edgebroker binary")
	flag.StringVar(&cfg.Mosquitto, "mosquitto", "", "mosquitto binary (default: from PATH or /usr/sbin)")
	flag.IntVar(&cfg.Rounds, "rounds", 3, "rounds per scenario and broker (the table shows medians)")
	flag.DurationVar(&cfg.Duration, "duration", 3*time.Second, "length of each throughput and latency run")
	flag.IntVar(&cfg.Payload, "payload", 64, "payload bytes")
	flag.StringVar(&version, "mqtt", "3.1.1", "MQTT version: 3.1.1 or 5")
	flag.IntVar(&cfg.FanInPubs, "pubs", 8, "fan-in publishers")
	flag.IntVar(&cfg.FanOutSubs, "subs", 100, "fan-out subscribers")
	flag.Float64Var(&cfg.LatencyRate, "rate", 5000, "latency scenario: messages per second")
	flag.IntVar(&cfg.IdleConns, "idle", 2000, "idle-connections scenario: clients")
	flag.IntVar(&cfg.DurablePubs, "durable-pubs", 64, "durable fan-in: QoS 1 publishers")
	flag.IntVar(&cfg.DurableInflight, "durable-inflight", 1, "durable fan-in: PUBLISHes each publisher may have awaiting PUBACK (1: each waits for its PUBACK)")
	flag.StringVar(&durablePayloads, "durable-payloads", "64,1024", "durable fan-in: comma-separated payload sizes in bytes, a scenario each")
	flag.Float64Var(&cfg.DurableRate, "durable-rate", 2000, "durable latency: messages per second of its one QoS 1 publisher")
	flag.IntVar(&cfg.FsyncSamples, "fsync-samples", 200, "durable fan-in: 4 KiB writes + fdatasync timed in the scratch directory")
	flag.IntVar(&cfg.DataflowPubs, "dataflow-pubs", 8, "dataflow: QoS 1 publishers on the broker that forwards to the upstream")
	flag.StringVar(&only, "only", "", "comma-separated scenario name prefixes to run (fan-in, fan-out, latency, idle, durable, dataflow)")
	flag.StringVar(&out, "out", "", "also write the Markdown table to this file")
	flag.StringVar(&jsonOut, "json", "", "write every run's result as JSON to this file")
	flag.Parse()

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
	if err := run(ctx, cfg, out, jsonOut); err != nil {
		os.RemoveAll(cfg.Dir)
		log.Fatal(err)
	}
}

func run(ctx context.Context, cfg benchcompare.Config, out, jsonOut string) error {
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
	if jsonOut != "" {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		return os.WriteFile(jsonOut, append(b, '\n'), 0o644)
	}
	return nil
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
