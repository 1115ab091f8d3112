// Package watchdog turns the health of the appliance's subsystems into
// "keep running" or "exit non-zero".
//
// It does not touch /dev/watchdog: gokrazy's init owns the hardware
// watchdog and pings it as long as the system runs. A subsystem that is
// alive but stuck (a wedged accept loop, a state store that stopped
// committing) is caught here instead: Run returns a *WedgedError naming
// it, the appliance exits non-zero, and gokrazy restarts it a second
// later.
//
// Subsystems prove they are alive in one of two ways: the watchdog calls
// a probe they Register every so often, or they call Beat themselves at
// least as often as the limit they declared with Expect.
package watchdog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// WedgedError says which subsystem stopped working and how it showed.
type WedgedError struct {
	Subsystem string
	Err       error
}

func (e *WedgedError) Error() string {
	return fmt.Sprintf("watchdog: %s is wedged: %v", e.Subsystem, e.Err)
}

func (e *WedgedError) Unwrap() error { return e.Err }

// ErrNoBeat is wrapped by the WedgedError of a subsystem whose Beat did
// not come within its limit.
var ErrNoBeat = errors.New("no beat")

// ErrProbeHung is wrapped by the WedgedError of a probe that did not
// return within its period plus Grace, its context's deadline
// notwithstanding.
var ErrProbeHung = errors.New("probe did not return")

// DefaultGrace is how long after its deadline a probe may take to return.
const DefaultGrace = 5 * time.Second

// Watchdog watches subsystems. The zero value is ready to use; its
// methods are safe for concurrent use.
type Watchdog struct {
	// Failures is how many probe failures in a row make a subsystem
	// wedged (0: the first one does).
	Failures int
	// Grace is how long a probe may run past its deadline (its period)
	// before it counts as hung (0: DefaultGrace).
	Grace time.Duration
	// Logger gets probe failures that are not fatal yet (nil: dropped).
	Logger *slog.Logger

	mu      sync.Mutex
	probes  []*probe
	beats   map[string]*beat
	running *run // nil unless Run is running
}

type probe struct {
	name  string
	every time.Duration
	fn    func(context.Context) error

	// Written by the probe loop, read by Status; under Watchdog.mu.
	last    time.Time
	lastErr error
}

type beat struct {
	limit time.Duration
	last  time.Time
}

type run struct {
	ctx     context.Context
	fail    context.CancelCauseFunc
	wg      sync.WaitGroup
	changed chan struct{} // an Expect while running: recompute deadlines
}

// Register asks the watchdog to call probe every period while Run runs,
// with a context that expires after one period. A probe returning an
// error (Failures times in a row), or not returning at all, makes Run
// fail with a *WedgedError naming the subsystem. Register may be called
// before or during Run.
func (w *Watchdog) Register(name string, every time.Duration, fn func(ctx context.Context) error) {
	if every <= 0 {
		panic(fmt.Sprintf("watchdog: Register(%q): period %v is not positive", name, every))
	}
	p := &probe{name: name, every: every, fn: fn}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.probes = append(w.probes, p)
	if w.running != nil {
		w.startProbe(w.running, p)
	}
}

// Expect declares a subsystem that calls Beat: if limit passes without a
// Beat from it while Run runs, Run fails with a *WedgedError wrapping
// ErrNoBeat. The time runs from Expect or the start of Run, whichever
// is later. Expecting a name again changes its limit.
func (w *Watchdog) Expect(name string, limit time.Duration) {
	if limit <= 0 {
		panic(fmt.Sprintf("watchdog: Expect(%q): limit %v is not positive", name, limit))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.beats == nil {
		w.beats = map[string]*beat{}
	}
	w.beats[name] = &beat{limit: limit, last: time.Now()}
	if w.running != nil {
		select {
		case w.running.changed <- struct{}{}:
		default:
		}
	}
}

// Beat says that subsystem name is alive. A Beat for a name nobody
// Expected is ignored.
func (w *Watchdog) Beat(name string) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if b, ok := w.beats[name]; ok {
		b.last = now
	}
}

