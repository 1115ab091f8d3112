package topic

import (
	"bytes"
	"testing"
)

// FuzzFilter checks properties relating ValidName, ValidFilter, ParseShared,
// Match, Covers, Tree and Retained on arbitrary input.
func FuzzFilter(f *testing.F) {
	for _, tt := range matchTests {
		f.Add(tt.filter, tt.name, tt.filter)
	}
	for _, tt := range coverTests {
		f.Add(tt.outer, tt.inner, tt.inner)
	}
	for _, tt := range validTests {
		f.Add(tt.in, tt.in, "#")
	}
	f.Fuzz(func(t *testing.T, filter, name, other string) {
		fb, nb, ob := []byte(filter), []byte(name), []byte(other)
		// Nothing panics on invalid input.
		Match(fb, nb)
		Covers(fb, ob)

		group, sf, shared := ParseShared(fb)
		if shared && !bytes.Equal(fb, []byte("$share/"+string(group)+"/"+string(sf))) {
			t.Errorf("ParseShared(%q) = %q, %q does not join back", fb, group, sf)
		}
		filterOK := ValidFilter(fb) == nil
		nameOK := ValidName(nb) == nil
		if nameOK && !bytes.HasPrefix(nb, []byte("$share/")) && ValidFilter(nb) != nil {
			t.Errorf("ValidName(%q) ok but ValidFilter: %v", nb, ValidFilter(nb))
		}
		if filterOK && shared {
			checkShared(t, fb, sf, nb, nameOK)
		}
		if !filterOK || shared {
			return
		}
		if !Covers(fb, fb) {
			t.Errorf("Covers(%q, %[1]q): got false", fb)
		}
		if nameOK {
			m := Match(fb, nb)
			if c := Covers(fb, nb); m != c {
				t.Errorf("Match(%q, %q) = %v, Covers = %v", fb, nb, m, c)
			}
			checkIndexes(t, fb, nb, m)
		}
		// Covers is sound: what the inner filter matches, outer matches.
		if ValidFilter(ob) == nil && nameOK && Covers(fb, ob) && Match(ob, nb) && !Match(fb, nb) {
			t.Errorf("Covers(%q, %q) but %q matches only the inner filter", fb, ob, nb)
		}
	})
}

// checkIndexes checks that Tree and Retained agree with Match(f, n) == m.
func checkIndexes(t *testing.T, f, n []byte, m bool) {
	tr := NewTree[int, int]()
	tr.Subscribe(f, 1, 2)
	if got := len(tr.Match(n, nil)); got != b2i(m) {
		t.Errorf("Tree with %q: Match(%q) returned %d subscriptions, want %d", f, n, got, b2i(m))
	}
	if !tr.Unsubscribe(f, 1) || tr.Len() != 0 || !tr.root.empty() {
		t.Errorf("Tree with %q: Unsubscribe did not empty the tree", f)
	}
	var r Retained[int]
	r.Set(n, 1)
	got := 0
	r.Match(f, func(topic []byte, v int) bool {
		if !bytes.Equal(topic, n) || v != 1 {
			t.Errorf("Retained with %q: Match(%q) visited %q=%d", n, f, topic, v)
		}
		got++
		return true
	})
	if got != b2i(m) {
		t.Errorf("Retained with %q: Match(%q) visited %d, want %d", n, f, got, b2i(m))
	}
	if _, ok := r.Delete(n); !ok || r.Len() != 0 || r.root.children != nil {
		t.Errorf("Retained with %q: Delete did not empty the index", n)
	}
}

// checkShared checks that a shared subscription matches like its filter.
func checkShared(t *testing.T, full, f, n []byte, nameOK bool) {
	// The filter part is taken literally: "$share/g/$share/x" is valid.
	if validWildcards(f) != nil {
		t.Errorf("ValidFilter(%q) ok but not the wildcards of %q", full, f)
	}
	if !nameOK {
		return
	}
	tr := NewTree[int, int]()
	tr.Subscribe(full, 1, 2)
	got := tr.Match(n, nil)
	if len(got) != b2i(Match(f, n)) || (len(got) == 1 && !got[0].Shared()) {
		t.Errorf("Tree with %q: Match(%q) = %+v", full, n, got)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
