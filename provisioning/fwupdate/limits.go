package fwupdate

import (
	"net/netip"
	"sync"
	"time"
)

// maxTracked bounds the addresses refusalLimits tracks one by one. When
// it is full of addresses still in their window, the addresses it cannot
// track share one count: a flood from many addresses is limited as one.
const maxTracked = 256

// refusalLimits counts each source address's refusals in its current
// window (MaxRefusals per RefusalWindow). The zero value is ready.
type refusalLimits struct {
	mu    sync.Mutex
	addr  map[netip.Addr]*window // guarded by mu; at most maxTracked entries
	other window                 // the addresses not in addr; guarded by mu
}

// window is one count.
type window struct {
	start time.Time // when its window began
	n     int       // refusals since start
}

// wait says how long from must wait before an update from it is read
// again: 0 now.
func (l *refusalLimits) wait(from netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.addr[from]
	if w == nil {
		w = &l.other
	}
	if now.Sub(w.start) >= RefusalWindow || w.n < MaxRefusals {
		return 0
	}
	return w.start.Add(RefusalWindow).Sub(now)
}

// add counts a refusal of an update from from.
func (l *refusalLimits) add(from netip.Addr, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.track(from, now)
	if now.Sub(w.start) >= RefusalWindow {
		w.start, w.n = now, 0
	}
	w.n++
}

// track returns from's count, made when there is room (after dropping
// the ended windows), else the shared one.
func (l *refusalLimits) track(from netip.Addr, now time.Time) *window {
	if w := l.addr[from]; w != nil {
		return w
	}
	if len(l.addr) >= maxTracked {
		for a, w := range l.addr {
			if now.Sub(w.start) >= RefusalWindow {
				delete(l.addr, a)
			}
		}
	}
	if len(l.addr) >= maxTracked {
		return &l.other
	}
	if l.addr == nil {
		l.addr = make(map[netip.Addr]*window)
	}
	w := &window{start: now}
	l.addr[from] = w
	return w
}
