package broker

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"edgebroker/broker/packet"
)

// The saved encodings start with a version byte; the fields follow as
// unsigned varints, single bytes and length-prefixed byte strings.
//
//	message:  version=1, topic, payload, QoS, flags (bit i: property
//	          travelling[i] present; bits 0..3: payload format, content
//	          type, response topic, correlation data), the value of each
//	          present one in that order (a byte for payload format,
//	          else a byte string), n user properties × (key, value),
//	          expires (Unix ns, 0: never)
//	session:  version=2, id, owner, expiry, disconnected (Unix ns, 0: zero),
//	          n × subscription (filter, QoS, options: bit 0 no local,
//	          bit 1 retain as published, bits 2-3 retain handling, id),
//	          n × in-flight delivery, n × queued delivery, n × inbound
//	          QoS 2 packet identifier; version 3 adds the will: a byte 0
//	          (none) or 1, then its delay, its message expiry interval,
//	          a byte 1 if retained, and its
//	          message without its version byte
//	delivery: packet id, flags (bit 0 released, bit 1 retain), QoS,
//	          n × subscription identifier, message without its version
//	          byte unless released
//
// A session record of version 1 has no owner; it decodes with Owner "".
const (
	storedVersion  = 1 // of messages
	sessionVersion = 3 // of sessions; 1 and 2 are still read
)

// errStored is wrapped by every decoding error.
var errStored = errors.New("broker: bad saved record")

// MarshalBinary encodes m (encoding.BinaryMarshaler).
func (m *StoredMessage) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the encoding of m to b (encoding.BinaryAppender).
func (m *StoredMessage) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, storedVersion)
	return m.appendBody(b), nil
}

func (m *StoredMessage) appendBody(b []byte) []byte {
	b = appendBytes(b, m.Topic)
	b = appendBytes(b, m.Payload)
	b = append(b, m.QoS)
	var flags byte
	for i, id := range travelling {
		if m.Props.Has(id) {
			flags |= 1 << i
		}
	}
	b = append(b, flags)
	for i, id := range travelling {
		if flags&(1<<i) == 0 {
			continue
		}
		if num, str := travellingField(&m.Props, id); num != nil {
			b = append(b, *num)
		} else {
			b = appendBytes(b, *str)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(m.Props.User)))
	for _, u := range m.Props.User {
		b = appendBytes(b, u.Key)
		b = appendBytes(b, u.Value)
	}
	return binary.AppendUvarint(b, unixNano(m.Expires))
}

// UnmarshalBinary decodes what MarshalBinary encoded. m does not alias b.
func (m *StoredMessage) UnmarshalBinary(b []byte) error {
	d := decoder{b: append([]byte(nil), b...)}
	d.version()
	*m = StoredMessage{}
	d.message(m)
	return d.finish("message")
}

// MarshalBinary encodes s (encoding.BinaryMarshaler).
func (s *StoredSession) MarshalBinary() ([]byte, error) { return s.AppendBinary(nil) }

// AppendBinary appends the encoding of s to b (encoding.BinaryAppender).
func (s *StoredSession) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, sessionVersion)
	b = appendBytes(b, []byte(s.ID))
	b = appendBytes(b, []byte(s.Owner))
	b = binary.AppendUvarint(b, uint64(s.Expiry))
	b = binary.AppendUvarint(b, unixNano(s.Disconnected))
	b = binary.AppendUvarint(b, uint64(len(s.Subscriptions)))
	for _, sub := range s.Subscriptions {
		b = appendBytes(b, []byte(sub.Filter))
		opts := sub.RetainHandling << 2
		if sub.NoLocal {
			opts |= 1
		}
		if sub.RetainAsPublished {
			opts |= 2
		}
		b = append(b, sub.QoS, opts)
		b = binary.AppendUvarint(b, uint64(sub.ID))
	}
	for _, list := range [...][]StoredDelivery{s.Inflight, s.Queue} {
		b = binary.AppendUvarint(b, uint64(len(list)))
		for i := range list {
			b = list[i].appendTo(b)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(s.InboundQoS2)))
	for _, pid := range s.InboundQoS2 {
		b = binary.AppendUvarint(b, uint64(pid))
	}
	if s.Will == nil {
		return append(b, 0), nil
	}
	b = append(b, 1)
	b = binary.AppendUvarint(b, uint64(s.Will.Delay))
	b = binary.AppendUvarint(b, uint64(s.Will.Expiry))
	b = append(b, b2u(s.Will.Retain))
	return s.Will.Message.appendBody(b), nil
}

func (sd *StoredDelivery) appendTo(b []byte) []byte {
	b = binary.AppendUvarint(b, uint64(sd.PacketID))
	var flags byte
	if sd.Released {
		flags |= 1
	}
	if sd.Retain {
		flags |= 2
	}
	b = append(b, flags, sd.QoS)
	b = binary.AppendUvarint(b, uint64(len(sd.SubIDs)))
	for _, id := range sd.SubIDs {
		b = binary.AppendUvarint(b, uint64(id))
	}
	if sd.Released {
		return b
	}
	return sd.Message.appendBody(b)
}

