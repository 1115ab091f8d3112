package statestore

import (
	"testing"
	"testing/synctest"
	"time"
)

// TestExpirySynctest runs the real sweeper on the fake clock of a synctest
// bubble: a PX 1000 key is gone after 2 s, with one delete event.
func TestExpirySynctest(t *testing.T) {
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		ev := &events{}
		s, err := Open(dir, Options{OnChange: ev.on, SweepInterval: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			s.Close()
			// buntdb's background goroutine notices Close on its next
			// 1 s tick; let it exit inside the bubble.
			time.Sleep(2 * time.Second)
		}()
		mustSet(t, s, "k", "v", SetOptions{PX: time.Second})
		time.Sleep(999 * time.Millisecond)
		synctest.Wait()
		wantGet(t, s, "k", "v")
		time.Sleep(time.Second)
		synctest.Wait()
		wantMissing(t, s, "k")
		evs := ev.take()
		if len(evs) != 2 || evs[1].Kind != EventDelete || string(evs[1].Key) != "k" {
			t.Errorf("events: %+v", evs)
		}
	})
}
