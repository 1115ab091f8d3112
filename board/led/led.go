// Package led shows the appliance's state on a status LED through
// /sys/class/leds (below a root path, so tests use a fake tree).
//
// A board without the LED gets a no-op LED, never an error: the appliance
// must run the same on a Pi, in QEMU and on a laptop.
package led

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Pattern is what the LED shows.
type Pattern int

const (
	// Idle gives the LED back to the trigger it had when it was opened
	// (gokrazy's default: SD card activity on a Pi).
	Idle Pattern = iota
	// Working blinks fast (100 ms on, 100 ms off) until the next Show.
	Working
	// Success is solid on for LED.SuccessFor, then Idle.
	Success
	// Failure blinks three short flashes, a pause, and again, until the
	// next Show: distinct from Working even from across a room.
	Failure
	// Off turns the LED off (no trigger, brightness 0).
	Off
)

func (p Pattern) String() string {
	switch p {
	case Idle:
		return "idle"
	case Working:
		return "working"
	case Success:
		return "success"
	case Failure:
		return "failure"
	case Off:
		return "off"
	}
	return "Pattern(" + strconv.Itoa(int(p)) + ")"
}

// Timings of the patterns.
const (
	BlinkPeriod       = 100 * time.Millisecond // Working: on and off each
	FlashOn           = 150 * time.Millisecond // Failure: each of the three flashes
	FlashOff          = 150 * time.Millisecond // Failure: between flashes
	FailurePause      = time.Second            // Failure: after the third flash
	DefaultSuccessFor = 5 * time.Second
)

// Candidates are the status LED names tried, in order, when Open gets no
// name: "ACT" on current Raspberry Pi kernels, "led0" on older ones.
var Candidates = []string{"ACT", "led0"}

// LED is one LED in /sys/class/leds, or a no-op stand-in if there is none.
// Its methods are safe for concurrent use.
type LED struct {
	// SuccessFor is how long Success stays on (0: DefaultSuccessFor).
	SuccessFor time.Duration
	// Logger gets write errors (nil: they are dropped). A failing LED
	// never stops the appliance.
	Logger *slog.Logger

	dir      string // "" when there is no LED
	name     string
	trigger  string // at Open: what Idle restores
	hasTimer bool
	max      int

	mu     sync.Mutex
	cancel context.CancelCauseFunc // of the running pattern goroutine
	done   chan struct{}           // closed when it has stopped

	written func(file, value string) // tests: every successful write
}

// Open opens the LED called name below root/sys/class/leds, or the first
// of Candidates that exists when name is "". If there is no such LED, the
// LED returned does nothing.
func Open(root, name string) *LED {
	names := Candidates
	if name != "" {
		names = []string{name}
	}
	for _, n := range names {
		dir := filepath.Join(root, "sys", "class", "leds", n)
		trig, err := readFile(filepath.Join(dir, "trigger"))
		if err != nil {
			continue
		}
		l := &LED{dir: dir, name: n, max: 1}
		for _, t := range strings.Fields(trig) {
			if strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]") {
				t = strings.Trim(t, "[]")
				l.trigger = t
			}
			l.hasTimer = l.hasTimer || t == "timer"
		}
		if m, err := readFile(filepath.Join(dir, "max_brightness")); err == nil {
			if v, err := strconv.Atoi(strings.TrimSpace(m)); err == nil && v > 0 {
				l.max = v
			}
		}
		return l
	}
	return &LED{}
}

// Name returns the LED's name in /sys/class/leds, "" for the no-op LED.
func (l *LED) Name() string { return l.name }

// Show switches to pattern p, stopping the previous one. Blinking
// patterns run until the next Show or until ctx is done, which brings the
// LED back to Idle.
func (l *LED) Show(ctx context.Context, p Pattern) {
	if l.dir == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopLocked()
	switch p {
	case Idle:
		l.idle()
	case Off:
		l.write("trigger", "none")
		l.write("brightness", "0")
	case Working:
		if l.hasTimer {
			l.write("trigger", "timer") // creates delay_on and delay_off
			l.write("delay_on", ms(BlinkPeriod))
			l.write("delay_off", ms(BlinkPeriod))
			l.watch(ctx)
			return
		}
		l.write("trigger", "none")
		l.run(ctx, []step{{true, BlinkPeriod}, {false, BlinkPeriod}}, true)
	case Success:
		l.write("trigger", "none")
		d := l.SuccessFor
		if d <= 0 {
			d = DefaultSuccessFor
		}
		l.run(ctx, []step{{true, d}}, false)
	case Failure:
		l.write("trigger", "none")
		l.run(ctx, []step{
			{true, FlashOn}, {false, FlashOff},
			{true, FlashOn}, {false, FlashOff},
			{true, FlashOn}, {false, FailurePause},
		}, true)
	}
}

// Close stops any pattern and gives the LED back to its Idle trigger.
func (l *LED) Close() error {
	l.Show(context.Background(), Idle)
	return nil
}

type step struct {
	on  bool
	dur time.Duration
}

// run plays steps (once, or again and again if repeat) until the next
// Show or until ctx is done.
func (l *LED) run(ctx context.Context, steps []step, repeat bool) {
	l.start(ctx, func(ctx context.Context) {
		t := time.NewTimer(0)
		<-t.C
		defer t.Stop()
		for {
			for _, s := range steps {
				v := "0"
				if s.on {
					v = strconv.Itoa(l.max)
				}
				l.write("brightness", v)
				t.Reset(s.dur)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
			if !repeat {
				return
			}
		}
	})
}

// watch waits for the next Show or for ctx, for patterns the kernel plays
// by itself (the timer trigger).
func (l *LED) watch(ctx context.Context) {
	l.start(ctx, func(ctx context.Context) { <-ctx.Done() })
}

// errSuperseded cancels a pattern that the next Show replaces.
var errSuperseded = errors.New("led: next pattern")

// start runs body in a goroutine. When body returns because its pattern
// is over or ctx is done (not because Show replaced it), the LED goes back
// to Idle.
func (l *LED) start(ctx context.Context, body func(ctx context.Context)) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	l.cancel, l.done = cancel, done
	go func() {
		defer close(done)
		body(ctx)
		if errors.Is(context.Cause(ctx), errSuperseded) {
			return // Show holds the lock and writes the next pattern
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.done != done {
			return // replaced meanwhile
		}
		cancel(nil)
		l.cancel, l.done = nil, nil
		l.idle()
	}()
}

// stopLocked stops the running pattern goroutine and waits for it. It
// releases l.mu while it waits.
func (l *LED) stopLocked() {
	for l.cancel != nil { // a concurrent Show may start one while we wait
		cancel, done := l.cancel, l.done
		l.cancel, l.done = nil, nil
		cancel(errSuperseded)
		l.mu.Unlock()
		<-done
		l.mu.Lock()
	}
}

func (l *LED) idle() {
	trig := l.trigger
	if trig == "" {
		trig = "none"
	}
	l.write("trigger", trig)
	if trig == "none" {
		l.write("brightness", "0")
	}
}

// write writes value to one of the LED's files. sysfs attribute files
// exist already: never create one.
func (l *LED) write(file, value string) {
	f, err := os.OpenFile(filepath.Join(l.dir, file), os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		if l.Logger != nil {
			l.Logger.Warn("led: write failed", "led", l.name, "file", file, "value", value, "err", err)
		}
		return
	}
	if l.written != nil {
		l.written(file, value)
	}
}

func readFile(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	if len(b) > 4096 {
		return "", fmt.Errorf("led: %s: too long", p)
	}
	return string(b), nil
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }
