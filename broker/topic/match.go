package topic

import "bytes"

// Match reports whether the topic name matches the topic filter. The filter
// must not be a shared subscription filter; strip "$share/{group}/" with
// ParseShared first. Both are assumed valid; for invalid input the result is
// unspecified but Match does not panic. Match allocates nothing.
func Match(filter, name []byte) bool {
	// [MQTT-4.7.2-1] a filter starting with a wildcard does not match a
	// name starting with '$'.
	if len(name) > 0 && name[0] == '$' && len(filter) > 0 && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := cut(filter)
		if isHash(fl) {
			return true // [MQTT-4.7.1-2] '#' matches this level and all below.
		}
		nl, nrest, nmore := cut(name)
		// [MQTT-4.7.1-3] '+' matches exactly one level, which may be empty.
		if !isPlus(fl) && !bytes.Equal(fl, nl) {
			return false
		}
		switch {
		case !fmore && !nmore:
			return true
		case !nmore:
			// "sport/#" also matches the parent level "sport" [MQTT-4.7.1-2].
			return string(frest) == "#"
		case !fmore:
			return false
		}
		filter, name = frest, nrest
	}
}

// Covers reports whether every topic name matched by the filter inner is
// also matched by the filter outer, so that a subscription to inner can be
// authorized by a grant for outer. A topic name is a filter without
// wildcards, so for names Covers(f, name) == Match(f, name). Neither filter
// may be a shared subscription filter; both are assumed valid. Covers
// allocates nothing.
//
// Examples: Covers("a/#", "a/b/+") and Covers("a/+/c", "a/b/c") hold;
// Covers("a/+", "a/#") and Covers("+/x", "$SYS/x") do not.
func Covers(outer, inner []byte) bool {
	// vacuous reports whether the inner levels before the current one can
	// only form the empty name, which is invalid [MQTT-4.7.3-1]: true at the
	// first level and after a first level that is empty.
	for first, vacuous := true, true; ; first = false {
		ol, orest, omore := cut(outer)
		il, irest, imore := cut(inner)
		if first && isWild(ol) && len(il) > 0 && il[0] == '$' {
			return false // [MQTT-4.7.2-1]
		}
		switch {
		case isHash(ol):
			return true
		case isHash(il):
			// inner matches one or more levels here, and also the parent
			// unless that is the empty name; so "+/#" covers "#" and "/+/#"
			// covers "/#", but "a/+/#" does not cover "a/#".
			return vacuous && isPlus(ol) && omore && string(orest) == "#"
		case isPlus(ol):
			// '+' covers any single level, literal or '+'.
		case isPlus(il) || !bytes.Equal(ol, il):
			return false
		}
		switch {
		case !omore && !imore:
			return true
		case !imore:
			return string(orest) == "#" // "a/#" covers "a"
		case !omore:
			return false
		}
		vacuous = first && len(il) == 0
		outer, inner = orest, irest
	}
}

func isHash(level []byte) bool { return len(level) == 1 && level[0] == '#' }
func isPlus(level []byte) bool { return len(level) == 1 && level[0] == '+' }
