package packet

import (
	"errors"
	"fmt"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// pingreq and pingresp stand for the bodiless packets in the tables.
type (
	pingreq  struct{}
	pingresp struct{}
)

// errBodyLength reports a raw packet whose length disagrees with its
// remaining length.
var errBodyLength = &Error{MalformedPacket, "body length differs from remaining length"}

// decodeAny decodes one whole packet raw (fixed header included) as sent
// with protocol version v, the way a connection reader dispatches on type.
func decodeAny(v byte, raw []byte) (any, error) {
	h, n, err := ParseFixedHeader(raw)
	if err != nil {
		return nil, err
	}
	if len(raw)-n != h.Remaining {
		return nil, errBodyLength
	}
	b := raw[n:]
	switch h.Type {
	case CONNECT:
		p := new(Connect)
		return p, p.Decode(h.Flags, b)
	case CONNACK:
		p := new(Connack)
		return p, p.Decode(v, h.Flags, b)
	case PUBLISH:
		p := new(Publish)
		return p, p.Decode(v, h.Flags, b)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p := new(Ack)
		return p, p.Decode(h.Type, v, h.Flags, b)
	case SUBSCRIBE:
		p := new(Subscribe)
		return p, p.Decode(v, h.Flags, b)
	case SUBACK:
		p := new(Suback)
		return p, p.Decode(v, h.Flags, b)
	case UNSUBSCRIBE:
		p := new(Unsubscribe)
		return p, p.Decode(v, h.Flags, b)
	case UNSUBACK:
		p := new(Unsuback)
		return p, p.Decode(v, h.Flags, b)
	case PINGREQ, PINGRESP:
		if len(b) != 0 {
			return nil, errTrailing // [MQTT-3.12] no variable header or payload
		}
		if h.Type == PINGREQ {
			return &pingreq{}, nil
		}
		return &pingresp{}, nil
	case DISCONNECT:
		p := new(Disconnect)
		return p, p.Decode(v, h.Flags, b)
	case AUTH:
		p := new(Auth)
		return p, p.Decode(v, h.Flags, b)
	}
	return nil, fmt.Errorf("unknown type %d", h.Type)
}

// appendAny encodes pkt for version v and checks that Size agrees.
func appendAny(dst []byte, v byte, pkt any) ([]byte, error) {
	start := len(dst)
	var size int
	switch p := pkt.(type) {
	case *Connect:
		size, dst = p.Size(), p.Append(dst)
	case *Connack:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Publish:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Ack:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Subscribe:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Suback:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Unsubscribe:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Unsuback:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Disconnect:
		size, dst = p.Size(v), p.Append(dst, v)
	case *Auth:
		size, dst = p.Size(v), p.Append(dst, v)
	case *pingreq:
		size, dst = 2, AppendPingreq(dst)
	case *pingresp:
		size, dst = 2, AppendPingresp(dst)
	default:
		return dst, fmt.Errorf("unknown packet %T", pkt)
	}
	if got := len(dst) - start; got != size {
		return dst, fmt.Errorf("%T: Size() = %d, Append wrote %d bytes", pkt, size, got)
	}
	return dst, nil
}

// cmpOpts treats nil and empty slices alike: decoded empty strings alias
// the buffer and are non-nil.
var cmpOpts = cmp.Options{cmpopts.EquateEmpty()}

// ids returns a Properties.Present mask.
func ids(ids ...byte) uint64 {
	var m uint64
	for _, id := range ids {
		m |= 1 << id
	}
	return m
}

// codeOf is CodeOf that keeps non-packet errors visible in test output.
func codeOf(err error) (Code, error) {
	var pe *Error
	var c Code
	if err == nil || errors.As(err, &pe) || errors.As(err, &c) {
		return CodeOf(err), nil
	}
	return 0, err
}
