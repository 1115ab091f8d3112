package packet

import "bytes"

// CONNECT flag bits (§3.1.2.3).
const (
	connReserved   = 0x01
	connCleanStart = 0x02
	connWill       = 0x04
	connWillRetain = 0x20
	connPassword   = 0x40
	connUsername   = 0x80
)

// bridgeBit marks the protocol level of a bridge's CONNECT (mosquitto's
// try_private: 0x83 for 3.1, 0x84 for 3.1.1), which mosquitto accepts;
// the broker treats such a client as a broker (see Connect.Bridge).
const bridgeBit = 0x80

var (
	nameMQTT   = []byte("MQTT")
	nameMQIsdp = []byte("MQIsdp")
)

// Decode decodes a CONNECT body (the bytes after the fixed header) into c.
// Byte slices in c alias b. The protocol version is known, and c.Version
// set, before any later check fails, so the caller can answer a failed
// CONNECT in the client's version; an unsupported protocol name or level
// returns an *Error with Code UnsupportedProtocolVersion.
func (c *Connect) Decode(flags byte, b []byte) error {
	*c = Connect{Props: c.Props, WillProps: c.WillProps}
	c.Props.Reset()
	c.WillProps.Reset()
	if flags != 0 {
		return errFixedFlags // [MQTT-2.1.3-1]
	}
	name, b, err := readBinary(b)
	if err != nil {
		return err
	}
	if c.Version, b, err = readByte(b); err != nil {
		return err
	}
	c.ProtocolName = name
	if c.Version == V31|bridgeBit || c.Version == V311|bridgeBit {
		c.Version, c.Bridge = c.Version&^bridgeBit, true
	}
	switch {
	case c.Version == V311 || c.Version == V5:
		if !bytes.Equal(name, nameMQTT) {
			return errProtocol // [MQTT-3.1.2-1]
		}
	case c.Version == V31 && bytes.Equal(name, nameMQIsdp):
	default:
		return errProtocol // [MQTT-3.1.2-2]
	}
	cf, b, err := readByte(b)
	if err != nil {
		return err
	}
	if err := c.setFlags(cf); err != nil {
		return err
	}
	if c.KeepAlive, b, err = readU16(b); err != nil {
		return err
	}
	if c.Version == V5 {
		n, err := c.Props.decode(CONNECT, b, false)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return c.decodePayload(b)
}

// setFlags checks and unpacks the Connect Flags byte.
func (c *Connect) setFlags(cf byte) error {
	if cf&connReserved != 0 {
		return errConnectFlags // [MQTT-3.1.2-3]
	}
	c.CleanStart = cf&connCleanStart != 0
	c.WillFlag = cf&connWill != 0
	c.WillQoS = cf >> 3 & 3
	c.WillRetain = cf&connWillRetain != 0
	c.PasswordFlag = cf&connPassword != 0
	c.UsernameFlag = cf&connUsername != 0
	if !c.WillFlag && (c.WillQoS != 0 || c.WillRetain) {
		return errWillFlags // [MQTT-3.1.2-11] [MQTT-3.1.2-13] [MQTT-3.1.2-15]
	}
	if c.WillQoS == 3 {
		return errWillQoS // [MQTT-3.1.2-12] (3.1.1: [MQTT-3.1.2-14])
	}
	if c.Version < V5 && c.PasswordFlag && !c.UsernameFlag {
		return errPasswordFlag // 3.1.1 [MQTT-3.1.2-22]
	}
	return nil
}

// decodePayload decodes client id, will, user name and password.
func (c *Connect) decodePayload(b []byte) (err error) {
	if c.ClientID, b, err = readString(b); err != nil {
		return err // [MQTT-3.1.3-4]
	}
	if c.WillFlag {
		if c.Version == V5 {
			n, err := c.WillProps.decode(CONNECT, b, true)
			if err != nil {
				return err
			}
			b = b[n:]
		}
		if c.WillTopic, b, err = readString(b); err != nil {
			return err // [MQTT-3.1.3-11]
		}
		if c.WillPayload, b, err = readBinary(b); err != nil {
			return err
		}
	}
	if c.UsernameFlag {
		if c.Username, b, err = readString(b); err != nil {
			return err // [MQTT-3.1.3-12]
		}
	}
	if c.PasswordFlag {
		if c.Password, b, err = readBinary(b); err != nil {
			return err
		}
	}
	if len(b) != 0 {
		return errTrailing
	}
	return nil
}

func (c *Connect) protocolName() []byte {
	switch {
	case len(c.ProtocolName) > 0:
		return c.ProtocolName
	case c.Version == V31:
		return nameMQIsdp
	}
	return nameMQTT
}

func (c *Connect) flagsByte() byte {
	cf := boolBit(c.CleanStart, connCleanStart) |
		boolBit(c.WillFlag, connWill) |
		boolBit(c.WillRetain, connWillRetain) |
		boolBit(c.PasswordFlag, connPassword) |
		boolBit(c.UsernameFlag, connUsername)
	return cf | (c.WillQoS&3)<<3
}

func (c *Connect) bodySize() int {
	n := 2 + len(c.protocolName()) + 1 + 1 + 2 + 2 + len(c.ClientID)
	if c.Version == V5 {
		n += c.Props.size()
	}
	if c.WillFlag {
		if c.Version == V5 {
			n += c.WillProps.size()
		}
		n += 2 + len(c.WillTopic) + 2 + len(c.WillPayload)
	}
	if c.UsernameFlag {
		n += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		n += 2 + len(c.Password)
	}
	return n
}

// Size returns the encoded length of c, fixed header included.
func (c *Connect) Size() int { return packetSize(c.bodySize()) }

// Append appends c encoded for c.Version. An empty ProtocolName is sent as
// "MQTT" ("MQIsdp" for V31). The flag fields decide which optional fields
// are written.
func (c *Connect) Append(dst []byte) []byte {
	dst = appendFixedHeader(dst, CONNECT, 0, c.bodySize())
	dst = appendBinary(dst, c.protocolName())
	v := c.Version
	if c.Bridge {
		v |= bridgeBit
	}
	dst = append(dst, v, c.flagsByte())
	dst = appendU16(dst, c.KeepAlive)
	if c.Version == V5 {
		dst = c.Props.append(dst)
	}
	dst = appendBinary(dst, c.ClientID)
	if c.WillFlag {
		if c.Version == V5 {
			dst = c.WillProps.append(dst)
		}
		dst = appendBinary(dst, c.WillTopic)
		dst = appendBinary(dst, c.WillPayload)
	}
	if c.UsernameFlag {
		dst = appendBinary(dst, c.Username)
	}
	if c.PasswordFlag {
		dst = appendBinary(dst, c.Password)
	}
	return dst
}

// Decode decodes a CONNACK body for protocol version v.
func (c *Connack) Decode(v, flags byte, b []byte) error {
	*c = Connack{Props: c.Props}
	c.Props.Reset()
	if flags != 0 {
		return errFixedFlags // [MQTT-2.1.3-1]
	}
	if len(b) < 2 {
		return errTruncated
	}
	if b[0]&^1 != 0 {
		return errConnackFlags // [MQTT-3.2.2-1]
	}
	c.SessionPresent, c.Code = b[0] == 1, Code(b[1])
	if v < V5 {
		if len(b) != 2 {
			return errTrailing
		}
		if !connackCodesV3.has(c.Code) {
			return errReasonCode // 3.1.1 §3.2.2.3: 6-255 reserved
		}
		return nil
	}
	if !connackCodes.has(c.Code) {
		return errReasonCode // §3.2.2.2
	}
	n, err := c.Props.decode(CONNACK, b[2:], false)
	if err != nil {
		return err
	}
	if 2+n != len(b) {
		return errTrailing
	}
	return nil
}

func (c *Connack) bodySize(v byte) int {
	if v < V5 {
		return 2
	}
	return 2 + c.Props.size()
}

// Size returns the encoded length of c for version v.
func (c *Connack) Size(v byte) int { return packetSize(c.bodySize(v)) }

// Append appends c encoded for version v. For 3.1.1 the Code byte is
// written as is: map it with ConnackV3 first.
func (c *Connack) Append(dst []byte, v byte) []byte {
	dst = appendFixedHeader(dst, CONNACK, 0, c.bodySize(v))
	dst = append(dst, boolBit(c.SessionPresent, 1), byte(c.Code))
	if v >= V5 {
		dst = c.Props.append(dst)
	}
	return dst
}
