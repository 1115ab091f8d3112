package packet

import "errors"

// ErrIncomplete is returned by ParseFixedHeader when b does not yet hold a
// whole fixed header. Read more bytes and call it again.
var ErrIncomplete = errors.New("packet: incomplete fixed header")

// ParseFixedHeader parses the fixed header at the start of b and returns it
// with its length n (2 to 5 bytes). It checks the packet type and its fixed
// flags but not the body: the caller must wait until len(b) >= n+h.Remaining
// and enforce its maximum packet size. It never allocates.
//
// It returns ErrIncomplete (and n == 0) when b is too short, and an *Error
// with MalformedPacket for an invalid header.
func ParseFixedHeader(b []byte) (h FixedHeader, n int, err error) {
	if len(b) == 0 {
		return h, 0, ErrIncomplete
	}
	h.Type, h.Flags = Type(b[0]>>4), b[0]&0x0F
	if err := checkFlags(h.Type, h.Flags); err != nil {
		return FixedHeader{}, 0, err
	}
	v, m := uvarint(b[1:])
	switch {
	case m == 0:
		return FixedHeader{}, 0, ErrIncomplete
	case m < 0:
		return FixedHeader{}, 0, errVarint
	}
	h.Remaining = int(v)
	return h, 1 + m, nil
}

// checkFlags validates the low nibble of the first byte for type t.
func checkFlags(t Type, flags byte) error {
	switch t {
	case 0:
		return errReservedType // [MQTT-2.1.3-1] type 0 is reserved
	case PUBLISH:
		if flags&0b0110 == 0b0110 {
			return errPublishQoS // [MQTT-3.3.1-4]
		}
		return nil
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		if flags != 0b0010 {
			return errFixedFlags // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]
		}
		return nil
	}
	if flags != 0 {
		return errFixedFlags // [MQTT-2.1.3-1]
	}
	return nil
}

// uvarint decodes a Variable Byte Integer (§1.5.5). It returns n == 0 if b
// ends before the integer does, and n == -1 if the integer is longer than
// four bytes or not minimally encoded.
func uvarint(b []byte) (v uint32, n int) {
	var shift uint
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0
		}
		c := b[i]
		v |= uint32(c&0x7F) << shift
		if c&0x80 == 0 {
			if c == 0 && i > 0 {
				return 0, -1 // [MQTT-1.5.5-1] minimum number of bytes
			}
			return v, i + 1
		}
		shift += 7
	}
	return 0, -1 // more than four bytes
}

// VarintLen returns the number of bytes AppendVarint uses for v.
func VarintLen(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	}
	return 4
}

// AppendVarint appends v as a Variable Byte Integer. v must not exceed
// MaxRemaining.
func AppendVarint(dst []byte, v uint32) []byte {
	for v >= 0x80 {
		dst = append(dst, byte(v)|0x80)
		v >>= 7
	}
	return append(dst, byte(v))
}

// appendFixedHeader appends the first byte and the remaining length.
func appendFixedHeader(dst []byte, t Type, flags byte, remaining int) []byte {
	dst = append(dst, byte(t)<<4|flags)
	return AppendVarint(dst, uint32(remaining))
}

// packetSize is the encoded length of a packet with a body of n bytes.
func packetSize(n int) int { return 1 + VarintLen(uint32(n)) + n }
