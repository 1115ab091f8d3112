package topic

import "testing"

// matchTests pair valid filters and names. They also seed FuzzFilter.
var matchTests = []struct {
	filter, name string
	want         bool
}{
	// §4.7.1.2 multi-level wildcard.
	{"sport/tennis/player1/#", "sport/tennis/player1", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/ranking", true},
	{"sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true},
	{"sport/tennis/player1/#", "sport/tennis/player2", false},
	{"sport/#", "sport", true},
	{"sport/#", "sport/", true},
	{"sport/#", "sports", false},
	{"#", "sport/tennis", true},
	{"#", "/", true},
	{"#", "a", true},
	// §4.7.1.3 single-level wildcard.
	{"sport/tennis/+", "sport/tennis/player1", true},
	{"sport/tennis/+", "sport/tennis/player2", true},
	{"sport/tennis/+", "sport/tennis/player1/ranking", false},
	{"sport/tennis/+", "sport/tennis", false},
	{"sport/+", "sport", false},
	{"sport/+", "sport/", true},
	{"+", "sport", true},
	{"+/+", "/finance", true},
	{"/+", "/finance", true},
	{"+", "/finance", false},
	{"+/+", "/", true},
	{"+", "/", false},
	{"+/tennis/#", "sport/tennis/player1", true},
	{"+/tennis/#", "sport/tennis", true},
	{"+/tennis/#", "sport/golf", false},
	{"sport/+/player1", "sport/tennis/player1", true},
	{"sport/+/player1", "sport//player1", true},
	{"a/+/+", "a//", true},
	{"a/+", "a//", false},
	// §4.7.2 topics beginning with '$' [MQTT-4.7.2-1].
	{"#", "$SYS/monitor/Clients", false},
	{"#", "$SYS", false},
	{"+/monitor/Clients", "$SYS/monitor/Clients", false},
	{"+", "$SYS", false},
	{"$SYS/#", "$SYS/monitor/Clients", true},
	{"$SYS/#", "$SYS", true},
	{"$SYS/monitor/+", "$SYS/monitor/Clients", true},
	{"$SYS/+/Clients", "$SYS/monitor/Clients", true},
	{"a/#", "a/$SYS", true},
	{"a/+", "a/$x", true},
	{"+/$x", "a/$x", true},
	// §4.7.3 case sensitivity and literal levels.
	{"ACCOUNTS", "Accounts", false},
	{"Accounts", "Accounts", true},
	{"a/b", "a/b/", false},
	{"a/b/", "a/b", false},
	{"/", "/", true},
	{"a", "a/b", false},
	{"a/b", "a", false},
	{" ", " ", true},
}

func TestMatch(t *testing.T) {
	for _, tt := range matchTests {
		if got, want := Match([]byte(tt.filter), []byte(tt.name)), tt.want; got != want {
			t.Errorf("Match(%q, %q): got %v, want %v", tt.filter, tt.name, got, want)
		}
		// A name is a filter without wildcards.
		if got, want := Covers([]byte(tt.filter), []byte(tt.name)), tt.want; got != want {
			t.Errorf("Covers(%q, %q): got %v, want %v", tt.filter, tt.name, got, want)
		}
	}
}

// coverTests pair valid filters. They also seed FuzzFilter.
var coverTests = []struct {
	outer, inner string
	want         bool
}{
	{"a/#", "a/b/+", true},
	{"a/+", "a/#", false},
	{"a/+/c", "a/b/c", true},
	{"+/x", "$SYS/x", false},
	{"#", "$SYS/#", false},
	{"#", "$SYS", false},
	{"+/#", "$SYS/x", false},
	{"$SYS/#", "$SYS/+/x", true},
	{"$SYS/#", "+/x", false},
	{"#", "#", true},
	{"#", "+", true},
	{"#", "+/#", true},
	{"#", "a/b/c", true},
	{"+/#", "#", true}, // the parent of "#" is the empty name, which is invalid
	{"+", "#", false},
	{"+/+/#", "#", false},
	{"/+/#", "/#", true}, // likewise, "/#" would match ""
	{"+/+/#", "/#", true},
	{"//+/#", "//#", false}, // "//#" matches "/"
	{"a/+/#", "a/#", false}, // "a/#" matches "a"
	{"a/#", "a", true},
	{"a/#", "a/#", true},
	{"a/#", "+/#", false},
	{"a/#", "a/+/#", true},
	{"a", "a/#", false},
	{"a/+", "a/+", true},
	{"a/+", "a/b", true},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"a/b", "a/+", false},
	{"a/+", "a/+/c", false},
	{"a/+/c", "a/+", false},
	{"+/+", "+/b", true},
	{"+/b", "+/+", false},
	{"+", "a", true},
	{"+", "+", true},
	{"+", "$x", false},
	{"$x", "$x", true},
	{"/#", "/", true},
	{"/#", "#", false},
	{"a/b/#", "a/b", true},
	{"a/b/#", "a", false},
}

func TestCovers(t *testing.T) {
	for _, tt := range coverTests {
		if got, want := Covers([]byte(tt.outer), []byte(tt.inner)), tt.want; got != want {
			t.Errorf("Covers(%q, %q): got %v, want %v", tt.outer, tt.inner, got, want)
		}
	}
	for _, tt := range validTests {
		f := []byte(tt.in)
		if _, _, shared := ParseShared(f); tt.filt != nil || shared {
			continue
		}
		if !Covers(f, f) {
			t.Errorf("Covers(%q, %[1]q): got false, want true", f)
		}
	}
}

func TestMatchAllocs(t *testing.T) {
	for _, tt := range matchTests {
		f, n := []byte(tt.filter), []byte(tt.name)
		if got := testing.AllocsPerRun(100, func() { Match(f, n) }); got != 0 {
			t.Errorf("Match(%q, %q): %v allocs, want 0", f, n, got)
		}
	}
	for _, tt := range coverTests {
		o, i := []byte(tt.outer), []byte(tt.inner)
		if got := testing.AllocsPerRun(100, func() { Covers(o, i) }); got != 0 {
			t.Errorf("Covers(%q, %q): %v allocs, want 0", o, i, got)
		}
	}
}

func BenchmarkMatch(b *testing.B) {
	f, n := []byte("sport/+/player1/#"), []byte("sport/tennis/player1/score/wimbledon")
	b.ReportAllocs()
	for b.Loop() {
		Match(f, n)
	}
}

// allTopics returns every '/'-joined combination of 1 to max levels.
func allTopics(levels []string, max int) []string {
	var out, prev []string
	prev = []string{""}
	for n := 1; n <= max; n++ {
		var next []string
		for _, p := range prev {
			for _, l := range levels {
				if n == 1 {
					next = append(next, l)
				} else {
					next = append(next, p+"/"+l)
				}
			}
		}
		out = append(out, next...)
		prev = next
	}
	return out
}

// TestCoversExhaustive checks Covers against its definition over all small
// filters, using names with one more level and a literal ("b") that no
// filter uses, so that every uncovered case has a witness name.
func TestCoversExhaustive(t *testing.T) {
	var filters, names [][]byte
	for _, f := range allTopics([]string{"a", "$x", "", "+", "#"}, 3) {
		if ValidFilter([]byte(f)) == nil {
			filters = append(filters, []byte(f))
		}
	}
	for _, n := range allTopics([]string{"a", "b", "$x", ""}, 4) {
		if ValidName([]byte(n)) == nil {
			names = append(names, []byte(n))
		}
	}
	for _, outer := range filters {
		for _, inner := range filters {
			want := true
			for _, n := range names {
				if Match(inner, n) && !Match(outer, n) {
					want = false
					break
				}
			}
			if got := Covers(outer, inner); got != want {
				t.Errorf("Covers(%q, %q): got %v, want %v", outer, inner, got, want)
			}
		}
	}
}
