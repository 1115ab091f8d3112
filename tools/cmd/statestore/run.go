package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	protoerrors "github.com/Azure/iot-operations-sdks/go/protocol/errors"
	"github.com/Azure/iot-operations-sdks/go/protocol/hlc"
	"github.com/Azure/iot-operations-sdks/go/services/statestore"

	"edgebroker/tools/ssclient"
)

// Exit statuses.
const (
	exitOK      = 0
	exitMiss    = 1 // get: no such key; set: skipped by -nx/-nex
	exitServer  = 2 // the state store answered with an error
	exitFailure = 3 // connection, TLS, authentication, timeout, ...
	exitUsage   = 64
)

const usageText = `usage: statestore [flags] get KEY
       statestore [flags] set KEY VALUE [-nx | -nex] [-px DURATION] [-ft HLC] [-persist]
       statestore [flags] del KEY [-ft HLC]
       statestore [flags] vdel KEY VALUE [-ft HLC]
       statestore [flags] watch [-count N] KEY...
flags (before the command or among its arguments):
`

// options are the global flags.
type options struct {
	host, username, password              string
	passwordSet                           bool
	port                                  uint
	caFile, certFile, keyFile, serverName string
	useTLS, insecure                      bool
	clientID                              string
	timeout                               time.Duration
	binary                                string
	verbose, debug                        bool
}

// cli is one invocation.
type cli struct {
	opts           options
	stdout, stderr io.Writer
}

// run is the whole command: it parses args (without the program name),
// talks to the broker and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	c.opts = options{host: "127.0.0.1", timeout: 10 * time.Second}
	fs := flag.NewFlagSet("statestore", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageText)
		fs.PrintDefaults()
	}
	c.globalFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	rest := fs.Args()
	if len(rest) == 0 {
		fs.Usage()
		return exitUsage
	}
	cmd, rest := rest[0], rest[1:]
	switch cmd {
	case "get":
		return c.get(ctx, rest)
	case "set":
		return c.set(ctx, rest)
	case "del":
		return c.del(ctx, rest)
	case "vdel":
		return c.vdel(ctx, rest)
	case "watch":
		return c.watch(ctx, rest)
	default:
		return c.usage("unknown command %q (want get, set, del, vdel or watch)", cmd)
	}
}

// globalFlags registers the connection flags on fs, with the values
// parsed so far as defaults: run registers them on the top level and
// cmdFlags on every command, so they may come before the command or
// among its arguments ("set lock me -nx -px 10s -v").
func (c *cli) globalFlags(fs *flag.FlagSet) {
	o := &c.opts
	for _, n := range []string{"h", "host"} {
		fs.StringVar(&o.host, n, o.host, "broker host")
	}
	for _, n := range []string{"p", "port"} {
		fs.UintVar(&o.port, n, o.port, "broker port (default 1883, or 8883 with TLS)")
	}
	for _, n := range []string{"u", "username"} {
		fs.StringVar(&o.username, n, o.username, "MQTT user name")
	}
	for _, n := range []string{"P", "password"} {
		fs.Func(n, "MQTT password", func(s string) error {
			o.password, o.passwordSet = s, true
			return nil
		})
	}
	fs.BoolVar(&o.useTLS, "tls", o.useTLS, "connect with TLS, verifying the broker against the system roots")
	fs.StringVar(&o.caFile, "cafile", o.caFile, "PEM CA `file` to verify the broker with (implies -tls)")
	fs.StringVar(&o.certFile, "cert", o.certFile, "PEM client certificate `file` (implies -tls; needs -key)")
	fs.StringVar(&o.keyFile, "key", o.keyFile, "PEM client key `file` (implies -tls; needs -cert)")
	fs.BoolVar(&o.insecure, "insecure", o.insecure, "do not verify the broker's certificate (implies -tls)")
	fs.StringVar(&o.serverName, "servername", o.serverName, "TLS server `name` (default: the host)")
	fs.StringVar(&o.clientID, "id", o.clientID, "MQTT client identifier (default: statestore-<random hex>)")
	fs.DurationVar(&o.timeout, "timeout", o.timeout, "connection and per-request timeout")
	fs.StringVar(&o.binary, "binary", o.binary, "`encoding` of KEY/VALUE arguments and printed keys/values: hex or base64 (default: text)")
	fs.BoolVar(&o.verbose, "v", o.verbose, "print the version (HLC) the store returned on stderr")
	fs.BoolVar(&o.debug, "debug", o.debug, "log the SDK's MQTT traffic to stderr")
}