// Run watches until ctx is done (then it returns nil) or a subsystem is
// wedged (then it returns a *WedgedError). All probe goroutines have
// stopped when it returns, except a hung probe's own call, which cannot
// be stopped.
func (w *Watchdog) Run(ctx context.Context) error {
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	r := &run{ctx: ctx, fail: fail, changed: make(chan struct{}, 1)}
	w.mu.Lock()
	if w.running != nil {
		w.mu.Unlock()
		return errors.New("watchdog: Run is already running")
	}
	w.running = r
	now := time.Now()
	for _, b := range w.beats {
		b.last = now // time before Run does not count
	}
	for _, p := range w.probes {
		w.startProbe(r, p)
	}
	w.mu.Unlock()

	err := w.watchBeats(r)
	fail(err)
	w.mu.Lock()
	w.running = nil // no new probe loops from here on
	w.mu.Unlock()
	r.wg.Wait()
	var wedged *WedgedError
	if errors.As(context.Cause(ctx), &wedged) {
		return wedged
	}
	return nil
}

// watchBeats sleeps until the earliest beat deadline, checks, and again,
// until a beat is missed (it returns the error) or ctx is done (nil).
func (w *Watchdog) watchBeats(r *run) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		w.mu.Lock()
		now := time.Now()
		var next time.Time
		names := make([]string, 0, len(w.beats))
		for name := range w.beats {
			names = append(names, name)
		}
		slices.Sort(names) // deterministic: the first missed name in order
		for _, name := range names {
			b := w.beats[name]
			deadline := b.last.Add(b.limit)
			if !now.Before(deadline) {
				w.mu.Unlock()
				return &WedgedError{name, fmt.Errorf("%w for %v (limit %v)", ErrNoBeat, now.Sub(b.last), b.limit)}
			}
			if next.IsZero() || deadline.Before(next) {
				next = deadline
			}
		}
		w.mu.Unlock()
		wait := time.Hour
		if !next.IsZero() {
			wait = next.Sub(now)
		}
		t.Reset(wait)
		select {
		case <-r.ctx.Done():
			return nil
		case <-r.changed:
		case <-t.C:
		}
	}
}

// startProbe runs p's loop in a goroutine; w.mu is held.
func (w *Watchdog) startProbe(r *run, p *probe) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := w.probeLoop(r.ctx, p); err != nil {
			r.fail(err)
		}
	}()
}

// probeLoop calls p every period until ctx is done (nil) or p is wedged.
func (w *Watchdog) probeLoop(ctx context.Context, p *probe) error {
	grace := w.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	limit := max(w.Failures, 1)
	failures := 0
	t := time.NewTimer(p.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		hung, err := call(ctx, p, grace)
		if ctx.Err() != nil {
			return nil // shutting down: not the probe's fault
		}
		if hung {
			return &WedgedError{p.name, fmt.Errorf("%w within %v", ErrProbeHung, p.every+grace)}
		}
		w.mu.Lock()
		p.last, p.lastErr = time.Now(), err
		w.mu.Unlock()
		if err == nil {
			failures = 0
		} else if failures++; failures >= limit {
			return &WedgedError{p.name, err}
		} else if w.Logger != nil {
			w.Logger.Warn("watchdog: probe failed", "subsystem", p.name, "err", err, "failures", failures, "limit", limit)
		}
		t.Reset(p.every)
	}
}

// call runs one probe with a deadline of one period. hung is true if it
// has not returned grace after that.
func call(ctx context.Context, p *probe, grace time.Duration) (hung bool, err error) {
	pctx, cancel := context.WithTimeout(ctx, p.every)
	defer cancel()
	res := make(chan error, 1) // a hung probe's late result goes nowhere
	go func() { res <- p.fn(pctx) }()
	t := time.NewTimer(p.every + grace)
	defer t.Stop()
	select {
	case err := <-res:
		return false, err
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return true, nil
	}
}

// State is one subsystem as the status page shows it.
type State struct {
	Name    string
	Kind    string    // "probe" or "beat"
	Last    time.Time // last probe run, or last beat; zero: none yet
	LastErr string    // last probe error; "" if it passed
	Every   time.Duration
}

// Status lists the watched subsystems, sorted by name.
func (w *Watchdog) Status() []State {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s []State
	for _, p := range w.probes {
		st := State{Name: p.name, Kind: "probe", Last: p.last, Every: p.every}
		if p.lastErr != nil {
			st.LastErr = p.lastErr.Error()
		}
		s = append(s, st)
	}
	for name, b := range w.beats {
		s = append(s, State{Name: name, Kind: "beat", Last: b.last, Every: b.limit})
	}
	slices.SortFunc(s, func(a, b State) int { return strings.Compare(a.Name, b.Name) })
	return s
}
