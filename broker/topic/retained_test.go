package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// matched returns "topic=value" for every topic r.Match visits, sorted.
func matched(r *Retained[int], filter string) []string {
	var got []string
	r.Match([]byte(filter), func(topic []byte, v int) bool {
		got = append(got, fmt.Sprintf("%s=%d", topic, v))
		return true
	})
	slices.Sort(got)
	return got
}

// bruteMatch returns what matched should by testing every topic with Match.
func bruteMatch(r *Retained[int], filter string) []string {
	var want []string
	r.Range(func(topic []byte, v int) bool {
		if Match([]byte(filter), topic) {
			want = append(want, fmt.Sprintf("%s=%d", topic, v))
		}
		return true
	})
	slices.Sort(want)
	return want
}

func TestRetained(t *testing.T) {
	var r Retained[int]
	topics := []string{"sport", "sport/tennis", "sport/tennis/player1", "sport/golf", "sport/",
		"/finance", "/", "$SYS/monitor/Clients", "$SYS", "a/$x", "Accounts"}
	for i, tp := range topics {
		if old, replaced := r.Set([]byte(tp), i); replaced || old != 0 {
			t.Errorf("Set(%q): got %d, %v, want 0, false", tp, old, replaced)
		}
	}
	if old, replaced := r.Set([]byte("sport"), 100); !replaced || old != 0 {
		t.Errorf("Set(sport) again: got %d, %v, want 0, true", old, replaced)
	}
	if got, want := r.Len(), len(topics); got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	tests := []struct {
		filter string
		want   []string
	}{
		{"sport/#", []string{"sport/=4", "sport/golf=3", "sport/tennis/player1=2", "sport/tennis=1", "sport=100"}},
		{"sport/+", []string{"sport/=4", "sport/golf=3", "sport/tennis=1"}},
		{"sport/tennis/+", []string{"sport/tennis/player1=2"}},
		{"sport", []string{"sport=100"}},
		{"sport/tennis/player1/#", []string{"sport/tennis/player1=2"}},
		{"+", []string{"Accounts=10", "sport=100"}},
		{"+/+", []string{"/=6", "/finance=5", "a/$x=9", "sport/=4", "sport/golf=3", "sport/tennis=1"}},
		{"/+", []string{"/=6", "/finance=5"}},
		{"#", []string{"/=6", "/finance=5", "Accounts=10", "a/$x=9", "sport/=4", "sport/golf=3",
			"sport/tennis/player1=2", "sport/tennis=1", "sport=100"}},
		{"$SYS/#", []string{"$SYS/monitor/Clients=7", "$SYS=8"}},
		{"+/monitor/Clients", nil},
		{"$SYS/monitor/+", []string{"$SYS/monitor/Clients=7"}},
		{"a/+", []string{"a/$x=9"}},
		{"ACCOUNTS", nil},
		{"nothing/#", nil},
	}
	for _, tt := range tests {
		if got := matched(&r, tt.filter); !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q):\n got %q\nwant %q", tt.filter, got, tt.want)
		}
	}
	if v, ok := r.Get([]byte("sport/golf")); !ok || v != 3 {
		t.Errorf("Get(sport/golf): got %d, %v, want 3, true", v, ok)
	}
	if _, ok := r.Get([]byte("sport/tennis/player")); ok {
		t.Errorf("Get(sport/tennis/player): got true")
	}
	// Delete a value whose node has children, then the leaves.
	for _, tp := range []string{"sport", "sport/tennis/player1", "sport/tennis"} {
		if _, ok := r.Delete([]byte(tp)); !ok {
			t.Errorf("Delete(%q): got false", tp)
		}
		if _, ok := r.Delete([]byte(tp)); ok {
			t.Errorf("second Delete(%q): got true", tp)
		}
	}
	if _, ok := r.Delete([]byte("sport/tennis/player1/x")); ok {
		t.Errorf("Delete of a missing topic: got true")
	}
	if got, want := matched(&r, "sport/#"), []string{"sport/=4", "sport/golf=3"}; !slices.Equal(got, want) {
		t.Errorf("Match(sport/#) after Delete:\n got %q\nwant %q", got, want)
	}
	if _, ok := r.root.children["sport"].children["tennis"]; ok {
		t.Errorf("Delete did not prune sport/tennis")
	}
	for _, tp := range topics {
		r.Delete([]byte(tp))
	}
	if got, want := r.Len(), 0; got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	if r.root.children != nil {
		t.Errorf("root not pruned: %v", r.root.children)
	}
}

