package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// Error is one problem in one configuration document. Its text names the
// place, the resource, the field and what is wrong:
//
//	listeners.yaml:14: BrokerListener/lb: spec.ports[1].port: 18883 already used by BrokerListener/default
type Error struct {
	File string // file name as given to Load or Parse; "" for resources built in code
	Line int    // 1-based line of the field (or of its nearest parent); 0 if unknown
	Kind string // resource kind; "" if the document has none
	Name string // metadata.name
	Path string // field path inside the document, e.g. spec.ports[1].port
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteString(":" + strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Kind != "" {
		b.WriteString(e.Kind)
		if e.Name != "" {
			b.WriteString("/" + e.Name)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration, ordered by file and
// line. Load, Parse and Validate return it (as error) when not empty.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find each *Error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// report collects errors while parsing or validating.
type report struct{ errs Errors }

// hasObject is what report.add needs of a resource.
type hasObject interface{ object() *Object }

// add records a problem at path inside resource r.
func (rp *report) add(r hasObject, path, format string, args ...any) {
	o := r.object()
	rp.errs = append(rp.errs, &Error{
		File: o.src.file, Line: o.line(path),
		Kind: o.Kind, Name: o.Metadata.Name,
		Path: path, Msg: fmt.Sprintf(format, args...),
	})
}

func (rp *report) err() error {
	if len(rp.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(rp.errs, func(a, b *Error) int {
		return cmp.Or(strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return rp.errs
}

// splitPath cuts "spec.ports[1].tls" into "spec", "ports", "1", "tls" and
// "data[tls.crt]" into "data", "tls.crt".
func splitPath(path string) []string {
	var segs []string
	for path != "" {
		switch path[0] {
		case '.':
			path = path[1:]
		case '[':
			end := strings.IndexByte(path, ']')
			if end < 0 {
				return append(segs, path[1:])
			}
			segs = append(segs, path[1:end])
			path = path[end+1:]
		default:
			end := strings.IndexAny(path, ".[")
			if end < 0 {
				end = len(path)
			}
			segs = append(segs, path[:end])
			path = path[end:]
		}
	}
	return segs
}

// child returns the node under n at seg and the line that names it.
func child(n ast.Node, seg string) (ast.Node, int) {
	switch n := unwrap(n).(type) {
	case *ast.MappingNode:
		for _, v := range n.Values {
			if keyString(v) == seg {
				return v.Value, v.Key.GetToken().Position.Line
			}
		}
	case *ast.SequenceNode:
		i, err := strconv.Atoi(seg)
		if err == nil && i >= 0 && i < len(n.Values) && n.Values[i] != nil {
			return n.Values[i], tokenLine(n.Values[i])
		}
	}
	return nil, 0
}

// findPath returns the field path of the key or value whose token is tk.
func findPath(n ast.Node, prefix string, line, col int) (string, bool) {
	at := func(m ast.Node) bool {
		if m == nil || m.GetToken() == nil {
			return false
		}
		p := m.GetToken().Position
		return p.Line == line && p.Column == col
	}
	switch n := unwrap(n).(type) {
	case *ast.MappingNode:
		for _, v := range n.Values {
			p := joinKey(prefix, keyString(v))
			if at(v.Key) || at(v.Value) {
				return p, true
			}
			if got, ok := findPath(v.Value, p, line, col); ok {
				return got, true
			}
		}
	case *ast.SequenceNode:
		for i, v := range n.Values {
			p := prefix + "[" + strconv.Itoa(i) + "]"
			if at(v) {
				return p, true
			}
			if got, ok := findPath(v, p, line, col); ok {
				return got, true
			}
		}
	}
	return "", false
}

func joinKey(prefix, key string) string {
	if strings.ContainsAny(key, ".[]") || prefix != "" && isMapOfValues(prefix) {
		return prefix + "[" + key + "]"
	}
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

// isMapOfValues reports whether the path ends in a free-form map whose
// keys are data rather than field names (labels, data, attributes...).
func isMapOfValues(path string) bool {
	segs := splitPath(path)
	switch segs[len(segs)-1] {
	case "data", "stringData", "binaryData", "labels", "annotations",
		"headers", "authorizationAttributes", "userAttributes":
		return true
	}
	return false
}

func unwrap(n ast.Node) ast.Node {
	for {
		switch t := n.(type) {
		case *ast.TagNode:
			n = t.Value
		case *ast.AnchorNode:
			n = t.Value
		case *ast.DocumentNode:
			n = t.Body
		default:
			return n
		}
	}
}

func keyString(v *ast.MappingValueNode) string {
	if v == nil || v.Key == nil {
		return ""
	}
	if s, ok := unwrap(v.Key).(*ast.StringNode); ok {
		return s.Value
	}
	return v.Key.String()
}

func tokenLine(n ast.Node) int {
	if n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}
