# edgebroker: build, run and test the appliance firmware.
# Tools are pinned (go.mod tool directive), never fetched @latest.

GO       ?= go
DATA     ?= ./tmp/data
ARGS     ?=
FUZZTIME ?= 30s
PKG      := ./appliance/cmd/edgebroker
BIN      := bin/edgebroker

.PHONY: all build run test race bench lint fuzz build-arm64 clean image qemu-image qemu-test

all: lint build test

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN) $(PKG)

# Serves the embedded default configuration, including plain MQTT on
# 127.0.0.1:1883, with state under $(DATA) and the status page on
# http://127.0.0.1:8080/. Extra flags: make run ARGS='-listen :1884'.
run: build
	mkdir -p $(DATA)
	$(BIN) -data $(DATA) -status 127.0.0.1:8080 $(ARGS)

# tools/setup-test-deps installs the Debian packages the tests need; it
# needs no root when they are there, and otherwise names them and the
# command to install them (tools/setup-test-deps -n only says so). Without
# CI set, a test whose tool is missing skips; with CI set, it fails.
#
# The soak test (every memory attack at once while a client measures its
# round trip) runs alone after the rest: its latency bound is about the
# broker, not about the other packages' tests sharing the cores.
SOAK := ^TestSoak$$
# ARTIFACTS=DIR keeps what tests write to t.ArtifactDir (screenshots) under DIR.
ARTIFACTS ?=
TESTARTIFACTS = $(if $(ARTIFACTS),-artifacts -outputdir $(abspath $(ARTIFACTS)))
test:
	./tools/setup-test-deps
	$(if $(ARTIFACTS),mkdir -p $(ARTIFACTS))
	$(GO) test -count=1 -timeout 20m $(TESTARTIFACTS) -skip '$(SOAK)' ./...
	$(GO) test -count=1 -timeout 5m -run '$(SOAK)' -v ./appliance/cmd/edgebroker/

race:
	./tools/setup-test-deps
	$(GO) test -race -count=1 -timeout 30m -skip '$(SOAK)' ./...

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./...

# gofmt, go vet and staticcheck, pinned by the tool directive in go.mod
# (move it with: go get -tool honnef.co/go/tools/cmd/staticcheck@vX.Y.Z).
lint:
	@files=$$(gofmt -l .); \
	if [ -n "$$files" ]; then echo "gofmt: these files need formatting (run gofmt -w):"; echo "$$files"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Runs every Fuzz target in the module for $(FUZZTIME) each, one at a
# time (tools/fuzz-all; go test -fuzz accepts one target per run).
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) ./tools/fuzz-all

# The firmware target: checks that the appliance cross-builds for arm64.
build-arm64:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -o $(BIN)-linux-arm64 $(PKG)

# Firmware images (image/README.md). File systems are cached in IMAGE_CACHE,
# Go builds in Go's build cache. Extra mkimage flags: the keys provisioning
# bundles must be signed by are required (or -no-trust for an image that
# cannot be provisioned):
#   make image IMAGE_ARGS='-trust site.pub'
IMAGE_CACHE ?= $(HOME)/.cache/edgebroker-image
IMAGE_ARGS  ?=

image:
	$(GO) run ./image/cmd/mkimage -target rpi -o bin/edgebroker-rpi.img -cache $(IMAGE_CACHE) $(IMAGE_ARGS)

qemu-image:
	$(GO) run ./image/cmd/mkimage -target qemu -o bin/edgebroker-qemu.img -cache $(IMAGE_CACHE) $(IMAGE_ARGS)

# Boots the QEMU image and checks it from the host: MQTT, a USB stick with a
# signed bundle, state across a reboot, an update over gokrazy's HTTP
# protocol (a few minutes); a bundle's Device settings (host name, a static
# address on the emulated NIC).
qemu-test:
	./tools/setup-test-deps
	EDGEBROKER_QEMU_TEST=1 EDGEBROKER_IMAGE_CACHE=$(IMAGE_CACHE) $(GO) test -count=1 -timeout 30m -v -run '^TestQEMU(Device|SignedUpdate)?$$' ./image/qemu/

clean:
	rm -rf bin tmp

# Compares edgebroker with Debian's mosquitto (installed if missing) on
# loopback: fan-in, fan-out, paced latency at 1,000 and 5,000 msg/s, idle
# connections, the same over TLS plus TLS 1.3 and 1.2 handshakes per
# second, WebSocket fan-in (against the same mosquitto sources built with
# libwebsockets by build-mosquitto-ws, cached: Debian's serves no
# WebSockets), and durable fan-in (64 QoS 1 publishers → a
# persistent subscriber; edgebroker's journal figures from its /metrics,
# one fsync timed on the same disk), alternating A/B runs, medians in a
# Markdown table on stdout and in tools/benchcompare/RESULTS.md (every run
# in results.json, a bar chart in results.svg next to it).
# Sizes: make bench-compare BENCH_ARGS='-rounds 2 -duration 5s -idle 5000'.
# One group: BENCH_ARGS='-only durable' (the later -out, -json and -svg
# flags win, to keep RESULTS.md's full table).
BENCH_ARGS ?=
.PHONY: bench-compare
bench-compare: build
	./tools/benchcompare/install-mosquitto
	ws=$$(./tools/benchcompare/build-mosquitto-ws) && \
	$(GO) run ./tools/cmd/benchcompare -edgebroker $(BIN) -mosquitto-ws "$$ws" -out tools/benchcompare/RESULTS.md -json tools/benchcompare/results.json -svg tools/benchcompare/results.svg $(BENCH_ARGS)