func TestRetainedStop(t *testing.T) {
	var r Retained[int]
	for i := range 50 {
		r.Set(fmt.Appendf(nil, "a/%d/b", i), i)
	}
	for _, filter := range []string{"#", "a/#", "a/+/b", "+/+/+"} {
		n := 0
		r.Match([]byte(filter), func([]byte, int) bool { n++; return n < 7 })
		if got, want := n, 7; got != want {
			t.Errorf("Match(%q) stopping: fn called %d times, want %d", filter, got, want)
		}
	}
	n := 0
	r.Range(func([]byte, int) bool { n++; return n < 3 })
	if got, want := n, 3; got != want {
		t.Errorf("Range stopping: fn called %d times, want %d", got, want)
	}
}

// TestRetainedRandom compares Retained.Match against Match over all topics.
func TestRetainedRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(3, 4))
	var r Retained[int]
	want := map[string]int{}
	for i := range 500 {
		tp := randTopic(rnd, false)
		if rnd.IntN(3) == 0 {
			old, ok := r.Delete([]byte(tp))
			wold, wok := want[tp]
			if old != wold || ok != wok {
				t.Errorf("Delete(%q): got %d, %v, want %d, %v", tp, old, ok, wold, wok)
			}
			delete(want, tp)
			continue
		}
		old, replaced := r.Set([]byte(tp), i)
		wold, wok := want[tp]
		if old != wold || replaced != wok {
			t.Errorf("Set(%q): got %d, %v, want %d, %v", tp, old, replaced, wold, wok)
		}
		want[tp] = i
	}
	if got, want := r.Len(), len(want); got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	n := 0
	r.Range(func(tp []byte, v int) bool {
		if want[string(tp)] != v {
			t.Errorf("Range: %q=%d, want %d", tp, v, want[string(tp)])
		}
		n++
		return true
	})
	if n != len(want) {
		t.Errorf("Range visited %d topics, want %d", n, len(want))
	}
	for range 300 {
		f := randTopic(rnd, true)
		if got, want := matched(&r, f), bruteMatch(&r, f); !slices.Equal(got, want) {
			t.Errorf("Match(%q):\n got %q\nwant %q", f, got, want)
		}
	}
}

func TestRetainedAllocs(t *testing.T) {
	var r Retained[int]
	for i := range 100 {
		r.Set(fmt.Appendf(nil, "dev/%d/temp", i), i)
	}
	get, filter := []byte("dev/42/temp"), []byte("dev/+/temp")
	fn := func([]byte, int) bool { return true }
	if got := testing.AllocsPerRun(100, func() { r.Get(get) }); got != 0 {
		t.Errorf("Get: %v allocs, want 0", got)
	}
	if got := testing.AllocsPerRun(100, func() { r.Match(filter, fn) }); got != 0 {
		t.Errorf("Match: %v allocs, want 0", got)
	}
}

func BenchmarkRetainedMatch(b *testing.B) {
	var r Retained[int]
	for i := range 10000 {
		r.Set(fmt.Appendf(nil, "dev/%d/temp", i), i)
	}
	filter := []byte("dev/4711/+")
	fn := func([]byte, int) bool { return true }
	b.ReportAllocs()
	for b.Loop() {
		r.Match(filter, fn)
	}
}
