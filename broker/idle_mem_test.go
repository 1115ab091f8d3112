package broker

import (
	"flag"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"testing"
	"time"

	"unsafe"

	"golang.org/x/sys/unix"

	"edgebroker/broker/packet"
)

// idleBudget is the Go memory (heap in use + goroutine stacks) one idle
// connection with one subscription may cost: what it measured when set,
// 2.2–2.3 KiB, plus about 25% (the free slots vary with GC timing).
// History: 15.6 KiB with a reader and a writer goroutine; 8.4 KiB with
// a parked writer; 3.2–3.35 KiB parked in the reactor (issue 3); now
// (issue 17):
//
// Where the bytes of a parked plain connection go (Go 1.26, amd64;
// TestIdleConnMemory -idleprofile, topic idle/N/state, client id idle-N):
//
//	conn                                   480  (TestConnSize; was 600, in the 640 class)
//	session                                320  (one subscription: a 24 B subSet entry, was a 256 B map)
//	topic tree nodes idle/N, idle/N/state  192  (2 × 96; was 2 × 112 and a 256 B child map)
//	subscription entry, filter strings      40  (the entry was a 48 B Sub; the session shares the filter)
//	the idle node's child map, per child   ~50
//	Client and its id                      160  (the anonymous principal is shared per port)
//	net: netFD, 2 TCPAddrs, the 2 Sockaddrs
//	  their IPs alias, TCPConn, RawConn    304
//	Server.sessions, Server.conns, shard  ~125  (map slots)
//	RawConn callbacks, bound once           32
//	timer heap slot (read deadlines)       ~18
//	live objects                         ~1800
//	free slots in the spans holding them 150–400 (CONNECT and SUBSCRIBE garbage between them)
//
// Gone from an idle connection: the wake-up channel (112 B, only a running
// writer has one), the 5.0 and credential state (connExt), the garbage of
// parking (a closure and an error per park) and of CONNECT (pendingConnect
// is pooled).
//
// RSS is more than this heap: the runtime's pollDesc for each socket is
// 512 bytes outside the heap (persistentalloc, padded to 512 for tagged
// pointers: runtime/metrics /memory/classes/other), heap metadata adds
// ~70 B, and free pages the GC left after the connections' garbage stay
// resident until the scavenger returns them, which the server does once
// after a burst (burst.go). benchcompare's idle scenario (fresh process,
// 9,000 clients, mqttload ids and topics) measured 3.3 KiB of RSS per
// connection before issue 17's changes and 2.52–2.54 KiB (2580–2602 B) after;
// mosquitto 1.0 KiB. What is left beyond Go's pollDesc and netFD (about
// 0.8 KiB a socket) is the broker's own ~1.4 KiB above.
const idleBudget = 2816

// idleGoroutines is how many goroutines an idle plain-TCP connection may
// keep: none (the reactor parks it; CONNACK and SUBACK need no writer).
const idleGoroutines = 0.05

// TestIdleConnMemory connects N real loopback clients with one
// subscription each and reports what the broker holds per connection.
// The clients are raw non-Go sockets, so only the broker is measured.
func TestIdleConnMemory(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes heap and stack sizes")
	}
	if testing.Short() {
		t.Skip("opens 1000 sockets")
	}
	const n = 1000
	if *idleProfile != "" {
		defer func(rate int) { runtime.MemProfileRate = rate }(runtime.MemProfileRate)
		runtime.MemProfileRate = 1
	}
	s := New(Config{})
	s.noScavenge = true // n reaches burstConns: no FreeOSMemory in the middle of the measurement
	addr := serveLoopback(t, s, nil)

	before := memSample()
	rawIdleClients(t, addr, n)
	time.Sleep(idleWait) // let connections settle into their idle state
	after := memSample()
	if *idleProfile != "" {
		writeHeapProfile(t, *idleProfile)
	}

	d := after.perConn(before, n)
	t.Logf("per idle connection: %v; sizeof(conn) %d B, sizeof(session) %d B", d, sizeofConn, sizeofSession)
	if total := d.heap + d.stack; total > idleBudget {
		t.Errorf("idle connection costs %.0f B of heap and stacks, budget %d B", total, idleBudget)
	}
	if d.goroutines > idleGoroutines {
		t.Errorf("%.2f goroutines per idle connection, want at most %.2f", d.goroutines, idleGoroutines)
	}
}

var idleProfile = flag.String("idleprofile", "", "TestIdleConnMemory: write a heap profile (every allocation) here while the clients are connected")

func writeHeapProfile(t *testing.T, name string) {
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatal(err)
	}
}

// idleWait is how long TestIdleConnMemory lets connections go idle.
var idleWait = 200 * time.Millisecond

