package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"unsafe"
)

// subStrings renders subs as sorted "key:value:filter:group" strings.
func subStrings[V any](subs []Sub[int, V]) []string {
	var s []string
	for _, sub := range subs {
		s = append(s, fmt.Sprintf("%d:%v:%s:%s", sub.Key, sub.Value, sub.Filter, sub.Group))
	}
	slices.Sort(s)
	return s
}

func TestTreeSubscribe(t *testing.T) {
	tr := NewTree[int, string]()
	steps := []struct {
		filter   string
		key      int
		v        string
		replaced bool
	}{
		{"a/b", 1, "x", false},
		{"a/b", 1, "y", true},
		{"a/b", 2, "z", false},
		{"a/+", 1, "p", false},
		{"a/#", 1, "h", false},
		{"#", 3, "all", false},
		{"$share/g/a/b", 1, "s1", false},
		{"$share/g/a/b", 1, "s2", true},
		{"$share/h/a/b", 1, "t", false},
		{"$SYS/#", 4, "sys", false},
	}
	for _, s := range steps {
		if got, want := tr.Subscribe([]byte(s.filter), s.key, s.v), s.replaced; got != want {
			t.Errorf("Subscribe(%q, %d, %q): got %v, want %v", s.filter, s.key, s.v, got, want)
		}
	}
	if got, want := tr.Len(), 8; got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	tests := []struct {
		name string
		want []string
	}{
		{"a/b", []string{"1:h:a/#:", "1:p:a/+:", "1:s2:a/b:g", "1:t:a/b:h", "1:y:a/b:", "2:z:a/b:", "3:all:#:"}},
		{"a", []string{"1:h:a/#:", "3:all:#:"}},
		{"a/c/d", []string{"1:h:a/#:", "3:all:#:"}},
		{"b", []string{"3:all:#:"}},
		{"$SYS/x", []string{"4:sys:$SYS/#:"}},
		{"$SYS", []string{"4:sys:$SYS/#:"}},
		{"$other", nil},
	}
	for _, tt := range tests {
		got := subStrings(tr.Match([]byte(tt.name), nil))
		if !slices.Equal(got, tt.want) {
			t.Errorf("Match(%q):\n got %q\nwant %q", tt.name, got, tt.want)
		}
	}
	for _, s := range tr.Match([]byte("a/b"), nil) {
		if got, want := s.Shared(), s.Value == "s2" || s.Value == "t"; got != want {
			t.Errorf("%+v.Shared(): got %v, want %v", s, got, want)
		}
	}
}

func TestTreeUnsubscribe(t *testing.T) {
	filters := []string{"a/b", "a/+", "a/#", "#", "+", "+/+/c", "a/b/c/d", "$share/g/a/b", "$share/g/#", "/", "$SYS/x"}
	tr := NewTree[int, int]()
	for i, f := range filters {
		tr.Subscribe([]byte(f), 1, i)
		tr.Subscribe([]byte(f), 2, i)
	}
	if got, want := tr.Len(), 2*len(filters); got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	if tr.Unsubscribe([]byte("a/b/c"), 1) || tr.Unsubscribe([]byte("a/b"), 3) ||
		tr.Unsubscribe([]byte("$share/h/a/b"), 1) || tr.Unsubscribe([]byte("x/y"), 1) {
		t.Errorf("Unsubscribe of a missing subscription: got true")
	}
	for _, key := range []int{2, 1} {
		for _, f := range filters {
			if !tr.Unsubscribe([]byte(f), key) {
				t.Errorf("Unsubscribe(%q, %d): got false", f, key)
			}
			if tr.Unsubscribe([]byte(f), key) {
				t.Errorf("second Unsubscribe(%q, %d): got true", f, key)
			}
		}
	}
	if got, want := tr.Len(), 0; got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	if r := &tr.root; !r.empty() || r.children != nil || r.kids != nil {
		t.Errorf("root not pruned: %+v", r)
	}
	// Pruning keeps nodes that still hold subscriptions below them.
	tr.Subscribe([]byte("a/b/c"), 1, 0)
	tr.Subscribe([]byte("a"), 1, 0)
	tr.Unsubscribe([]byte("a"), 1)
	if got := tr.Match([]byte("a/b/c"), nil); len(got) != 1 {
		t.Errorf("Match after pruning: got %v, want one", got)
	}
	tr.Unsubscribe([]byte("a/b/c"), 1)
	if r := &tr.root; !r.empty() {
		t.Errorf("root not pruned: %+v", r)
	}
}

