package packet

import "bytes"

// PUBLISH fixed-header flag bits (§3.3.1).
const (
	pubRetain = 0x01
	pubDup    = 0x08
)

// Decode decodes a PUBLISH body for protocol version v; flags is the low
// nibble of the fixed header. Topic, Payload and property values alias b
// and stay valid until b is reused.
func (p *Publish) Decode(v, flags byte, b []byte) error {
	*p = Publish{Props: p.Props}
	p.Props.Reset()
	p.Dup, p.QoS, p.Retain = flags&pubDup != 0, flags>>1&3, flags&pubRetain != 0
	if p.QoS == 3 {
		return errPublishQoS // [MQTT-3.3.1-4]
	}
	if p.Dup && p.QoS == 0 {
		return errDupQoS0 // [MQTT-3.3.1-2]
	}
	var err error
	if p.Topic, b, err = readString(b); err != nil {
		return err // [MQTT-3.3.2-1]
	}
	if bytes.IndexByte(p.Topic, '+') >= 0 || bytes.IndexByte(p.Topic, '#') >= 0 {
		return errTopicWildcard // [MQTT-3.3.2-2]
	}
	if p.QoS > 0 {
		if p.PacketID, b, err = readU16(b); err != nil {
			return err
		}
		if p.PacketID == 0 {
			return errPacketID // [MQTT-2.2.1-3]
		}
	}
	if v >= V5 {
		n, err := p.Props.decode(PUBLISH, b, false)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if len(p.Topic) == 0 && !p.Props.Has(PropTopicAlias) {
		return errTopicEmpty // [MQTT-4.7.3-1], 5.0 §3.3.2.1
	}
	p.Payload = b
	return nil
}

func (p *Publish) bodySize(v byte) int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v >= V5 {
		n += p.Props.size()
	}
	return n
}

// Size returns the encoded length of p for version v.
func (p *Publish) Size(v byte) int { return packetSize(p.bodySize(v)) }

// Append appends p encoded for version v. Props are written only for 5.0,
// PacketID only for QoS 1 and 2.
func (p *Publish) Append(dst []byte, v byte) []byte {
	flags := boolBit(p.Dup, pubDup) | (p.QoS&3)<<1 | boolBit(p.Retain, pubRetain)
	dst = appendFixedHeader(dst, PUBLISH, flags, p.bodySize(v))
	dst = appendBinary(dst, p.Topic)
	if p.QoS > 0 {
		dst = appendU16(dst, p.PacketID)
	}
	if v >= V5 {
		dst = p.Props.append(dst)
	}
	return append(dst, p.Payload...)
}

// ackFlags returns the fixed flags of an acknowledgement type.
func ackFlags(t Type) byte {
	if t == PUBREL {
		return 0b0010 // [MQTT-3.6.1-1]
	}
	return 0
}

// Decode decodes the body of a PUBACK, PUBREC, PUBREL or PUBCOMP (t) for
// version v. In 5.0 a body of 2 bytes means Success without properties and
// a body of 3 bytes a reason code without properties (§3.4.2.1).
func (a *Ack) Decode(t Type, v, flags byte, b []byte) error {
	*a = Ack{Type: t, Props: a.Props}
	a.Props.Reset()
	if t < PUBACK || t > PUBCOMP {
		return errReservedType
	}
	if flags != ackFlags(t) {
		return errFixedFlags // [MQTT-2.1.3-1] [MQTT-3.6.1-1]
	}
	var err error
	if a.PacketID, b, err = readU16(b); err != nil {
		return err
	}
	if a.PacketID == 0 {
		return errPacketID // [MQTT-2.2.1-3]
	}
	if len(b) == 0 {
		return nil
	}
	if v < V5 {
		return errTrailing
	}
	a.Code, b = Code(b[0]), b[1:]
	valid := &pubackCodes
	if t == PUBREL || t == PUBCOMP {
		valid = &pubrelCodes
	}
	if !valid.has(a.Code) {
		return errReasonCode // §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1
	}
	if len(b) == 0 {
		return nil
	}
	n, err := a.Props.decode(t, b, false)
	if err != nil {
		return err
	}
	if n != len(b) {
		return errTrailing
	}
	return nil
}

func (a *Ack) bodySize(v byte) int {
	if v < V5 {
		return 2
	}
	if n := a.Props.bodySize(); n > 0 {
		return 3 + VarintLen(uint32(n)) + n
	}
	if a.Code != Success {
		return 3
	}
	return 2
}

// Size returns the encoded length of a for version v.
func (a *Ack) Size(v byte) int { return packetSize(a.bodySize(v)) }

// Append appends a encoded for version v, using the shortest 5.0 form: no
// reason code if it is Success and there are no properties, no property
// length if there are no properties.
func (a *Ack) Append(dst []byte, v byte) []byte {
	n := a.bodySize(v)
	dst = appendFixedHeader(dst, a.Type, ackFlags(a.Type), n)
	dst = appendU16(dst, a.PacketID)
	if n == 2 {
		return dst
	}
	dst = append(dst, byte(a.Code))
	if n == 3 {
		return dst
	}
	return a.Props.append(dst)
}