// memStat is what memSample reads.
type memStat struct {
	heapInuse, stackInuse uint64 // runtime.MemStats
	objects               uint64 // live heap objects' bytes (size classes included)
	unused                uint64 // free slots in spans that hold live objects
	rss                   int64  // VmRSS, bytes; -1 if unknown
	goroutines            int
}

// memSample collects garbage and samples the process's memory.
func memSample() memStat {
	var ms runtime.MemStats
	for range 4 { // each GC halves an oversized stack once
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
	metrics.Read(m)
	return memStat{heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse, objects: m[0].Value.Uint64(),
		unused: m[1].Value.Uint64(), rss: vmRSS(), goroutines: runtime.NumGoroutine()}
}

// memDelta is the growth from one memStat to another per connection.
type memDelta struct {
	heap, stack, objects, unused, rss, goroutines float64
}

func (a memStat) perConn(b memStat, n int) memDelta {
	per := func(x, y uint64) float64 { return float64(int64(x)-int64(y)) / float64(n) }
	return memDelta{heap: per(a.heapInuse, b.heapInuse), stack: per(a.stackInuse, b.stackInuse),
		objects: per(a.objects, b.objects), unused: per(a.unused, b.unused),
		rss: float64(a.rss-b.rss) / float64(n), goroutines: float64(a.goroutines-b.goroutines) / float64(n)}
}

func (d memDelta) String() string {
	return fmt.Sprintf("heap %.0f B (objects %.0f, free slots in their spans %.0f), stacks %.0f B, total %.0f B; RSS %.0f B; goroutines %.2f",
		d.heap, d.objects, d.unused, d.stack, d.heap+d.stack, d.rss, d.goroutines)
}

// vmRSS returns the process's resident set size, or -1.
func vmRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return -1
	}
	return resident * int64(os.Getpagesize())
}

// serveLoopback serves s on port (nil: Serve's) on a new loopback
// listener until the test ends, and returns the listener's address.
func serveLoopback(t *testing.T, s *Server, port *Port) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if port == nil {
		go s.Serve(ln)
	} else {
		go s.ServePort(ln, port)
	}
	t.Cleanup(func() { s.Close() })
	return ln.Addr().(*net.TCPAddr)
}

// rawIdleClients connects n rawIdleClients to addr; they hang up when the
// test ends.
func rawIdleClients(t *testing.T, addr *net.TCPAddr, n int) {
	t.Helper()
	fds := make([]int, 0, n)
	t.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	for i := range n {
		fd, err := rawIdleClient(addr, i)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		fds = append(fds, fd)
	}
}

// rawIdleClient connects with a blocking socket outside the Go runtime,
// sends CONNECT and SUBSCRIBE and waits for CONNACK and SUBACK.
func rawIdleClient(addr *net.TCPAddr, i int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, err
	}
	tv := unix.Timeval{Sec: 5}
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	cp := packet.Connect{ProtocolName: []byte("MQTT"), Version: packet.V311, CleanStart: true, KeepAlive: 60,
		ClientID: fmt.Appendf(nil, "idle-%d", i)}
	b := cp.Append(nil)
	sp := packet.Subscribe{PacketID: 1, Filters: []packet.Subscription{{Filter: fmt.Appendf(nil, "idle/%d/state", i), QoS: 1}}}
	b = sp.Append(b, packet.V311)
	if _, err := unix.Write(fd, b); err != nil {
		unix.Close(fd)
		return -1, err
	}
	// CONNACK (4 bytes) + SUBACK (5 bytes).
	var rb [9]byte
	for got := 0; got < len(rb); {
		k, err := unix.Read(fd, rb[got:])
		if err == unix.EINTR { // the runtime's preemption signal
			continue
		}
		if err != nil || k == 0 {
			unix.Close(fd)
			return -1, fmt.Errorf("reading CONNACK/SUBACK after %d bytes: %v", got, err)
		}
		got += k
	}
	if rb[0] != byte(packet.CONNACK)<<4 || rb[3] != 0 || rb[4] != byte(packet.SUBACK)<<4 {
		unix.Close(fd)
		return -1, fmt.Errorf("unexpected reply % x", rb)
	}
	return fd, nil
}

var (
	sizeofConn    = unsafe.Sizeof(conn{})
	sizeofSession = unsafe.Sizeof(session{})
)

// TestConnSize keeps the structs every idle connection carries within
// their size classes (see conn): growing conn past 480 bytes costs every
// connection 32 bytes more.
func TestConnSize(t *testing.T) {
	if sizeofConn > 480 {
		t.Errorf("sizeof(conn) = %d B, want at most 480 (move what few connections use to connExt)", sizeofConn)
	}
	if sizeofSession > 320 {
		t.Errorf("sizeof(session) = %d B, want at most 320", sizeofSession)
	}
}