func TestTreeShared(t *testing.T) {
	tr := NewTree[int, int]()
	for k := 1; k <= 3; k++ {
		tr.Subscribe([]byte("$share/g/a/+"), k, 0)
	}
	tr.Subscribe([]byte("$share/h/a/#"), 9, 0)
	tr.Subscribe([]byte("a/+"), 1, 0) // a plain subscription next to the group
	var online map[int]bool
	tests := []struct {
		online map[int]bool // nil: no Prefer
		want   []int
	}{
		{nil, []int{1, 2, 3, 1, 2, 3}},
		{map[int]bool{2: true, 3: true}, []int{2, 3, 2, 3}},
		{map[int]bool{1: true}, []int{1, 1, 1}},
		{map[int]bool{}, []int{2, 3, 1, 2}}, // none qualifies: plain round robin
		{map[int]bool{1: true, 3: true}, []int{3, 1, 3, 1}},
	}
	for _, tt := range tests {
		tr.Prefer = nil
		if tt.online != nil {
			online = tt.online
			tr.Prefer = func(k int) bool { return online[k] }
		}
		var got []int
		var dst []Sub[int, int]
		for range tt.want {
			dst = tr.Match([]byte("a/x"), dst[:0])
			if len(dst) != 3 {
				t.Fatalf("Match: got %v, want 3 subscriptions", dst)
			}
			for _, s := range dst {
				switch {
				case s.Group == "g":
					got = append(got, s.Key)
				case s.Group == "h" && s.Key == 9, s.Group == "" && s.Key == 1:
				default:
					t.Errorf("Match: unexpected %+v", s)
				}
			}
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("online %v: got %v, want %v", tt.online, got, tt.want)
		}
	}
	// Removing members keeps the group working; removing all drops it.
	tr.Prefer = nil
	tr.Unsubscribe([]byte("$share/g/a/+"), 2)
	tr.Unsubscribe([]byte("$share/g/a/+"), 3)
	for range 3 {
		if got := tr.Match([]byte("a/x"), nil); len(got) != 3 || !slices.ContainsFunc(got, func(s Sub[int, int]) bool { return s.Group == "g" && s.Key == 1 }) {
			t.Errorf("Match after unsubscribe: got %v", got)
		}
	}
	tr.Unsubscribe([]byte("$share/g/a/+"), 1)
	if got := tr.Match([]byte("a/x"), nil); len(got) != 2 {
		t.Errorf("Match after group removal: got %v, want 2", got)
	}
}

// randTopic returns a random name (wild false) or filter over a small
// alphabet so that matches are frequent.
func randTopic(r *rand.Rand, wild bool) string {
	levels := []string{"a", "b", "", "$s", "c"}
	if wild {
		levels = append(levels, "+", "+", "#")
	}
	n := 1 + r.IntN(4)
	var parts []string
	for i := range n {
		l := levels[r.IntN(len(levels))]
		if l == "#" && i != n-1 {
			l = "+"
		}
		if l == "$s" && i != 0 {
			l = "a"
		}
		parts = append(parts, l)
	}
	if s := strings.Join(parts, "/"); s != "" {
		return s
	}
	return "/"
}

