package usb

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// Op says whether a device arrived or went away.
type Op int

const (
	Add Op = iota + 1
	Remove
)

func (o Op) String() string {
	switch o {
	case Add:
		return "add"
	case Remove:
		return "remove"
	}
	return "Op(?)"
}

// Event is one arrival or removal.
type Event struct {
	Op     Op
	Device Device
}

// Defaults for Watcher.
const (
	DefaultInterval = 2 * time.Second
	DefaultDebounce = 300 * time.Millisecond
)

// Watcher reports sticks as they come and go. sysfs is the source of
// truth: a kernel uevent only says "look again soon", and the difference
// between two scans is what gets reported, so lost or reordered uevents
// cannot confuse it.
type Watcher struct {
	Root string // "/" on the device

	// Interval is the polling period (0: DefaultInterval). Polling is the
	// only source when the uevent socket cannot be opened, and a safety
	// net otherwise (the socket drops events on overflow).
	Interval time.Duration

	// Debounce is how long the watcher waits after the last block-device
	// uevent before it scans (0: DefaultDebounce), so a stick whose disk
	// and partitions arrive as separate events is reported once, complete.
	Debounce time.Duration

	// Uevents, if not nil, replaces the kernel's uevent socket (tests).
	// If nil, Watch calls OpenUevents.
	Uevents <-chan Uevent

	Logger *slog.Logger // nil: slog.Default()
}

// Watch scans root for sticks now and reports each present device as an
// Add, then reports arrivals and removals as they happen, polling every
// interval. It is (&Watcher{Root: root, Interval: interval}).Watch(ctx).
func Watch(ctx context.Context, root string, interval time.Duration) <-chan Event {
	return (&Watcher{Root: root, Interval: interval}).Watch(ctx)
}

// Watch starts watching; the channel is closed when ctx is done.
func (w *Watcher) Watch(ctx context.Context) <-chan Event {
	ch := make(chan Event)
	go w.run(ctx, ch)
	return ch
}

func (w *Watcher) run(ctx context.Context, ch chan<- Event) {
	defer close(ch)
	log := w.Logger
	if log == nil {
		log = slog.Default()
	}
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	debounce := w.Debounce
	if debounce <= 0 {
		debounce = DefaultDebounce
	}
	uevents := w.Uevents
	if uevents == nil {
		var err error
		if uevents, err = OpenUevents(ctx); err != nil {
			log.Warn("usb: no uevents, polling only", "err", err, "interval", interval)
		}
	}

	known := map[Device]bool{}
	scan := func() bool {
		devs, err := Scan(w.Root)
		if err != nil {
			log.Warn("usb: scan failed", "err", err)
			return true
		}
		return w.report(ctx, ch, known, devs)
	}
	if !scan() {
		return
	}
	poll := time.NewTicker(interval)
	defer poll.Stop()
	quiet := time.NewTimer(0)
	<-quiet.C
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-uevents:
			if !ok {
				uevents = nil // socket gone: polling carries on alone
				continue
			}
			if ev.Subsystem == "block" {
				quiet.Reset(debounce)
			}
			continue
		case <-quiet.C:
		case <-poll.C:
		}
		if !scan() {
			return
		}
	}
}

// report sends a Remove for every known device missing from devs and an Add
// for every new one, and updates known. It returns false if ctx ended.
func (w *Watcher) report(ctx context.Context, ch chan<- Event, known map[Device]bool, devs []Device) bool {
	now := make(map[Device]bool, len(devs))
	for _, d := range devs {
		now[d] = true
	}
	var evs []Event
	for d := range known {
		if !now[d] {
			evs = append(evs, Event{Remove, d})
		}
	}
	sortEvents(evs)
	for _, d := range devs {
		if !known[d] {
			evs = append(evs, Event{Add, d})
		}
	}
	for _, ev := range evs {
		select {
		case ch <- ev:
		case <-ctx.Done():
			return false
		}
		if ev.Op == Add {
			known[ev.Device] = true
		} else {
			delete(known, ev.Device)
		}
	}
	return true
}

func sortEvents(evs []Event) {
	slices.SortFunc(evs, func(a, b Event) int { return strings.Compare(a.Device.Name, b.Device.Name) })
}
