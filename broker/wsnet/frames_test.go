package wsnet

import (
	"encoding/binary"
	"io"
)

// The client side of RFC 6455 framing, for the tests: frames as a
// browser or paho sends them, written byte for byte.

// Opcodes for the tests.
const (
	OpContinuation = opContinuation
	OpText         = opText
	OpBinary       = opBinary
	OpClose        = opClose
	OpPing         = opPing
	OpPong         = opPong
)

// ClientFrame encodes one client frame, masked with a fixed key unless
// unmasked is set.
func ClientFrame(fin bool, op byte, payload []byte, unmasked bool) []byte {
	b := []byte{op, 0}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b[1] = byte(n)
	case n <= 0xffff:
		b[1] = 126
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b[1] = 127
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if unmasked {
		return append(b, payload...)
	}
	mask := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	b[1] |= 0x80
	b = append(b, mask[:]...)
	for i, c := range payload {
		b = append(b, c^mask[i%4])
	}
	return b
}

// ReadServerFrame reads one frame the server sent; a server never masks.
func ReadServerFrame(r io.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [10]byte
	if _, err = io.ReadFull(r, h[:2]); err != nil {
		return
	}
	if h[1]&0x80 != 0 {
		return false, 0, nil, io.ErrUnexpectedEOF // a masked server frame
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		if _, err = io.ReadFull(r, h[2:4]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 127:
		if _, err = io.ReadFull(r, h[2:10]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(h[2:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(r, payload)
	return h[0]&0x80 != 0, h[0] & 0x0f, payload, err
}
