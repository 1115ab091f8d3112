package broker

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
// that before parking), so the broker lets them go itself: when all three
// are empty it resets them to zero values, under the lock crypto/tls
// reads them under (the halfConn's mutex of the input side); crypto/tls
// grows them again on the next read, as for a new connection.
//
// The fields are found by name and type with reflection, once: a Go
// release whose tls.Conn differs (a renamed field, another type) makes
// tlsLayout.ok false, and nothing is released (TestIdleTLSConnMemory's
// budget then fails, which is how a Go upgrade tells).
var tlsLayout = func() (l struct {
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

// tlsInput is crypto/tls's input state of one connection (tlsLayout's
// fields), locked: the caller calls unlock when done.
type tlsInput struct {
	mu   *sync.Mutex
	raw  *bytes.Buffer
	in   *bytes.Reader
	hand *bytes.Buffer
}

// lockTLSInput locks tc's input side and returns its buffers; false
// without the layout.
func lockTLSInput(tc *tls.Conn) (tlsInput, bool) {
	if !tlsLayout.ok {
		return tlsInput{}, false
	}
	p := unsafe.Pointer(tc)
	t := tlsInput{
		mu:   (*sync.Mutex)(unsafe.Add(p, tlsLayout.inMu)),
		raw:  (*bytes.Buffer)(unsafe.Add(p, tlsLayout.rawInput)),
		in:   (*bytes.Reader)(unsafe.Add(p, tlsLayout.input)),
		hand: (*bytes.Buffer)(unsafe.Add(p, tlsLayout.hand)),
	}
	t.mu.Lock()
	return t, true
}

func (t tlsInput) unlock() { t.mu.Unlock() }

// releaseTLSInput lets crypto/tls's input buffers of tc go if they hold
// nothing (see tlsLayout); it reports whether it did. The caller owns
// the connection's reads (a parking reader).
func releaseTLSInput(tc *tls.Conn) bool {
	t, ok := lockTLSInput(tc)
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

// tlsHoldsInput reports whether crypto/tls may hold input of tc not yet
// returned by Read: a decrypted record's rest, or bytes of the next
// record. Without the layout it cannot tell, and says so. The caller is
// tc's reader.
func tlsHoldsInput(tc *tls.Conn) bool {
	t, ok := lockTLSInput(tc)
	if !ok {
		return true
	}
	defer t.unlock()
	return t.raw.Len() > 0 || t.in.Len() > 0
}

// releaseTLS lets a parking TLS connection's crypto/tls input buffers go.
func (c *conn) releaseTLS() {
	if c.tlsSocket() == nil {
		return
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		releaseTLSInput(tc)
	}
}
