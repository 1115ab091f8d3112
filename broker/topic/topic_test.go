package topic

import (
	"errors"
	"strings"
	"testing"
)

// validTests are topic names and filters with the result of ValidName and
// ValidFilter under zero Limits. They also seed FuzzFilter.
var validTests = []struct {
	in         string
	name, filt error
}{
	// §4.7.1.2 and §4.7.1.3 examples.
	{"sport/tennis/player1/#", ErrWildcardInName, nil},
	{"sport/#", ErrWildcardInName, nil},
	{"#", ErrWildcardInName, nil},
	{"sport/tennis#", ErrWildcardInName, ErrBadFilter},
	{"sport/tennis/#/ranking", ErrWildcardInName, ErrBadFilter},
	{"+", ErrWildcardInName, nil},
	{"+/tennis/#", ErrWildcardInName, nil},
	{"sport+", ErrWildcardInName, ErrBadFilter},
	{"sport/+/player1", ErrWildcardInName, nil},
	{"/+", ErrWildcardInName, nil},
	{"+/+", ErrWildcardInName, nil},
	{"++", ErrWildcardInName, ErrBadFilter},
	{"+#", ErrWildcardInName, ErrBadFilter},
	{"#/", ErrWildcardInName, ErrBadFilter},
	{"a/#b", ErrWildcardInName, ErrBadFilter},
	{"a/+b/c", ErrWildcardInName, ErrBadFilter},
	{"a/b+/c", ErrWildcardInName, ErrBadFilter},
	// Plain names.
	{"", ErrEmpty, ErrEmpty},
	{"/", nil, nil},
	{"//", nil, nil},
	{" ", nil, nil},
	{"sport/tennis/player1", nil, nil},
	{"/finance", nil, nil},
	{"$SYS/monitor/Clients", nil, nil},
	{"$SYS/#", ErrWildcardInName, nil},
	{"$SYS/monitor/+", ErrWildcardInName, nil},
	{"ACCOUNTS", nil, nil},
	{"Accounts", nil, nil},
	{"héllo/wörld", nil, nil},
	// Shared subscriptions [MQTT-4.8.2-1] [MQTT-4.8.2-2].
	{"$share/g/a/b", nil, nil},
	{"$share/g/#", ErrWildcardInName, nil},
	{"$share/g/+/b", ErrWildcardInName, nil},
	{"$share/g//", nil, nil},
	{"$share/g/a#", ErrWildcardInName, ErrBadFilter},
	{"$share/g", nil, ErrBadShare},
	{"$share/g/", nil, ErrBadShare},
	{"$share//a", nil, ErrBadShare},
	{"$share/", nil, ErrBadShare},
	{"$share/g+/a", ErrWildcardInName, ErrBadShare},
	{"$share/#/a", ErrWildcardInName, ErrBadShare},
	{"$share/+/a", ErrWildcardInName, ErrBadShare},
	{"$share/g/$share/x", nil, nil}, // the filter part is literal
	{"$share", nil, nil},
	{"$sharex/a", nil, nil},
	{"$SHARE/g", nil, nil},
}

func TestValid(t *testing.T) {
	for _, tt := range validTests {
		if got, want := ValidName([]byte(tt.in)), tt.name; got != want {
			t.Errorf("ValidName(%q): got %v, want %v", tt.in, got, want)
		}
		if got, want := ValidFilter([]byte(tt.in)), tt.filt; got != want {
			t.Errorf("ValidFilter(%q): got %v, want %v", tt.in, got, want)
		}
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("a", 65536)
	tests := []struct {
		l          Limits
		in         string
		name, filt error
	}{
		{Limits{}, long, ErrTooLong, ErrTooLong},
		{Limits{}, long[1:], nil, nil},
		{Limits{MaxLength: 5}, "abcde", nil, nil},
		{Limits{MaxLength: 5}, "abcdef", ErrTooLong, ErrTooLong},
		{Limits{MaxLength: 5}, "abcd+/", ErrTooLong, ErrTooLong},
		{Limits{MaxLength: 100000}, long, ErrTooLong, ErrTooLong},
		{Limits{MaxLevels: 3}, "a/b/c", nil, nil},
		{Limits{MaxLevels: 3}, "a/b/c/d", ErrTooManyLevels, ErrTooManyLevels},
		{Limits{MaxLevels: 3}, "//", nil, nil},
		{Limits{MaxLevels: 3}, "///", ErrTooManyLevels, ErrTooManyLevels},
		{Limits{MaxLevels: 3}, "a/+/#", ErrWildcardInName, nil},
		{Limits{MaxLevels: 3}, "a/+/#/", ErrWildcardInName, ErrBadFilter},
		// Levels of a shared filter count after the group.
		{Limits{MaxLevels: 3}, "$share/g/a/b/c", ErrTooManyLevels, nil},
		{Limits{MaxLevels: 3}, "$share/g/a/b/c/d", ErrTooManyLevels, ErrTooManyLevels},
		// Length of a shared filter counts the whole string.
		{Limits{MaxLength: 10}, "$share/g/a", nil, nil},
		{Limits{MaxLength: 10}, "$share/g/ab", ErrTooLong, ErrTooLong},
	}
	for _, tt := range tests {
		if got, want := tt.l.ValidName([]byte(tt.in)), tt.name; !errors.Is(got, want) {
			t.Errorf("%+v.ValidName(%.20q): got %v, want %v", tt.l, tt.in, got, want)
		}
		if got, want := tt.l.ValidFilter([]byte(tt.in)), tt.filt; !errors.Is(got, want) {
			t.Errorf("%+v.ValidFilter(%.20q): got %v, want %v", tt.l, tt.in, got, want)
		}
	}
}

func TestParseShared(t *testing.T) {
	tests := []struct {
		in, group, f string
		shared       bool
	}{
		{"$share/g/a/b", "g", "a/b", true},
		{"$share/g/#", "g", "#", true},
		{"$share//a", "", "a", true},
		{"$share/g/", "g", "", true},
		{"$share/g", "", "$share/g", false},
		{"$share", "", "$share", false},
		{"a/b", "", "a/b", false},
		{"$SYS/a", "", "$SYS/a", false},
	}
	for _, tt := range tests {
		g, f, shared := ParseShared([]byte(tt.in))
		if string(g) != tt.group || string(f) != tt.f || shared != tt.shared {
			t.Errorf("ParseShared(%q): got %q, %q, %v, want %q, %q, %v",
				tt.in, g, f, shared, tt.group, tt.f, tt.shared)
		}
	}
}

func TestValidAllocs(t *testing.T) {
	l := Limits{MaxLength: 100, MaxLevels: 4}
	for _, tt := range validTests {
		in := []byte(tt.in)
		if got := testing.AllocsPerRun(100, func() { ValidName(in); ValidFilter(in) }); got != 0 {
			t.Errorf("Valid(%q): %v allocs, want 0", tt.in, got)
		}
		if got := testing.AllocsPerRun(100, func() { l.ValidName(in); l.ValidFilter(in) }); got != 0 {
			t.Errorf("Limits.Valid(%q): %v allocs, want 0", tt.in, got)
		}
		if got := testing.AllocsPerRun(100, func() { ParseShared(in) }); got != 0 {
			t.Errorf("ParseShared(%q): %v allocs, want 0", tt.in, got)
		}
	}
}