// checkOptions validates the connection flags once all are parsed.
func (c *cli) checkOptions() bool {
	o := &c.opts
	switch o.binary {
	case "", "hex", "base64":
	default:
		c.usage("-binary %q: want hex or base64", o.binary)
		return false
	}
	if o.timeout <= 0 {
		c.usage("-timeout must be positive")
		return false
	}
	if o.port > 65535 {
		c.usage("-port %d out of range", o.port)
		return false
	}
	if (o.certFile == "") != (o.keyFile == "") {
		c.usage("-cert and -key go together")
		return false
	}
	return true
}

func (c *cli) usage(format string, args ...any) int {
	fmt.Fprintf(c.stderr, "statestore: "+format+"\n", args...)
	fmt.Fprintln(c.stderr, "run statestore -help for usage")
	return exitUsage
}

// fail prints err for operation op and returns the exit status that fits
// it: exitServer for the state store's own errors, exitFailure otherwise.
func (c *cli) fail(op string, err error) int {
	var svc statestore.ServiceError
	var remote *protoerrors.Remote
	switch {
	case errors.As(err, &svc):
		fmt.Fprintf(c.stderr, "statestore: %s: server error: %s\n", op, string(svc))
		return exitServer
	case errors.As(err, &remote):
		fmt.Fprintf(c.stderr, "statestore: %s: server error: %s (%s)\n", op, remote.Message, remote.Kind)
		return exitServer
	}
	if _, ok := protoerrors.IsKind[protoerrors.Timeout](err); ok {
		fmt.Fprintf(c.stderr, "statestore: %s: no answer within %v (is the state store running?)\n", op, c.opts.timeout)
		return exitFailure
	}
	fmt.Fprintf(c.stderr, "statestore: %s: %v\n", op, err)
	return exitFailure
}

// cmdFlags parses a command's arguments, allowing its flags and the
// connection flags before, between and after the positional arguments
// ("set k v -nx -v"); "--" ends the flags, for values that start with "-".
func (c *cli) cmdFlags(fs *flag.FlagSet, args []string) ([]string, bool) {
	fs.SetOutput(c.stderr)
	c.globalFlags(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, false
		}
		consumed := args[:len(args)-fs.NArg()]
		args = fs.Args()
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, args...), c.checkOptions()
		}
		if len(args) == 0 {
			return pos, c.checkOptions()
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// decode turns a KEY or VALUE argument into bytes per -binary.
func (c *cli) decode(what, s string) ([]byte, error) {
	switch c.opts.binary {
	case "hex":
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not hex: %v", what, s, err)
		}
		return b, nil
	case "base64":
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%s %q is not base64: %v", what, s, err)
		}
		return b, nil
	}
	return []byte(s), nil
}

// encode formats a key or value for printing per -binary.
func (c *cli) encode(b []byte) string {
	switch c.opts.binary {
	case "hex":
		return hex.EncodeToString(b)
	case "base64":
		return base64.StdEncoding.EncodeToString(b)
	}
	return string(b)
}

// args decodes exactly n positional arguments named names.
func (c *cli) args(cmd string, pos []string, names ...string) ([][]byte, bool) {
	if len(pos) != len(names) {
		c.usage("%s wants %s, got %d arguments", cmd, strings.Join(names, " "), len(pos))
		return nil, false
	}
	out := make([][]byte, len(pos))
	for i, s := range pos {
		b, err := c.decode(names[i], s)
		if err != nil {
			c.usage("%s: %v", cmd, err)
			return nil, false
		}
		out[i] = b
	}
	if len(out[0]) == 0 {
		c.usage("%s: KEY must not be empty", cmd)
		return nil, false
	}
	return out, true
}

// fencing registers -ft on fs and returns where it goes (zero: no -ft;
// the client sends no fencing token for a zero one).
func fencing(fs *flag.FlagSet) *hlc.HybridLogicalClock {
	ft := new(hlc.HybridLogicalClock)
	fs.Func("ft", "fencing token (`HLC` wall:counter:node) guarding the key", func(s string) error {
		v, err := hlc.New().Parse("ft", s)
		if err != nil {
			return err
		}
		*ft = v
		return nil
	})
	return ft
}

