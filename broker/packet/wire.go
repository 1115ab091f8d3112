package packet

import (
	"bytes"
	"encoding/binary"
	"unicode/utf8"
)

// validUTF8 reports whether b is a well-formed MQTT UTF-8 string: valid
// UTF-8 (which excludes surrogates, [MQTT-1.5.4-1]) without U+0000
// [MQTT-1.5.4-2]. It does not allocate.
func validUTF8(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}

func readByte(b []byte) (byte, []byte, error) {
	if len(b) < 1 {
		return 0, b, errTruncated
	}
	return b[0], b[1:], nil
}

func readU16(b []byte) (uint16, []byte, error) {
	if len(b) < 2 {
		return 0, b, errTruncated
	}
	return binary.BigEndian.Uint16(b), b[2:], nil
}

func readU32(b []byte) (uint32, []byte, error) {
	if len(b) < 4 {
		return 0, b, errTruncated
	}
	return binary.BigEndian.Uint32(b), b[4:], nil
}

// readVarint reads a Variable Byte Integer inside a packet body.
func readVarint(b []byte) (uint32, []byte, error) {
	v, n := uvarint(b)
	switch {
	case n == 0:
		return 0, b, errTruncated
	case n < 0:
		return 0, b, errVarint
	}
	return v, b[n:], nil
}

// readBinary reads Binary Data (§1.5.6): a two-byte length and that many
// bytes. The result aliases b; its length is checked against b first.
func readBinary(b []byte) ([]byte, []byte, error) {
	if len(b) < 2 {
		return nil, b, errTruncated
	}
	n := int(binary.BigEndian.Uint16(b))
	if len(b)-2 < n {
		return nil, b, errTruncated
	}
	return b[2 : 2+n : 2+n], b[2+n:], nil
}

// readString reads a UTF-8 Encoded String (§1.5.4) and validates it.
func readString(b []byte) ([]byte, []byte, error) {
	s, rest, err := readBinary(b)
	if err != nil {
		return nil, b, err
	}
	if !validUTF8(s) {
		return nil, b, errUTF8 // [MQTT-1.5.4-1] [MQTT-1.5.4-2]
	}
	return s, rest, nil
}

func appendU16(dst []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(dst, v) }
func appendU32(dst []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(dst, v) }

// appendBinary appends a two-byte length and b. len(b) must not exceed
// 65535; callers validate lengths before encoding.
func appendBinary(dst []byte, b []byte) []byte {
	dst = appendU16(dst, uint16(len(b)))
	return append(dst, b...)
}

func boolBit(b bool, bit byte) byte {
	if b {
		return bit
	}
	return 0
}
