package main

import (
	"context"
	"sync"
)

// rebooter reboots the device once the appliance has shut down: a
// firmware update asks for the trial boot, a failed trial for a plain
// reboot into the previous system. Asking cancels the appliance's
// context, so it shuts down in its written order (answers in flight,
// such as the update's, go out) before main reboots.
type rebooter struct {
	cancel context.CancelFunc // set at construction

	mu    sync.Mutex // guards asked and arg
	asked bool
	arg   string // reboot(2)'s argument; "" for a plain restart
}

// ask requests a reboot with arg ("0 tryboot" for a Pi's trial boot).
func (r *rebooter) ask(arg string) {
	r.mu.Lock()
	if !r.asked {
		r.asked, r.arg = true, arg
	}
	r.mu.Unlock()
	r.cancel()
}

// requested reports whether a reboot was asked for, and its argument.
func (r *rebooter) requested() (bool, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked, r.arg
}
