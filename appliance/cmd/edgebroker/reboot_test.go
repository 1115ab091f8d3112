package main

import (
	"context"
	"testing"
)

// TestRebooter: asking for a reboot ends the appliance's context, and the
// first reason asked for wins (an update's trial boot is not turned into
// a plain reboot by a later request).
func TestRebooter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rb := &rebooter{cancel: cancel}
	if asked, _ := rb.requested(); asked {
		t.Fatal("a reboot requested before any ask")
	}
	rb.ask("0 tryboot")
	rb.ask("")
	if ctx.Err() == nil {
		t.Error("asking did not end the appliance's context")
	}
	if asked, arg := rb.requested(); !asked || arg != "0 tryboot" {
		t.Errorf("requested() = %v, %q; want true, \"0 tryboot\"", asked, arg)
	}
}
