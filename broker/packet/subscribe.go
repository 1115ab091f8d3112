package packet

// Subscription Options bits (§3.8.3.1).
const (
	subNoLocal           = 0x04
	subRetainAsPublished = 0x08
)

// Decode decodes a SUBSCRIBE body for version v. Filters alias b; they are
// checked for UTF-8 only, filter syntax is left to the topic package.
func (s *Subscribe) Decode(v, flags byte, b []byte) error {
	*s = Subscribe{Props: s.Props, Filters: s.Filters[:0]}
	s.Props.Reset()
	if flags != 0b0010 {
		return errFixedFlags // [MQTT-3.8.1-1]
	}
	var err error
	if s.PacketID, b, err = readPacketID(b); err != nil {
		return err
	}
	if v >= V5 {
		n, err := s.Props.decode(SUBSCRIBE, b, false)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if len(b) == 0 {
		return errNoFilters // [MQTT-3.8.3-2]
	}
	for len(b) > 0 {
		var sub Subscription
		if sub.Filter, b, err = readString(b); err != nil {
			return err // [MQTT-3.8.3-1]
		}
		var o byte
		if o, b, err = readByte(b); err != nil {
			return err
		}
		if err := sub.setOptions(v, o); err != nil {
			return err
		}
		s.Filters = append(s.Filters, sub)
	}
	return nil
}

// setOptions checks and unpacks a Subscription Options byte.
func (sub *Subscription) setOptions(v, o byte) error {
	if v < V5 && o&^3 != 0 || o&0xC0 != 0 {
		return errSubOptions // 3.1.1 [MQTT-3.8.3-4], 5.0 [MQTT-3.8.3-5]
	}
	sub.QoS = o & 3
	if sub.QoS == 3 {
		return errSubQoS // [MQTT-3-8.3-4]
	}
	sub.NoLocal = o&subNoLocal != 0
	sub.RetainAsPublished = o&subRetainAsPublished != 0
	sub.RetainHandling = o >> 4 & 3
	if sub.RetainHandling == 3 {
		return errRetainHandling // §3.8.3.1
	}
	return nil
}

func (sub *Subscription) options(v byte) byte {
	o := sub.QoS & 3
	if v >= V5 {
		o |= boolBit(sub.NoLocal, subNoLocal) |
			boolBit(sub.RetainAsPublished, subRetainAsPublished) |
			(sub.RetainHandling&3)<<4
	}
	return o
}

// readPacketID reads a packet identifier, which must be non-zero.
func readPacketID(b []byte) (uint16, []byte, error) {
	id, b, err := readU16(b)
	if err == nil && id == 0 {
		err = errPacketID // [MQTT-2.2.1-3]
	}
	return id, b, err
}

func (s *Subscribe) bodySize(v byte) int {
	n := 2
	if v >= V5 {
		n += s.Props.size()
	}
	for i := range s.Filters {
		n += 2 + len(s.Filters[i].Filter) + 1
	}
	return n
}

// Size returns the encoded length of s for version v.
func (s *Subscribe) Size(v byte) int { return packetSize(s.bodySize(v)) }

// Append appends s encoded for version v. The 5.0 options are dropped for
// 3.1.1.
func (s *Subscribe) Append(dst []byte, v byte) []byte {
	dst = appendFixedHeader(dst, SUBSCRIBE, 0b0010, s.bodySize(v))
	dst = appendU16(dst, s.PacketID)
	if v >= V5 {
		dst = s.Props.append(dst)
	}
	for i := range s.Filters {
		dst = appendBinary(dst, s.Filters[i].Filter)
		dst = append(dst, s.Filters[i].options(v))
	}
	return dst
}

// decodeCodes decodes the reason code list of a SUBACK or UNSUBACK.
func decodeCodes(dst []Code, b []byte, valid *codeSet) ([]Code, error) {
	if len(b) == 0 {
		return dst, errNoCodes // [MQTT-3.9.3-1] [MQTT-3.11.3-1]
	}
	for _, c := range b {
		if !valid.has(Code(c)) {
			return dst, errReasonCode
		}
		dst = append(dst, Code(c))
	}
	return dst, nil
}

func appendCodes(dst []byte, codes []Code) []byte {
	for _, c := range codes {
		dst = append(dst, byte(c))
	}
	return dst
}

// Decode decodes a SUBACK body for version v.
func (s *Suback) Decode(v, flags byte, b []byte) error {
	*s = Suback{Props: s.Props, Codes: s.Codes[:0]}
	s.Props.Reset()
	if flags != 0 {
		return errFixedFlags // [MQTT-2.1.3-1]
	}
	var err error
	if s.PacketID, b, err = readPacketID(b); err != nil {
		return err
	}
	valid := &subackCodesV3
	if v >= V5 {
		n, err := s.Props.decode(SUBACK, b, false)
		if err != nil {
			return err
		}
		b, valid = b[n:], &subackCodes
	}
	s.Codes, err = decodeCodes(s.Codes, b, valid)
	return err
}

func (s *Suback) bodySize(v byte) int {
	n := 2 + len(s.Codes)
	if v >= V5 {
		n += s.Props.size()
	}
	return n
}

// Size returns the encoded length of s for version v.
func (s *Suback) Size(v byte) int { return packetSize(s.bodySize(v)) }

// Append appends s encoded for version v.
func (s *Suback) Append(dst []byte, v byte) []byte {
	dst = appendFixedHeader(dst, SUBACK, 0, s.bodySize(v))
	dst = appendU16(dst, s.PacketID)
	if v >= V5 {
		dst = s.Props.append(dst)
	}
	return appendCodes(dst, s.Codes)
}

// Decode decodes an UNSUBSCRIBE body for version v. Filters alias b.
func (u *Unsubscribe) Decode(v, flags byte, b []byte) error {
	*u = Unsubscribe{Props: u.Props, Filters: u.Filters[:0]}
	u.Props.Reset()
	if flags != 0b0010 {
		return errFixedFlags // [MQTT-3.10.1-1]
	}
	var err error
	if u.PacketID, b, err = readPacketID(b); err != nil {
		return err
	}
	if v >= V5 {
		n, err := u.Props.decode(UNSUBSCRIBE, b, false)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	if len(b) == 0 {
		return errNoFilters // [MQTT-3.10.3-2]
	}
	for len(b) > 0 {
		var f []byte
		if f, b, err = readString(b); err != nil {
			return err // [MQTT-3.10.3-1]
		}
		u.Filters = append(u.Filters, f)
	}
	return nil
}

func (u *Unsubscribe) bodySize(v byte) int {
	n := 2
	if v >= V5 {
		n += u.Props.size()
	}
	for _, f := range u.Filters {
		n += 2 + len(f)
	}
	return n
}

// Size returns the encoded length of u for version v.
func (u *Unsubscribe) Size(v byte) int { return packetSize(u.bodySize(v)) }

// Append appends u encoded for version v.
func (u *Unsubscribe) Append(dst []byte, v byte) []byte {
	dst = appendFixedHeader(dst, UNSUBSCRIBE, 0b0010, u.bodySize(v))
	dst = appendU16(dst, u.PacketID)
	if v >= V5 {
		dst = u.Props.append(dst)
	}
	for _, f := range u.Filters {
		dst = appendBinary(dst, f)
	}
	return dst
}

// Decode decodes an UNSUBACK body for version v. A 3.1.1 UNSUBACK holds
// only the packet identifier.
func (u *Unsuback) Decode(v, flags byte, b []byte) error {
	*u = Unsuback{Props: u.Props, Codes: u.Codes[:0]}
	u.Props.Reset()
	if flags != 0 {
		return errFixedFlags // [MQTT-2.1.3-1]
	}
	var err error
	if u.PacketID, b, err = readPacketID(b); err != nil {
		return err
	}
	if v < V5 {
		if len(b) != 0 {
			return errTrailing
		}
		return nil
	}
	n, err := u.Props.decode(UNSUBACK, b, false)
	if err != nil {
		return err
	}
	u.Codes, err = decodeCodes(u.Codes, b[n:], &unsubackCodes)
	return err
}

func (u *Unsuback) bodySize(v byte) int {
	if v < V5 {
		return 2
	}
	return 2 + u.Props.size() + len(u.Codes)
}

// Size returns the encoded length of u for version v.
func (u *Unsuback) Size(v byte) int { return packetSize(u.bodySize(v)) }

// Append appends u encoded for version v; Props and Codes only for 5.0.
func (u *Unsuback) Append(dst []byte, v byte) []byte {
	dst = appendFixedHeader(dst, UNSUBACK, 0, u.bodySize(v))
	dst = appendU16(dst, u.PacketID)
	if v < V5 {
		return dst
	}
	dst = u.Props.append(dst)
	return appendCodes(dst, u.Codes)
}
