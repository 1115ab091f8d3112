package auth

import (
	"errors"
	"path"
	"strings"
	"unicode/utf8"
)

// errBadGlob reports a malformed Pattern key.
var errBadGlob = errors.New("malformed glob pattern (syntax as path.Match: '*', '?', '[...]', '\\' escapes)")

// validGlob reports whether pattern is a well-formed glob. The syntax is
// path.Match's, so path.Match does the checking.
func validGlob(pattern string) error {
	if _, err := path.Match(pattern, ""); err != nil {
		return errBadGlob
	}
	return nil
}

// globMatch reports whether name matches the glob pattern, which must be
// valid (see validGlob). The syntax is path.Match's, but because state store
// keys are flat, '*' matches any sequence of characters and '?' any single
// character, '/' included: "colors/*" matches "colors/red/dark".
//
// The code is path.Match from the Go standard library (BSD licence) with
// the '/' restrictions removed.
func globMatch(pattern, name string) bool {
Pattern:
	for len(pattern) > 0 {
		var star bool
		var chunk string
		star, chunk, pattern = scanChunk(pattern)
		if star && chunk == "" {
			return true // a trailing '*' matches the rest
		}
		// Look for a match at the current position.
		if t, ok := matchChunk(chunk, name); ok && (len(t) == 0 || len(pattern) > 0) {
			name = t
			continue
		}
		if star {
			// Look for a match skipping i+1 bytes.
			for i := 0; i < len(name); i++ {
				if t, ok := matchChunk(chunk, name[i+1:]); ok {
					// The last chunk must exhaust the name.
					if len(pattern) == 0 && len(t) > 0 {
						continue
					}
					name = t
					continue Pattern
				}
			}
		}
		return false
	}
	return len(name) == 0
}

// scanChunk gets the next segment of pattern, which is a non-star string
// possibly preceded by a star.
func scanChunk(pattern string) (star bool, chunk, rest string) {
	for len(pattern) > 0 && pattern[0] == '*' {
		pattern = pattern[1:]
		star = true
	}
	inrange := false
	for i := 0; i < len(pattern); i++ {
		switch pattern[i] {
		case '\\':
			if i+1 < len(pattern) {
				i++
			}
		case '[':
			inrange = true
		case ']':
			inrange = false
		case '*':
			if !inrange {
				return star, pattern[:i], pattern[i:]
			}
		}
	}
	return star, pattern, ""
}

// matchChunk checks whether chunk, made of literals, classes and '?' only,
// matches the beginning of s, and returns the rest of s if so.
func matchChunk(chunk, s string) (rest string, ok bool) {
	for len(chunk) > 0 {
		if len(s) == 0 {
			return "", false
		}
		switch chunk[0] {
		case '[':
			r, n := utf8.DecodeRuneInString(s)
			s = s[n:]
			var match bool
			if match, chunk, ok = matchClass(chunk[1:], r); !ok || !match {
				return "", false
			}
		case '?':
			_, n := utf8.DecodeRuneInString(s)
			s = s[n:]
			chunk = chunk[1:]
		case '\\':
			chunk = chunk[1:]
			if len(chunk) == 0 {
				return "", false
			}
			fallthrough
		default:
			if chunk[0] != s[0] {
				return "", false
			}
			s = s[1:]
			chunk = chunk[1:]
		}
	}
	return s, true
}

// matchClass matches r against the class that starts chunk (after its '['),
// returning whether r is in it, the chunk after the ']' and whether the
// class was well formed.
func matchClass(chunk string, r rune) (match bool, rest string, ok bool) {
	negated := strings.HasPrefix(chunk, "^")
	if negated {
		chunk = chunk[1:]
	}
	for nrange := 0; ; nrange++ {
		if len(chunk) > 0 && chunk[0] == ']' && nrange > 0 {
			return match != negated, chunk[1:], true
		}
		var lo, hi rune
		if lo, chunk, ok = getEsc(chunk); !ok {
			return false, "", false
		}
		hi = lo
		if chunk[0] == '-' {
			if hi, chunk, ok = getEsc(chunk[1:]); !ok {
				return false, "", false
			}
		}
		match = match || lo <= r && r <= hi
	}
}

// getEsc gets a possibly escaped character from a class.
func getEsc(chunk string) (r rune, rest string, ok bool) {
	if len(chunk) == 0 || chunk[0] == '-' || chunk[0] == ']' {
		return 0, "", false
	}
	if chunk[0] == '\\' {
		chunk = chunk[1:]
		if len(chunk) == 0 {
			return 0, "", false
		}
	}
	r, n := utf8.DecodeRuneInString(chunk)
	if r == utf8.RuneError && n == 1 {
		return 0, "", false
	}
	rest = chunk[n:]
	return r, rest, len(rest) > 0
}
