package tlsnet

import (
	"bytes"
	"crypto/tls"
	"reflect"
	"sync"
	"unsafe"
)

// crypto/tls keeps, per connection, the input buffers its handshake grew:
// the record buffer (rawInput: a record is read and decrypted in it), the
// reader of the last record's plaintext (input, a slice of rawInput's
// array) and the handshake message buffer (hand). With a Go client's
// ML-KEM key share they hold about 3.5 KiB after the handshake, a third of
// what an idle TLS connection costs, and crypto/tls offers no way to let
// them go. A parked connection has read everything (its reader checked
// that before parking), so ReleaseInput lets them go: when all three are
// empty it resets them to zero values, under the lock crypto/tls reads
// them under (the halfConn's mutex of the input side); crypto/tls grows
// them again on the next read, as for a new connection.
//
// The fields are found by name and type with reflection, once: a Go
// release whose tls.Conn differs (a renamed field, another type) makes
// the layout unknown (LayoutOK false), and nothing is released (the idle
// memory budgets of the broker's TLS and wsnet's wss then fail, which is
// how a Go upgrade tells, besides TestLayout).
var layout = func() (l struct {
	ok                          bool
	inMu, rawInput, input, hand uintptr // offsets in tls.Conn
}) {
	t := reflect.TypeFor[tls.Conn]()
	field := func(name string, typ reflect.Type) (uintptr, bool) {
		f, ok := t.FieldByName(name)
		if !ok || f.Type != typ || len(f.Index) != 1 {
			return 0, false
		}
		return f.Offset, true
	}
	in, ok := t.FieldByName("in")
	if !ok || len(in.Index) != 1 || in.Type.Kind() != reflect.Struct || in.Type.NumField() == 0 {
		return l
	}
	mu := in.Type.Field(0) // halfConn embeds its sync.Mutex first
	if !mu.Anonymous || mu.Type != reflect.TypeFor[sync.Mutex]() || mu.Offset != 0 {
		return l
	}
	l.inMu = in.Offset
	var ok1, ok2, ok3 bool
	l.rawInput, ok1 = field("rawInput", reflect.TypeFor[bytes.Buffer]())
	l.input, ok2 = field("input", reflect.TypeFor[bytes.Reader]())
	l.hand, ok3 = field("hand", reflect.TypeFor[bytes.Buffer]())
	l.ok = ok1 && ok2 && ok3
	return l
}()

// LayoutOK reports whether this Go's crypto/tls has the fields
// ReleaseInput and HoldsInput read.
func LayoutOK() bool { return layout.ok }

// input is crypto/tls's input state of one connection (layout's fields),
// locked: the caller calls unlock when done.
type input struct {
	mu   *sync.Mutex
	raw  *bytes.Buffer
	in   *bytes.Reader
	hand *bytes.Buffer
}

// lockInput locks tc's input side and returns its buffers; false without
// the layout.
func lockInput(tc *tls.Conn) (input, bool) {
	if !layout.ok {
		return input{}, false
	}
	p := unsafe.Pointer(tc)
	t := input{
		mu:   (*sync.Mutex)(unsafe.Add(p, layout.inMu)),
		raw:  (*bytes.Buffer)(unsafe.Add(p, layout.rawInput)),
		in:   (*bytes.Reader)(unsafe.Add(p, layout.input)),
		hand: (*bytes.Buffer)(unsafe.Add(p, layout.hand)),
	}
	t.mu.Lock()
	return t, true
}

func (t input) unlock() { t.mu.Unlock() }

// ReleaseInput lets crypto/tls's input buffers of tc go if they hold
// nothing; it reports whether it did. The caller owns the connection's
// reads (a parking reader): no tc.Read runs.
func ReleaseInput(tc *tls.Conn) bool {
	t, ok := lockInput(tc)
	if !ok {
		return false
	}
	defer t.unlock()
	if t.raw.Len() != 0 || t.in.Len() != 0 || t.hand.Len() != 0 {
		return false
	}
	*t.raw, *t.in, *t.hand = bytes.Buffer{}, bytes.Reader{}, bytes.Buffer{}
	return true
}

// HoldsInput reports whether crypto/tls may hold input of tc not yet
// returned by Read: a decrypted record's rest, or bytes of the next
// record. Without the layout it cannot tell, and says so. The caller is
// tc's reader, between reads.
func HoldsInput(tc *tls.Conn) bool {
	t, ok := lockInput(tc)
	if !ok {
		return true
	}
	defer t.unlock()
	return t.raw.Len() > 0 || t.in.Len() > 0
}

// InputCap is the capacity of crypto/tls's record and handshake buffers
// of tc (0 after ReleaseInput), or -1 without the layout: what a parked
// connection would keep without the release. For tests and diagnostics.
func InputCap(tc *tls.Conn) int {
	t, ok := lockInput(tc)
	if !ok {
		return -1
	}
	defer t.unlock()
	return t.raw.Cap() + t.hand.Cap()
}