// TestTreeRandom compares Tree.Match against Match over all filters.
func TestTreeRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tr := NewTree[int, int]()
	type sub struct {
		filter string
		key    int
	}
	subs := map[sub]bool{}
	for i := range 400 {
		s := sub{randTopic(r, true), r.IntN(5)}
		if r.IntN(4) == 0 {
			s.filter = "$share/g/" + s.filter
		}
		if ValidFilter([]byte(s.filter)) != nil {
			t.Fatalf("randTopic made invalid filter %q", s.filter)
		}
		if i%3 == 2 {
			if got, want := tr.Unsubscribe([]byte(s.filter), s.key), subs[s]; got != want {
				t.Errorf("Unsubscribe(%q, %d): got %v, want %v", s.filter, s.key, got, want)
			}
			delete(subs, s)
			continue
		}
		if got, want := tr.Subscribe([]byte(s.filter), s.key, 0), subs[s]; got != want {
			t.Errorf("Subscribe(%q, %d): got %v, want %v", s.filter, s.key, got, want)
		}
		subs[s] = true
	}
	if got, want := tr.Len(), len(subs); got != want {
		t.Errorf("Len: got %d, want %d", got, want)
	}
	for range 300 {
		name := randTopic(r, false)
		var want []string
		groups := map[string]bool{}
		for s := range subs {
			g, f, shared := ParseShared([]byte(s.filter))
			if !Match(f, []byte(name)) {
				continue
			}
			if shared {
				groups[string(g)+" "+string(f)] = true
				continue
			}
			want = append(want, fmt.Sprintf("%d:0:%s:", s.key, s.filter))
		}
		var got []string
		gotGroups := map[string]bool{}
		for _, s := range tr.Match([]byte(name), nil) {
			if s.Shared() {
				k := s.Group + " " + s.Filter
				if gotGroups[k] || !subs[sub{"$share/" + s.Group + "/" + s.Filter, s.Key}] {
					t.Errorf("Match(%q): unexpected shared %+v", name, s)
				}
				gotGroups[k] = true
				continue
			}
			got = append(got, fmt.Sprintf("%d:%d:%s:", s.Key, s.Value, s.Filter))
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Match(%q):\n got %q\nwant %q", name, got, want)
		}
		if len(gotGroups) != len(groups) {
			t.Errorf("Match(%q): got groups %v, want %v", name, gotGroups, groups)
		}
	}
}

// TestTreeConcurrentMatch exercises the round-robin counters under the
// race detector, with readers sharing a read lock as callers do.
func TestTreeConcurrentMatch(t *testing.T) {
	tr := NewTree[int, int]()
	for k := range 4 {
		tr.Subscribe([]byte("$share/g/a/#"), k, 0)
	}
	tr.Prefer = func(k int) bool { return k != 0 }
	var mu sync.RWMutex
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			var dst []Sub[int, int]
			for range 200 {
				mu.RLock()
				dst = tr.Match([]byte("a/b"), dst[:0])
				mu.RUnlock()
				if len(dst) != 1 || dst[0].Key == 0 {
					t.Errorf("Match: got %v", dst)
					return
				}
			}
		})
	}
	wg.Wait()
}

// fanoutTree returns a Tree with n subscribers that all match "a/b/c",
// spread over plain, wildcard and shared filters.
func fanoutTree(n int) *Tree[int, int] {
	filters := []string{"a/b/c", "a/+/c", "a/#", "#", "+/b/+", "$share/g/a/b/c", "$share/h/a/#"}
	tr := NewTree[int, int]()
	for i := range n {
		tr.Subscribe([]byte(filters[i%len(filters)]), i, i)
	}
	// Subscriptions that do not match.
	for i := range n {
		tr.Subscribe([]byte(fmt.Sprintf("a/b/%d", i)), i, i)
		tr.Subscribe([]byte("$SYS/#"), i, i)
	}
	tr.Prefer = func(k int) bool { return k%2 == 0 }
	return tr
}

func TestTreeMatchAllocs(t *testing.T) {
	name := []byte("a/b/c")
	for _, n := range []int{1, 10, 100} {
		tr := fanoutTree(n)
		want := 0
		for i := range n {
			if i%7 < 5 || i == 5 || i == 6 { // plain, or first of a group
				want++
			}
		}
		dst := tr.Match(name, nil)
		if got := len(dst); got != want {
			t.Errorf("%d subscribers: Match returned %d, want %d", n, got, want)
		}
		if got := testing.AllocsPerRun(100, func() { dst = tr.Match(name, dst[:0]) }); got != 0 {
			t.Errorf("%d subscribers: Tree.Match: %v allocs, want 0", n, got)
		}
	}
}

