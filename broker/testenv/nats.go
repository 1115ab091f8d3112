package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// NATSCluster is a cluster of real nats-server nodes (v2.15.2, pinned by
// the module tools/nats) on loopback ports, each with JetStream and its
// MQTT gateway: an upstream broker cluster for the dataflow tests. A node
// keeps its ports and its JetStream folder (a folder of the test) across
// Kill and Start, so sessions and queued messages survive a restart.
//
// Its methods are for the test's goroutine: a NATSCluster is not safe for
// concurrent use.
type NATSCluster struct {
	t     testing.TB  // set by StartNATSCluster, read-only
	bin   string      // nats-server's path, read-only
	nodes []*natsNode // fixed length; each node's process is the caller's
}

// natsNode is one nats-server: its fixed ports and files, set by
// StartNATSCluster, and its process, owned by the NATSCluster's caller.
type natsNode struct {
	name                         string // server_name
	conf, log                    string // configuration file; log file (appended to by every run)
	client, mqtt, cluster, httpP int    // loopback ports: NATS clients, MQTT, routes, monitoring

	cmd    *exec.Cmd     // the running process; nil when stopped
	exited chan struct{} // closed when cmd has exited
}

// natsReady bounds a node's or the whole cluster's start: a JetStream
// meta leader election and the MQTT streams' creation take a few seconds.
const natsReady = 60 * time.Second

// StartNATSCluster starts n nats-server nodes on loopback (building the
// pinned nats-server once per process; without it the test ends through
// Unavailable), routed to each other as one cluster, each with JetStream
// in a folder of the test and an MQTT listener whose streams have
// min(3, n) replicas. It returns when every node accepts an MQTT 3.1.1
// CONNECT and reports itself healthy (/healthz: a JetStream meta leader,
// its streams current). Everything is stopped when the test ends; if the
// test failed, the tail of each node's log is printed.
func StartNATSCluster(t testing.TB, n int) *NATSCluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartNATSCluster: n = %d, want at least 1", n)
	}
	c := &NATSCluster{t: t, bin: NATSServer(t)}
	dir := t.TempDir()
	// Every port fixed (none chosen by the kernel at a node's start), so
	// a restarting node cannot take a stopped one's port.
	ports := FreePorts(t, 4*n)
	for i := range n {
		c.nodes = append(c.nodes, &natsNode{
			name:    fmt.Sprintf("n%d", i),
			conf:    filepath.Join(dir, fmt.Sprintf("n%d.conf", i)),
			log:     filepath.Join(dir, fmt.Sprintf("n%d.log", i)),
			client:  ports[4*i],
			mqtt:    ports[4*i+1],
			cluster: ports[4*i+2],
			httpP:   ports[4*i+3],
		})
	}
	for i, nd := range c.nodes {
		text := c.config(nd, filepath.Join(dir, fmt.Sprintf("n%d-js", i)))
		if err := os.WriteFile(nd.conf, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		c.StopAll()
		if t.Failed() {
			c.printTails()
		}
	})
	c.StartAll()
	return c
}

// config returns a node's configuration: routes to every node (its own
// is ignored by nats-server), JetStream in jsDir.
func (c *NATSCluster) config(nd *natsNode, jsDir string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server_name: %s\nhost: 127.0.0.1\nport: %d\nhttp: \"127.0.0.1:%d\"\n", nd.name, nd.client, nd.httpP)
	fmt.Fprintf(&b, "jetstream {\n  store_dir: %q\n}\n", jsDir)
	if len(c.nodes) > 1 {
		var routes []string
		for _, o := range c.nodes {
			routes = append(routes, fmt.Sprintf("%q", fmt.Sprintf("nats-route://127.0.0.1:%d", o.cluster)))
		}
		fmt.Fprintf(&b, "cluster {\n  name: testenv\n  listen: \"127.0.0.1:%d\"\n  routes: [%s]\n}\n", nd.cluster, strings.Join(routes, ", "))
	}
	fmt.Fprintf(&b, "mqtt {\n  listen: \"127.0.0.1:%d\"\n  stream_replicas: %d\n}\n", nd.mqtt, min(3, len(c.nodes)))
	return b.String()
}

// MQTTAddrs returns the host:port of each node's MQTT listener, in node
// order; they stay the same across Kill and Start.
func (c *NATSCluster) MQTTAddrs() []string {
	var addrs []string
	for _, nd := range c.nodes {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", nd.mqtt))
	}
	return addrs
}

// Kill ends node i with SIGKILL: it saves nothing more.
func (c *NATSCluster) Kill(i int) {
	c.t.Helper()
	c.stop(i, syscall.SIGKILL)
}

// Start starts node i again (it must be stopped) on the same ports and
// JetStream folder, and waits until it is ready: a quorum of the
// cluster must be running for that.
func (c *NATSCluster) Start(i int) {
	c.t.Helper()
	c.start(i)
	c.waitReady(i)
}

// StopAll ends every running node with SIGTERM, in node order.
func (c *NATSCluster) StopAll() {
	c.t.Helper()
	for i := range c.nodes {
		c.stop(i, syscall.SIGTERM)
	}
}

// StartAll starts every stopped node and waits until each is ready: the
// cluster has a JetStream meta leader, the node's streams are current and
// its MQTT listener accepts a 3.1.1 CONNECT.
func (c *NATSCluster) StartAll() {
	c.t.Helper()
	for i, nd := range c.nodes {
		if nd.cmd == nil {
			c.start(i)
		}
	}
	for i := range c.nodes {
		c.waitReady(i)
	}
}