// dial connects per the global flags.
func (c *cli) dial(ctx context.Context) (*ssclient.Client, int) {
	o := &c.opts
	cfg := ssclient.Config{
		Host:           o.host,
		Port:           uint16(o.port),
		ClientID:       o.clientID,
		Username:       o.username,
		ConnectTimeout: o.timeout,
	}
	if o.passwordSet {
		cfg.Password = []byte(o.password)
	}
	if o.debug {
		cfg.Logger = slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if o.useTLS || o.caFile != "" || o.certFile != "" || o.insecure {
		t := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.insecure, ServerName: o.serverName}
		if o.caFile != "" {
			pem, err := os.ReadFile(o.caFile)
			if err != nil {
				fmt.Fprintf(c.stderr, "statestore: -cafile: %v\n", err)
				return nil, exitFailure
			}
			t.RootCAs = x509.NewCertPool()
			if !t.RootCAs.AppendCertsFromPEM(pem) {
				fmt.Fprintf(c.stderr, "statestore: -cafile %s: no PEM certificates\n", o.caFile)
				return nil, exitFailure
			}
		}
		if o.certFile != "" {
			cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
			if err != nil {
				fmt.Fprintf(c.stderr, "statestore: -cert/-key: %v\n", err)
				return nil, exitFailure
			}
			t.Certificates = []tls.Certificate{cert}
		}
		cfg.TLS = t
		if cfg.Port == 0 {
			cfg.Port = 8883
		}
	}
	if cfg.Port == 0 {
		cfg.Port = 1883
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	cl, err := ssclient.Dial(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			fmt.Fprintf(c.stderr, "statestore: connecting to %s:%d: no CONNACK within %v\n", cfg.Host, cfg.Port, o.timeout)
			return nil, exitFailure
		}
		fmt.Fprintf(c.stderr, "statestore: %v\n", err)
		return nil, exitFailure
	}
	return cl, exitOK
}

func (c *cli) version(v hlc.HybridLogicalClock) {
	if c.opts.verbose && !v.IsZero() {
		fmt.Fprintf(c.stderr, "version %s\n", v)
	}
}

// command parses a command's flags (fs, named after the command) and
// decodes its positional arguments, named names.
func (c *cli) command(fs *flag.FlagSet, args []string, names ...string) ([][]byte, bool) {
	pos, ok := c.cmdFlags(fs, args)
	if !ok {
		return nil, false
	}
	return c.args(fs.Name(), pos, names...)
}

// store is the state store client a command runs on.
type store = statestore.Client[[]byte, []byte]

// withStore connects per the global flags, runs op on the store and
// disconnects. It returns op's exit status, dial's when the connection
// fails, and c.fail(cmd, err) when op returns an error.
func (c *cli) withStore(ctx context.Context, cmd string, op func(*store) (int, error)) int {
	cl, code := c.dial(ctx)
	if cl == nil {
		return code
	}
	defer cl.Close()
	code, err := op(cl.Store)
	if err != nil {
		return c.fail(cmd, err)
	}
	return code
}

// printCount prints the count a DEL or VDEL answered.
func (c *cli) printCount(res *statestore.Response[int], err error) (int, error) {
	if err != nil {
		return 0, err
	}
	c.version(res.Version)
	fmt.Fprintln(c.stdout, res.Value)
	return exitOK, nil
}

func (c *cli) get(ctx context.Context, args []string) int {
	a, ok := c.command(flag.NewFlagSet("get", flag.ContinueOnError), args, "KEY")
	if !ok {
		return exitUsage
	}
	return c.withStore(ctx, "get", func(st *store) (int, error) {
		res, err := st.Get(ctx, a[0], statestore.WithTimeout(c.opts.timeout))
		if err != nil {
			return 0, err
		}
		if res.Value == nil { // $-1; an empty value is non-nil
			fmt.Fprintln(c.stderr, "statestore: get: not found")
			return exitMiss, nil
		}
		c.version(res.Version)
		fmt.Fprintln(c.stdout, c.encode(res.Value))
		return exitOK, nil
	})
}

func (c *cli) set(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("set", flag.ContinueOnError)
	nx := fs.Bool("nx", false, "set only if the key does not exist")
	nex := fs.Bool("nex", false, "set only if the key does not exist or already has this value")
	px := fs.String("px", "", "expire the key after `DURATION` (Go duration, or milliseconds)")
	persist := fs.Bool("persist", false, "ask the store to persist the key to disk (aio-persistence)")
	ft := fencing(fs)
	a, ok := c.command(fs, args, "KEY", "VALUE")
	if !ok {
		return exitUsage
	}
	opts := []statestore.SetOption{statestore.WithTimeout(c.opts.timeout), statestore.WithFencingToken(*ft)}
	switch {
	case *nx && *nex:
		return c.usage("set: -nx and -nex exclude each other")
	case *nx:
		opts = append(opts, statestore.NotExists)
	case *nex:
		opts = append(opts, statestore.NotExistsOrEqual)
	}
	if *px != "" {
		d, err := parseExpiry(*px)
		if err != nil {
			return c.usage("set: -px %q: %v", *px, err)
		}
		opts = append(opts, statestore.WithExpiry(d))
	}
	if *persist {
		opts = append(opts, statestore.WithPersist(true))
	}
	return c.withStore(ctx, "set", func(st *store) (int, error) {
		res, err := st.Set(ctx, a[0], a[1], opts...)
		if err != nil {
			return 0, err
		}
		c.version(res.Version)
		if !res.Value {
			fmt.Fprintln(c.stdout, "skipped")
			return exitMiss, nil
		}
		fmt.Fprintln(c.stdout, "OK")
		return exitOK, nil
	})
}

