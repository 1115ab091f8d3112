package config

import (
	"encoding"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
)

// unknownField is a key of a document that its type has no field for.
type unknownField struct {
	path  string   // field path, e.g. spec.ports[0].tsl
	key   string   // the key as written
	known []string // the field names at that place, sorted
}

// unknownFields walks the document n along the Go type t and returns
// every key t has no field for, in document order (the YAML decoder
// stops at the first one).
func unknownFields(n ast.Node, t reflect.Type, path string, out []unknownField) []unknownField {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if custom(t) {
		return out
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := unwrap(n).(*ast.MappingNode)
		if !ok {
			return out // a type error, which the decoder reports
		}
		fields := yamlFields(t)
		for _, v := range m.Values {
			key := keyString(v)
			if key == "<<" { // a merge key
				continue
			}
			p := joinKey(path, key)
			ft, ok := fields[key]
			if !ok {
				out = append(out, unknownField{path: p, key: key, known: slices.Sorted(mapKeys(fields))})
				continue
			}
			out = unknownFields(v.Value, ft, p, out)
		}
	case reflect.Slice, reflect.Array:
		s, ok := unwrap(n).(*ast.SequenceNode)
		if !ok {
			return out
		}
		for i, v := range s.Values {
			out = unknownFields(v, t.Elem(), path+"["+strconv.Itoa(i)+"]", out)
		}
	case reflect.Map:
		m, ok := unwrap(n).(*ast.MappingNode)
		if !ok {
			return out
		}
		for _, v := range m.Values {
			out = unknownFields(v.Value, t.Elem(), joinKey(path, keyString(v)), out)
		}
	}
	return out
}

func mapKeys(m map[string]reflect.Type) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

var (
	bytesUnmarshaler     = reflect.TypeFor[yaml.BytesUnmarshaler]()
	interfaceUnmarshaler = reflect.TypeFor[yaml.InterfaceUnmarshaler]()
	textUnmarshaler      = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// custom reports whether t decodes itself, so its keys are its own.
func custom(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	for _, u := range []reflect.Type{bytesUnmarshaler, interfaceUnmarshaler, textUnmarshaler} {
		if t.Implements(u) || p.Implements(u) {
			return true
		}
	}
	return false
}

// yamlFields maps the YAML keys of struct t to their types, with inline
// structs' fields merged in, as the decoder sees them.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" { // as the decoder: json's tag when there is no yaml tag
			tag = f.Tag.Get("json")
		}
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if slices.Contains(strings.Split(opts, ","), "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			for k, v := range yamlFields(ft) {
				fields[k] = v
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields
}

// suggest returns the known name closest to key when it is near enough
// to be a typo (case differences, or a few letters: a third of the
// key's length, at most 3), else "".
func suggest(key string, known []string) string {
	best, bestD := "", 0
	limit := min(3, max(1, len(key)/3))
	lk := strings.ToLower(key)
	for _, k := range known {
		d := editDistance(lk, strings.ToLower(k))
		if d <= limit && (best == "" || d < bestD) {
			best, bestD = k, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance between a and b:
// insertions, deletions, substitutions and transpositions of adjacent
// bytes each cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 { // field names are short; a long key is no typo
		return max(len(a), len(b))
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