func (c *NATSCluster) start(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	if nd.cmd != nil {
		c.t.Fatalf("NATSCluster.Start(%d): node is running", i)
	}
	logf, err := os.OpenFile(nd.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	fmt.Fprintf(logf, "--- testenv: start %s\n", nd.name)
	cmd := exec.Command(c.bin, "-c", nd.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("NATSCluster.Start(%d): %v", i, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	nd.cmd, nd.exited = cmd, exited
}

// stop signals node i if it runs and waits for it to exit, at most 10 s
// before it kills it.
func (c *NATSCluster) stop(i int, sig syscall.Signal) {
	c.t.Helper()
	nd := c.nodes[i]
	if nd.cmd == nil {
		return
	}
	nd.cmd.Process.Signal(sig)
	select {
	case <-nd.exited:
	case <-time.After(10 * time.Second):
		nd.cmd.Process.Kill()
		<-nd.exited
		c.t.Errorf("NATSCluster: %s did not exit within 10 s of %v; killed", nd.name, sig)
	}
	nd.cmd, nd.exited = nil, nil
}

// waitReady waits until node i reports itself healthy and accepts an
// MQTT 3.1.1 CONNECT, failing the test (with the node's log tail) when it
// exits or natsReady passes first.
func (c *NATSCluster) waitReady(i int) {
	c.t.Helper()
	nd := c.nodes[i]
	err := Poll(natsReady, nd.exited, func() error {
		if err := healthz(nd.httpP); err != nil {
			return err
		}
		// One client id per node: an id is unique across the cluster.
		return mqttProbe(c.MQTTAddrs()[i], "testenv-probe-"+nd.name)
	})
	if err != nil {
		c.t.Fatalf("NATSCluster: %s not ready within %v: %v\n%s", nd.name, natsReady, err, tail(nd.log, 30))
	}
}

// healthz asks a node's monitoring port for its full health: JetStream
// has a meta leader and this node's streams and consumers are current.
func healthz(port int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://127.0.0.1:%d/healthz", port), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// mqttProbe sends an MQTT 3.1.1 CONNECT (clean session, client id cid)
// and wants CONNACK 0; then it disconnects.
func mqttProbe(addr, cid string) error {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	// Variable header: "MQTT", level 4, flags clean session, keep alive 60 s.
	body := append([]byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, byte(len(cid))}, cid...)
	pkt := append([]byte{0x10, byte(len(body))}, body...)
	if _, err := conn.Write(pkt); err != nil {
		return err
	}
	var ack [4]byte
	if _, err := io.ReadFull(conn, ack[:]); err != nil {
		return fmt.Errorf("MQTT CONNECT to %s: %w", addr, err)
	}
	if ack != [4]byte{0x20, 2, 0, 0} {
		return fmt.Errorf("MQTT CONNECT to %s: got % x, want CONNACK 0", addr, ack)
	}
	conn.Write([]byte{0xe0, 0}) // DISCONNECT
	return nil
}

// printTails logs the last lines of every node's log.
func (c *NATSCluster) printTails() {
	for _, nd := range c.nodes {
		c.t.Logf("NATSCluster: tail of %s:\n%s", nd.log, tail(nd.log, 40))
	}
}

// tail returns the last n lines of a node's log, without the warnings
// that waitReady's polling of /healthz causes (its error says the last).
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var lines []string
	for line := range strings.Lines(string(data)) {
		if !strings.Contains(line, "Healthcheck failed") {
			lines = append(lines, strings.TrimSuffix(line, "\n"))
		}
	}
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// FreePorts returns n distinct loopback TCP ports that were free a moment
// ago; it holds them all open until it has them, so they are distinct.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	return FreePorts(t, 1)[0]
}

// natsBuilt is what NATSServer found, once per process.
var natsBuilt struct {
	once sync.Once
	bin  string
	err  error
}

// NATSServer returns the path of nats-server v2.15.2, pinned by the
// module tools/nats, or ends the test through Unavailable. It runs
// `go tool -n nats-server` in that module once per process: the go
// command links the binary into its build cache once (about 20 s the
// first time, 45 s with a cold build cache; needs the Go module proxy
// the first time) and prints the cached path afterwards (0.2 s).
// tools/setup-test-deps warms it.
func NATSServer(t testing.TB) string {
	t.Helper()
	natsBuilt.once.Do(func() { natsBuilt.bin, natsBuilt.err = buildNATSServer() })
	if natsBuilt.err != nil {
		Unavailable(t, "testenv: no nats-server: %v", natsBuilt.err)
		return ""
	}
	return natsBuilt.bin
}

func buildNATSServer() (string, error) {
	if _, err := exec.LookPath("go"); err != nil {
		return "", fmt.Errorf("go command not found: %w", err)
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	mod := filepath.Join(root, "tools", "nats")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "tool", "-n", "nats-server")
	cmd.Dir = mod
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go tool -n nats-server in %s (needs the Go module proxy the first time): %v\n%s", mod, err, stderr.Bytes())
	}
	bin := strings.TrimSpace(string(out))
	if fi, err := os.Stat(bin); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("go tool -n nats-server in %s printed %q, not an executable", mod, bin)
	}
	return bin, nil
}

// moduleRoot walks up from the working directory (a test's package
// folder) to the folder whose go.mod declares module edgebroker.
func moduleRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && modulePath(data) == "edgebroker" {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of module edgebroker above " + wd)
		}
		dir = parent
	}
}

// modulePath returns the path of a go.mod's module line.
func modulePath(gomod []byte) string {
	for line := range strings.Lines(string(gomod)) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}