// parseExpiry reads a -px value: a Go duration or whole milliseconds. The
// protocol has millisecond precision, so the result must be at least 1ms.
func parseExpiry(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		ms, err2 := strconv.ParseInt(s, 10, 64)
		if err2 != nil {
			return 0, errors.New("want a duration like 1500ms or 10s, or milliseconds")
		}
		d = time.Duration(ms) * time.Millisecond
	}
	if d < time.Millisecond {
		return 0, errors.New("must be at least 1ms")
	}
	return d, nil
}

func (c *cli) del(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("del", flag.ContinueOnError)
	ft := fencing(fs)
	a, ok := c.command(fs, args, "KEY")
	if !ok {
		return exitUsage
	}
	return c.withStore(ctx, "del", func(st *store) (int, error) {
		return c.printCount(st.Del(ctx, a[0], statestore.WithTimeout(c.opts.timeout), statestore.WithFencingToken(*ft)))
	})
}

func (c *cli) vdel(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("vdel", flag.ContinueOnError)
	ft := fencing(fs)
	a, ok := c.command(fs, args, "KEY", "VALUE")
	if !ok {
		return exitUsage
	}
	return c.withStore(ctx, "vdel", func(st *store) (int, error) {
		return c.printCount(st.VDel(ctx, a[0], a[1], statestore.WithTimeout(c.opts.timeout), statestore.WithFencingToken(*ft)))
	})
}

func (c *cli) watch(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	count := fs.Int("count", 0, "exit after `N` notifications (0: run until interrupted)")
	pos, ok := c.cmdFlags(fs, args)
	if !ok {
		return exitUsage
	}
	if len(pos) == 0 {
		return c.usage("watch wants at least one KEY")
	}
	var keys [][]byte
	seen := map[string]bool{}
	for _, s := range pos {
		k, err := c.decode("KEY", s)
		if err != nil {
			return c.usage("watch: %v", err)
		}
		if len(k) == 0 {
			return c.usage("watch: KEY must not be empty")
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			keys = append(keys, k)
		}
	}
	cl, code := c.dial(ctx)
	if cl == nil {
		return code
	}
	defer cl.Close()

	// Merge the per-key channels; the forwarders end when their channel
	// is closed by its stop function.
	type event = statestore.Notify[[]byte, []byte]
	events := make(chan event)
	var wg sync.WaitGroup
	var stops []func()
	quit := make(chan struct{})
	defer func() {
		close(quit)
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	var registered [][]byte
	defer func() {
		// KEYNOTIFY STOP, best effort: the registrations end with the
		// session anyway.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opts.timeout)
		defer cancel()
		for _, k := range registered {
			cl.Store.KeyNotifyStop(sctx, k, statestore.WithTimeout(c.opts.timeout))
		}
	}()
	for _, k := range keys {
		ch, stop := cl.Store.Notify(k)
		stops = append(stops, stop)
		wg.Go(func() {
			for n := range ch {
				select {
				case events <- n:
				case <-quit:
				}
			}
		})
		if err := cl.Store.KeyNotify(ctx, k, statestore.WithTimeout(c.opts.timeout)); err != nil {
			if ctx.Err() != nil {
				return exitOK
			}
			return c.fail("watch "+c.encode(k), err)
		}
		registered = append(registered, k)
	}

	for n := 0; *count == 0 || n < *count; n++ {
		select {
		case <-ctx.Done():
			return exitOK
		case err := <-cl.Fatal():
			fmt.Fprintf(c.stderr, "statestore: watch: connection lost: %v\n", err)
			return exitFailure
		case ev := <-events:
			switch ev.Operation {
			case "SET":
				fmt.Fprintf(c.stdout, "SET %s %s\n", c.encode(ev.Key), c.encode(ev.Value))
			default:
				fmt.Fprintf(c.stdout, "%s %s\n", ev.Operation, c.encode(ev.Key))
			}
			c.version(ev.Version)
		}
	}
	return exitOK
}
