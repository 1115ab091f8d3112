package packet

// Decode decodes a DISCONNECT body for version v. A 3.1.1 DISCONNECT is
// empty; in 5.0 an empty body means NormalDisconnection and a 1-byte body a
// reason code without properties (§3.14.2.1).
func (d *Disconnect) Decode(v, flags byte, b []byte) error {
	*d = Disconnect{Props: d.Props}
	d.Props.Reset()
	if flags != 0 {
		return errFixedFlags // [MQTT-2.1.3-1]
	}
	if v < V5 && len(b) != 0 {
		return errTrailing // 3.1.1 §3.14: no variable header or payload
	}
	return decodeCodeProps(DISCONNECT, &d.Code, &d.Props, b, &disconnectCode)
}

// decodeCodeProps decodes the optional reason code and properties shared
// by DISCONNECT and AUTH.
func decodeCodeProps(t Type, c *Code, p *Properties, b []byte, valid *codeSet) error {
	if len(b) == 0 {
		return nil
	}
	*c = Code(b[0])
	if !valid.has(*c) {
		return errReasonCode // §3.14.2.1, §3.15.2.1
	}
	if len(b) == 1 {
		return nil
	}
	n, err := p.decode(t, b[1:], false)
	if err != nil {
		return err
	}
	if 1+n != len(b) {
		return errTrailing
	}
	return nil
}

// codePropsSize is the shortest body for a reason code and properties.
func codePropsSize(c Code, p *Properties) int {
	if n := p.bodySize(); n > 0 {
		return 1 + VarintLen(uint32(n)) + n
	}
	if c != Success {
		return 1
	}
	return 0
}

func appendCodeProps(dst []byte, n int, c Code, p *Properties) []byte {
	if n == 0 {
		return dst
	}
	dst = append(dst, byte(c))
	if n == 1 {
		return dst
	}
	return p.append(dst)
}

func (d *Disconnect) bodySize(v byte) int {
	if v < V5 {
		return 0
	}
	return codePropsSize(d.Code, &d.Props)
}

// Size returns the encoded length of d for version v.
func (d *Disconnect) Size(v byte) int { return packetSize(d.bodySize(v)) }

// Append appends d encoded for version v in its shortest form.
func (d *Disconnect) Append(dst []byte, v byte) []byte {
	n := d.bodySize(v)
	dst = appendFixedHeader(dst, DISCONNECT, 0, n)
	return appendCodeProps(dst, n, d.Code, &d.Props)
}

// Decode decodes an AUTH body. AUTH exists only in 5.0; an empty body
// means Success without properties (§3.15.2.1).
func (a *Auth) Decode(v, flags byte, b []byte) error {
	*a = Auth{Props: a.Props}
	a.Props.Reset()
	if v < V5 {
		return errAuthV3 // 5.0 §3.15: AUTH is new in 5.0
	}
	if flags != 0 {
		return errFixedFlags // [MQTT-3.15.1-1]
	}
	return decodeCodeProps(AUTH, &a.Code, &a.Props, b, &authCodes)
}

// Size returns the encoded length of a; v is accepted for symmetry and
// the packet is always encoded in its 5.0 form.
func (a *Auth) Size(v byte) int { return packetSize(codePropsSize(a.Code, &a.Props)) }

// Append appends a in its shortest 5.0 form.
func (a *Auth) Append(dst []byte, v byte) []byte {
	n := codePropsSize(a.Code, &a.Props)
	dst = appendFixedHeader(dst, AUTH, 0, n)
	return appendCodeProps(dst, n, a.Code, &a.Props)
}

// AppendPingreq appends a PINGREQ packet.
func AppendPingreq(dst []byte) []byte { return append(dst, byte(PINGREQ)<<4, 0) }

// AppendPingresp appends a PINGRESP packet.
func AppendPingresp(dst []byte) []byte { return append(dst, byte(PINGRESP)<<4, 0) }