func BenchmarkTreeMatch(b *testing.B) {
	name := []byte("a/b/c")
	for _, n := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			tr := fanoutTree(n)
			dst := tr.Match(name, nil)
			b.ReportAllocs()
			for b.Loop() {
				dst = tr.Match(name, dst[:0])
			}
		})
	}
}

// BenchmarkTreeMatchWide matches in a tree of many distinct device filters,
// where only a few subscriptions match.
func BenchmarkTreeMatchWide(b *testing.B) {
	tr := NewTree[int, int]()
	for i := range 10000 {
		tr.Subscribe([]byte(fmt.Sprintf("dev/%d/+/temp", i)), i, i)
	}
	tr.Subscribe([]byte("dev/#"), -1, 0)
	name := []byte("dev/4711/sensor/temp")
	var dst []Sub[int, int]
	b.ReportAllocs()
	for b.Loop() {
		dst = tr.Match(name, dst[:0])
	}
}

// TestChildrenSliceAndMap subscribes to more siblings than a node keeps
// in its slice (so they move to a map), matches each, and unsubscribes
// them in an order that removes from the middle of the slice.
func TestChildrenSliceAndMap(t *testing.T) {
	for _, n := range []int{maxKids - 1, maxKids, maxKids + 1, 4 * maxKids} {
		tr := NewTree[int, int]()
		for i := range n {
			tr.Subscribe(fmt.Appendf(nil, "a/%d/b", i), i, i)
		}
		a := tr.root.named([]byte("a"))
		if n <= maxKids && (len(a.kids) != n || a.children != nil) || n > maxKids && (a.kids != nil || len(a.children) != n) {
			t.Errorf("%d children: %d in the slice, %d in the map", n, len(a.kids), len(a.children))
		}
		for i := range n {
			got := tr.Match(fmt.Appendf(nil, "a/%d/b", i), nil)
			if len(got) != 1 || got[0].Key != i || got[0].Filter != fmt.Sprintf("a/%d/b", i) {
				t.Fatalf("%d children: Match(a/%d/b) = %v", n, i, got)
			}
		}
		for _, i := range append(rangeStep(1, n, 2), rangeStep(0, n, 2)...) {
			if !tr.Unsubscribe(fmt.Appendf(nil, "a/%d/b", i), i) {
				t.Fatalf("%d children: Unsubscribe(a/%d/b) = false", n, i)
			}
			if got := tr.Match(fmt.Appendf(nil, "a/%d/b", i), nil); len(got) != 0 {
				t.Fatalf("%d children: Match(a/%d/b) after Unsubscribe = %v", n, i, got)
			}
		}
		if r := &tr.root; !r.empty() || r.kids != nil || r.children != nil {
			t.Errorf("%d children: root not pruned: %+v", n, r)
		}
	}
}

func rangeStep(from, to, step int) []int {
	var r []int
	for i := from; i < to; i += step {
		r = append(r, i)
	}
	return r
}

// TestNodeSize guards the node's size class: one node per level of every
// distinct filter (see node).
func TestNodeSize(t *testing.T) {
	if got := unsafe.Sizeof(node[*int, [8]byte]{}); got > 96 {
		t.Errorf("a node is %d bytes, want at most 96", got)
	}
}

// TestTreeFilter checks that Filter returns the copy the subscriptions
// share, not another one.
func TestTreeFilter(t *testing.T) {
	tr := NewTree[int, int]()
	tr.Subscribe([]byte("a/+/c"), 1, 0)
	f := tr.Filter([]byte("a/+/c"))
	m := tr.Match([]byte("a/b/c"), nil)
	if f != "a/+/c" || len(m) != 1 || unsafe.StringData(m[0].Filter) != unsafe.StringData(f) {
		t.Errorf("Filter = %q, Match = %v: want the subscription's own copy", f, m)
	}
	if f := tr.Filter([]byte("a/b")); f != "" {
		t.Errorf("Filter(a/b) = %q, want none", f)
	}
}
