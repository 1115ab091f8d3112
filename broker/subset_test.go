package broker

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestSubSet checks subSet against a map through growth past subIndexAt
// (the index is made) and removals below it (the index is dropped).
func TestSubSet(t *testing.T) {
	var s subSet
	want := map[string]subOpts{}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(step int) {
		t.Helper()
		if s.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, s.len(), len(want))
		}
		for f, o := range want {
			i := s.find(f)
			if i < 0 || s.all()[i].opts != o {
				t.Fatalf("step %d: %q at %d, want %+v", step, f, i, o)
			}
		}
		if s.index != nil && s.len() < subIndexAt/2 || s.index == nil && s.len() >= subIndexAt && step < 200 {
			t.Fatalf("step %d: %d entries, index %v", step, s.len(), s.index != nil)
		}
	}
	for step := range 400 {
		f := fmt.Sprintf("a/%d", rng.IntN(3*subIndexAt))
		if step < 200 && rng.IntN(4) != 0 || step >= 200 && rng.IntN(4) == 0 {
			o := subOpts{qos: byte(step % 3), id: uint32(step)}
			s.set(f, o)
			want[f] = o
		} else {
			_, had := want[f]
			if s.remove(f) != had {
				t.Fatalf("step %d: remove(%q) = %v", step, f, !had)
			}
			delete(want, f)
		}
		check(step)
	}
	if s.has("b") {
		t.Fatal("has a filter never set")
	}
}
