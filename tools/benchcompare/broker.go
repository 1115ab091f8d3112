package benchcompare

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// A broker is one implementation under test: how to start it on a port.
type broker struct {
	name string
	// command returns the command that serves plain anonymous MQTT on
	// 127.0.0.1:l.port, keeping any state under l.dir.
	command func(l launch) (*exec.Cmd, error)
	// metrics: the broker serves Prometheus /metrics (with its journal's
	// counters) when launch.status is set.
	metrics bool
	// saved, when set, checks after a durable run's broker stopped that
	// it did put its state on disk.
	saved func(l launch) error
}

// launch is how one run starts a broker.
type launch struct {
	dir  string
	port int
	// durable: the run's persistent sessions are kept on disk as far as
	// the broker does that (mosquitto: persistence true).
	durable bool
	// status is the host:port of the broker's HTTP status endpoint; ""
	// for none. Only for brokers with metrics.
	status string
	// upstream is the host:port of the broker to forward dataflowTopic/#
	// to at QoS 1 (edgebroker: a Dataflow; mosquitto: a bridge); "" for
	// none.
	upstream string
	// transport is what the port speaks: plain MQTT, MQTT over TLS with
	// certs, or MQTT over WebSockets.
	transport transport
	certs     certFiles
}

func edgebroker(bin string) broker {
	return broker{name: "edgebroker", metrics: true, command: func(l launch) (*exec.Cmd, error) {
		data := filepath.Join(l.dir, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			return nil, err
		}
		args := []string{"-data", data, "-loopback", "off"}
		if l.status != "" {
			args = append(args, "-status", l.status)
		}
		switch {
		case l.transport != overTCP && l.upstream != "":
			return nil, errors.New("benchcompare: a dataflow run is plain MQTT")
		case l.transport != overTCP:
			conf, err := writeListenerConfig(l.dir, l.port, l.transport, l.certs)
			if err != nil {
				return nil, err
			}
			return exec.Command(bin, append(args, "-config", conf)...), nil
		}
		args = append(args, "-listen", fmt.Sprintf("127.0.0.1:%d", l.port))
		if l.upstream != "" {
			conf, err := writeDataflowConfig(l.dir, l.upstream)
			if err != nil {
				return nil, err
			}
			args = append(args, "-config", conf)
		}
		return exec.Command(bin, args...), nil
	}}
}

// mosquittoConf is the reference configuration: queues and the outbound
// window large enough that QoS 1 is never dropped at these loads, no
// persistence (edgebroker keeps clean sessions in memory too), and Nagle
// off, as Go sockets have it by default. The durable scenarios replace
// the persistence line with mosquittoDurable.
const mosquittoConf = `listener %d 127.0.0.1
%sallow_anonymous true
%s
max_connections -1
max_inflight_messages 32
max_queued_messages 100000
max_keepalive 65535
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`

// mosquittoDurable is mosquitto's persistence as a durable deployment
// would configure it: persistent sessions and their queued messages are
// saved to persistence_location (the run's directory), every
// autosave_interval seconds (default 1800) and at shutdown. A PUBACK
// does not wait for that, so what was acknowledged is not on disk.
const mosquittoDurable = `persistence true
persistence_location %s/`

// mosquittoDB is the file mosquitto saves its state to.
const mosquittoDB = "mosquitto.db"

// mosquitto runs bin, or wsBin (when not "") on a WebSocket port.
func mosquitto(bin, wsBin string) broker {
	return broker{name: "mosquitto", command: func(l launch) (*exec.Cmd, error) {
		persistence := "persistence false"
		if l.durable {
			persistence = fmt.Sprintf(mosquittoDurable, l.dir)
		}
		if (l.durable || l.transport == overTLS) && os.Geteuid() == 0 {
			// Started as root, mosquitto switches to the user
			// "mosquitto", who can neither write to our private
			// directory nor read the key there.
			persistence += "\nuser root"
		}
		text := fmt.Appendf(nil, mosquittoConf, l.port, mosquittoListener(l.transport, l.certs), persistence)
		if l.upstream != "" {
			text = fmt.Appendf(text, mosquittoBridge, l.upstream)
		}
		conf := filepath.Join(l.dir, "mosquitto.conf")
		if err := os.WriteFile(conf, text, 0o644); err != nil {
			return nil, err
		}
		if l.transport == overWS && wsBin != "" {
			return exec.Command(wsBin, "-c", conf), nil
		}
		return exec.Command(bin, "-c", conf), nil
	}, saved: func(l launch) error {
		if _, err := os.Stat(filepath.Join(l.dir, mosquittoDB)); err != nil {
			return fmt.Errorf("persistence true, but nothing saved at shutdown: %w", err)
		}
		return nil
	}}
}

// proc is a running broker.
type proc struct {
	cmd  *exec.Cmd
	addr string
	done chan error
}

// start runs b on a free loopback port with its output in l.dir/NAME.log
// and waits until the port accepts connections.
func start(ctx context.Context, b broker, l launch) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	l.port = port
	dir := l.dir
	cmd, err := b.command(l)
	if err != nil {
		return nil, fmt.Errorf("benchcompare: %s: %w", b.name, err)
	}
	logf, err := os.Create(filepath.Join(dir, b.name+".log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("benchcompare: start %s: %w", b.name, err)
	}
	p := &proc{cmd: cmd, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	if err := p.waitReady(ctx); err != nil {
		p.stop()
		return nil, fmt.Errorf("benchcompare: %s: %w%s", b.name, err, logTail(logf.Name()))
	}
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-p.done:
			p.done <- err
			return fmt.Errorf("exited before listening: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after 10s", p.addr)
		}
	}
}

// stop sends SIGTERM, and SIGKILL if the broker is still running 5 s later.
func (p *proc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() {
			return nil // killed by our SIGTERM without a handler
		}
		return err
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("benchcompare: broker ignored SIGTERM for 5s")
	}
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// logTail returns the end of a broker's log for an error message.
func logTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) == 0 {
		return ""
	}
	return "; log ends: " + string(b[max(len(b)-400, 0):])
}
