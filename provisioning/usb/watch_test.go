package usb_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"edgebroker/provisioning/usb"
	"edgebroker/provisioning/usb/usbtest"
)

var stick = usbtest.Disk{Name: "sda", Bus: usbtest.USB, Removable: true, Sectors: 131072, Partitions: []int64{129024}}

func next(t *testing.T, ch <-chan usb.Event, within time.Duration) usb.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(within):
		t.Fatalf("no event within %v", within)
	}
	panic("unreachable")
}

func describe(ev usb.Event) string { return fmt.Sprintf("%v %s", ev.Op, ev.Device.Name) }

// TestWatchPolling: with no uevents at all (a closed source: as if the
// socket could not be opened), polling alone sees a stick come and go.
func TestWatchPolling(t *testing.T) {
	root := pi4Tree(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	none := make(chan usb.Uevent)
	close(none)
	w := &usb.Watcher{Root: root, Interval: 20 * time.Millisecond, Uevents: none}
	ch := w.Watch(ctx)

	// The initial scan reports what is there.
	for _, want := range []string{"add sda1", "add sdb"} {
		if got := describe(next(t, ch, 5*time.Second)); got != want {
			t.Fatalf("initial scan: got %q, want %q", got, want)
		}
	}
	usbtest.RemoveDisk(t, root, "sda")
	if got, want := describe(next(t, ch, 5*time.Second)), "remove sda1"; got != want {
		t.Fatalf("after unplug: got %q, want %q", got, want)
	}
	usbtest.AddDisk(t, root, usbtest.Disk{Name: "sde", Bus: usbtest.USB, Port: 4, Removable: true, Sectors: 131072, Partitions: []int64{129024}})
	ev := next(t, ch, 5*time.Second)
	if got, want := describe(ev), "add sde1"; got != want {
		t.Fatalf("after plug: got %q, want %q", got, want)
	}
	if !ev.Device.USB || ev.Device.Size != 129024*512 {
		t.Errorf("added device: got %+v", ev.Device)
	}
	cancel()
	for range ch { // must be closed after cancel
	}
}

// TestWatchUevents: a uevent makes the watcher scan after the debounce
// delay, long before the next poll, and a burst of uevents (disk, then its
// partitions) gives one scan that sees the whole stick.
func TestWatchUevents(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		root := t.TempDir()
		usbtest.AddDisk(t, root, usbtest.Disk{Name: "mmcblk0", Bus: usbtest.MMC, Sectors: 1000, Partitions: []int64{900}})
		uevents := make(chan usb.Uevent)
		w := &usb.Watcher{Root: root, Interval: time.Hour, Debounce: 300 * time.Millisecond, Uevents: uevents}
		ch := w.Watch(t.Context())
		synctest.Wait() // the initial scan is done and found nothing

		start := time.Now()
		usbtest.AddDisk(t, root, stick)
		uevents <- usb.Uevent{Action: "add", Subsystem: "block", DevName: "sda", DevType: "disk"}
		time.Sleep(100 * time.Millisecond)
		uevents <- usb.Uevent{Action: "add", Subsystem: "block", DevName: "sda1", DevType: "partition"}
		uevents <- usb.Uevent{Action: "bind", Subsystem: "usb"} // not block: no rescan
		synctest.Wait()
		select {
		case ev := <-ch:
			t.Fatalf("event %s before the debounce delay", describe(ev))
		default:
		}
		ev := <-ch
		if got, want := describe(ev), "add sda1"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
		if got, want := time.Since(start), 400*time.Millisecond; got != want {
			t.Errorf("reported after %v, want %v (last block uevent + debounce)", got, want)
		}

		usbtest.RemoveDisk(t, root, "sda")
		uevents <- usb.Uevent{Action: "remove", Subsystem: "block", DevName: "sda1"}
		if got, want := describe(<-ch), "remove sda1"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
}

// TestWatchFunc: the package-level Watch (real uevent socket if it opens,
// polling otherwise) reports the initial scan.
func TestWatchFunc(t *testing.T) {
	root := t.TempDir()
	usbtest.AddDisk(t, root, stick)
	ch := usb.Watch(t.Context(), root, 20*time.Millisecond)
	if got, want := describe(next(t, ch, 5*time.Second)), "add sda1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	usbtest.RemoveDisk(t, root, "sda")
	if got, want := describe(next(t, ch, 5*time.Second)), "remove sda1"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
