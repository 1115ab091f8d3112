package wsnet_test

import (
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"edgebroker/broker/packet"
	"edgebroker/broker/testenv"
)

// idleWSBudget is the Go memory (heap in use + goroutine stacks) one idle
// ws:// connection with one subscription may cost: parked in the broker's
// reactor with no goroutine and no read buffer it measured 4.1–4.3 KiB
// (plain TCP's 2.8 KiB, the wsnet.Conn with its frame state, 0.3 KiB, and
// the listener's record of it), against 27 KiB and one goroutine with
// coder/websocket's NetConn. The budget is the measurement plus 10%.
const idleWSBudget = 4864

// idleWSSBudget is idleWSBudget for wss:// (ListenTLS: crypto/tls over a
// tlsnet.Sock), parked like ws:// with no goroutine: it measured 6.1–7.6
// KiB, the ws:// connection's plus the broker's own idle TLS's
// (crypto/tls's cipher states and tls.Conn, the Sock); 11.7 KiB without
// letting go of crypto/tls's input buffers at park time (Conn.ReleaseIdle),
// and 20.2–22.5 KiB with a reader goroutine blocked in crypto/tls before
// (tls.NewListener under the WebSocket listener). The budget is the
// measurement plus 12%.
const idleWSSBudget = 8<<10 + 512

// TestIdleWebSocketConnMemory connects N clients (raw sockets in a child
// process, so that only the broker is measured) with one subscription
// each, and checks what the broker holds per connection: no goroutine
// (parked in the reactor) and memory within idleWSBudget on ws://,
// idleWSSBudget on wss://. Then a message published after they went idle
// reaches every one of them.
func TestIdleWebSocketConnMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes heap and stack sizes")
	}
	if testing.Short() {
		t.Skip("opens 500 WebSocket connections")
	}
	t.Run("ws", func(t *testing.T) { idleMemory(t, false, idleWSBudget) })
	t.Run("wss", func(t *testing.T) { idleMemory(t, true, idleWSSBudget) })
}

// idleGoroutines is the goroutines per idle connection allowed: none, but
// for the reactor's and the runtime's few shared by all.
const idleGoroutines = 0.05

// idleMemory is TestIdleWebSocketConnMemory on one transport: the
// broker may keep budget bytes per connection.
func idleMemory(t *testing.T, secure bool, budget int) {
	const n = 500
	if *idleProfile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	var cfg *tls.Config
	if secure {
		cert, _ := selfSigned(t)
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	s, addr := serve(t, cfg)
	before, g0 := memSample()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWSIdleClients$")
	cmd.Env = append(os.Environ(), "EDGEBROKER_WS_IDLE_CLIENTS="+addr+","+strconv.Itoa(n))
	if secure {
		cmd.Env = append(cmd.Env, "EDGEBROKER_WS_IDLE_TLS=1")
	}
	child := testenv.StartChild(t, cmd)
	child.Expect(t, "ready", 2*time.Minute)
	if got := s.Stats.Connections.Load(); got != n {
		t.Fatalf("%d connections, want %d", got, n)
	}
	// Readers park after a second without input, writers after one to
	// two seconds without output.
	testenv.Poll(10*time.Second, nil, func() error {
		if g := float64(runtime.NumGoroutine()-g0) / n; g > idleGoroutines {
			return fmt.Errorf("%.2f goroutines per connection", g)
		}
		return nil
	})
	after, g1 := memSample()
	if *idleProfile != "" {
		writeHeapProfile(t, *idleProfile)
	}
	heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
	t.Logf("per idle connection: heap %.0f B, stacks %.0f B, total %.0f B; goroutines %.2f",
		heap, stack, heap+stack, float64(g1-g0)/n)
	if total := heap + stack; total > float64(budget) {
		t.Errorf("an idle connection costs %.0f B of heap and stacks, budget %d B", total, budget)
	}
	if g := float64(g1-g0) / n; g > idleGoroutines {
		t.Errorf("%.2f goroutines per idle connection, want at most %.2f", g, idleGoroutines)
	}
	// Woken: every parked connection gets the message.
	if err := s.Publish(&packet.Publish{Topic: []byte("idle/all"), Payload: []byte("wake")}); err != nil {
		t.Fatal(err)
	}
	child.Expect(t, "received", time.Minute)
}

// TestHelperWSIdleClients is TestIdleWebSocketConnMemory's client
// process: it does nothing unless that test started it. It connects the
// clients, says "ready", and says "received" once every client got a
// PUBLISH.
func TestHelperWSIdleClients(t *testing.T) {
	spec := os.Getenv("EDGEBROKER_WS_IDLE_CLIENTS")
	if spec == "" {
		return
	}
	i := strings.LastIndexByte(spec, ',')
	addr := spec[:i]
	n, _ := strconv.Atoi(spec[i+1:])
	var tc *tls.Config
	if os.Getenv("EDGEBROKER_WS_IDLE_TLS") != "" {
		// The broker's memory is measured, not its certificate.
		tc = &tls.Config{InsecureSkipVerify: true}
	}
	conns := make([]*rawClient, 0, n)
	for i := range n {
		c, err := connect(addr, tc, fmt.Sprintf("idle-%d", i), 60, "idle/all")
		if err != nil {
			fmt.Printf("error: client %d: %v\n", i, err)
			os.Exit(1)
		}
		conns = append(conns, c)
	}
	fmt.Println("ready")
	var got atomic.Int64
	for i, c := range conns {
		go func() {
			h, body, err := c.packet(2 * time.Minute)
			if err == nil && (h.Type != packet.PUBLISH || !strings.HasSuffix(string(body), "wake")) {
				err = fmt.Errorf("got packet type %d % x", h.Type, body)
			}
			if err != nil {
				fmt.Printf("error: client %d: %v\n", i, err)
				return
			}
			if got.Add(1) == int64(n) {
				fmt.Println("received")
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin) // until the test closes stdin
	for _, c := range conns {
		c.nc.Close()
	}
	os.Exit(0)
}

var idleProfile = flag.String("idleprofile", "", "TestIdleWebSocketConnMemory: write a heap profile (every allocation) here while the clients are connected")

func writeHeapProfile(t *testing.T, path string) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

func memSample() (runtime.MemStats, int) {
	var ms runtime.MemStats
	for range 4 { // each GC halves an oversized stack once
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return ms, runtime.NumGoroutine()
}