// UnmarshalBinary decodes what MarshalBinary encoded. s does not alias b.
func (s *StoredSession) UnmarshalBinary(b []byte) error {
	d := decoder{b: append([]byte(nil), b...)}
	v := d.byte()
	if d.err == nil && (v < 1 || v > sessionVersion) {
		d.fail("session version %d", v)
	}
	*s = StoredSession{}
	s.ID = string(d.bytes())
	if v >= 2 {
		s.Owner = string(d.bytes())
	}
	s.Expiry = d.u32()
	s.Disconnected = d.time()
	if n := d.count(4); n > 0 {
		s.Subscriptions = make([]StoredSubscription, n)
		for i := range s.Subscriptions {
			sub := &s.Subscriptions[i]
			sub.Filter = string(d.bytes())
			sub.QoS = d.qos()
			opts := d.byte()
			if opts>>4 != 0 || opts>>2 > 2 {
				d.fail("subscription options %#x", opts)
			}
			sub.NoLocal, sub.RetainAsPublished, sub.RetainHandling = opts&1 != 0, opts&2 != 0, opts>>2
			sub.ID = d.u32()
		}
	}
	s.Inflight = d.deliveries()
	s.Queue = d.deliveries()
	if n := d.count(1); n > 0 {
		s.InboundQoS2 = make([]uint16, n)
		for i := range s.InboundQoS2 {
			s.InboundQoS2[i] = d.u16()
		}
	}
	if v >= 3 && d.flag("will") {
		w := &StoredWill{Delay: d.u32(), Expiry: d.u32()}
		w.Retain = d.flag("will retain")
		d.message(&w.Message)
		s.Will = w
	}
	return d.finish("session")
}

// flag reads a byte that must be 0 or 1.
func (d *decoder) flag(what string) bool {
	switch b := d.byte(); b {
	case 0, 1:
		return b == 1
	default:
		d.fail("%s flag %d", what, b)
		return false
	}
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func unixNano(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.UnixNano())
}

// decoder reads the saved encodings; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errStored}, args...)...)
	}
	d.b = nil
}

func (d *decoder) finish(what string) error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the %s", len(d.b), what)
	}
	return d.err
}

func (d *decoder) version() {
	if v := d.byte(); d.err == nil && v != storedVersion {
		d.fail("version %d", v)
	}
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u32() uint32 {
	v := d.uvarint()
	if v > 0xFFFFFFFF {
		d.fail("%d out of range", v)
	}
	return uint32(v)
}

func (d *decoder) u16() uint16 {
	v := d.uvarint()
	if v > 0xFFFF {
		d.fail("%d out of range", v)
	}
	return uint16(v)
}

func (d *decoder) qos() byte {
	q := d.byte()
	if q > 2 {
		d.fail("QoS %d", q)
	}
	return q
}

// count reads a list length; every element takes at least min bytes, so
// a count the rest cannot hold is an error, not a huge allocation.
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail("count %d exceeds the record", n)
		return 0
	}
	return int(n)
}

// bytes reads a length-prefixed string; nil when empty. It aliases d.b.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail("length %d exceeds the record", n)
		return nil
	}
	if n == 0 {
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) time() time.Time {
	ns := d.uvarint()
	if ns == 0 || ns > 1<<63-1 {
		if ns != 0 {
			d.fail("time %d out of range", ns)
		}
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

func (d *decoder) message(m *StoredMessage) {
	m.Topic = d.bytes()
	m.Payload = d.bytes()
	m.QoS = d.qos()
	flags := d.byte()
	if flags>>len(travelling) != 0 {
		d.fail("property flags %#x", flags)
	}
	for i, id := range travelling {
		if flags&(1<<i) == 0 {
			continue
		}
		m.Props.Set(id)
		if num, str := travellingField(&m.Props, id); num != nil {
			*num = d.byte()
		} else {
			*str = d.bytes()
		}
	}
	if n := d.count(2); n > 0 {
		m.Props.User = make([]packet.UserProperty, n)
		for i := range m.Props.User {
			m.Props.User[i] = packet.UserProperty{Key: d.bytes(), Value: d.bytes()}
		}
	}
	m.Expires = d.time()
}

func (d *decoder) deliveries() []StoredDelivery {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	list := make([]StoredDelivery, n)
	for i := range list {
		sd := &list[i]
		sd.PacketID = d.u16()
		flags := d.byte()
		if flags>>2 != 0 {
			d.fail("delivery flags %#x", flags)
		}
		sd.Released, sd.Retain = flags&1 != 0, flags&2 != 0
		sd.QoS = d.qos()
		if k := d.count(1); k > 0 {
			sd.SubIDs = make([]uint32, k)
			for j := range sd.SubIDs {
				sd.SubIDs[j] = d.u32()
			}
		}
		if !sd.Released {
			d.message(&sd.Message)
		}
		if d.err != nil {
			return nil
		}
	}
	return list
}
