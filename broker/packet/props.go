package packet

// propKind is the wire type of a property value (§2.2.2.2).
type propKind uint8

const (
	kByte propKind = iota + 1
	kU16
	kU32
	kVarint
	kString
	kBinary
	kPair
)

// propSpec says how a property is encoded and where it may appear.
type propSpec struct {
	kind  propKind
	types uint16 // bit (1 << Type) for each packet kind that may carry it
	will  bool   // allowed among CONNECT will properties
}

func types(ts ...Type) uint16 {
	var m uint16
	for _, t := range ts {
		m |= 1 << t
	}
	return m
}

// propSpecs is the table of §2.2.2.2, indexed by property identifier.
var propSpecs = [PropSharedSubAvailable + 1]propSpec{
	PropPayloadFormat:        {kByte, types(PUBLISH), true},
	PropMessageExpiry:        {kU32, types(PUBLISH), true},
	PropContentType:          {kString, types(PUBLISH), true},
	PropResponseTopic:        {kString, types(PUBLISH), true},
	PropCorrelationData:      {kBinary, types(PUBLISH), true},
	PropSubscriptionID:       {kVarint, types(PUBLISH, SUBSCRIBE), false},
	PropSessionExpiry:        {kU32, types(CONNECT, CONNACK, DISCONNECT), false},
	PropAssignedClientID:     {kString, types(CONNACK), false},
	PropServerKeepAlive:      {kU16, types(CONNACK), false},
	PropAuthMethod:           {kString, types(CONNECT, CONNACK, AUTH), false},
	PropAuthData:             {kBinary, types(CONNECT, CONNACK, AUTH), false},
	PropRequestProblemInfo:   {kByte, types(CONNECT), false},
	PropWillDelay:            {kU32, 0, true},
	PropRequestResponseInfo:  {kByte, types(CONNECT), false},
	PropResponseInfo:         {kString, types(CONNACK), false},
	PropServerReference:      {kString, types(CONNACK, DISCONNECT), false},
	PropReasonString:         {kString, types(CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH), false},
	PropReceiveMaximum:       {kU16, types(CONNECT, CONNACK), false},
	PropTopicAliasMaximum:    {kU16, types(CONNECT, CONNACK), false},
	PropTopicAlias:           {kU16, types(PUBLISH), false},
	PropMaximumQoS:           {kByte, types(CONNACK), false},
	PropRetainAvailable:      {kByte, types(CONNACK), false},
	PropUser:                 {kPair, types(CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH), true},
	PropMaximumPacketSize:    {kU32, types(CONNECT, CONNACK), false},
	PropWildcardSubAvailable: {kByte, types(CONNACK), false},
	PropSubIDAvailable:       {kByte, types(CONNACK), false},
	PropSharedSubAvailable:   {kByte, types(CONNACK), false},
}

// scalarMask has the Present bits of the properties encoded by the generic
// loop in size and append (everything but User and SubscriptionIDs).
var scalarMask = func() uint64 {
	var m uint64
	for id, s := range propSpecs {
		if s.kind != 0 && s.kind != kPair && byte(id) != PropSubscriptionID {
			m |= 1 << id
		}
	}
	return m
}()

// decode resets p and decodes the property block at the start of b (the
// Property Length varint and the properties) of a packet of type t, or the
// will properties of a CONNECT if will is set. It returns the block length.
// Byte-slice values alias b.
func (p *Properties) decode(t Type, b []byte, will bool) (n int, err error) {
	p.Reset()
	l, rest, err := readVarint(b)
	if err != nil {
		return 0, err
	}
	if uint64(l) > uint64(len(rest)) {
		return 0, errPropLen
	}
	n = len(b) - len(rest) + int(l)
	for pb := rest[:l]; len(pb) > 0; {
		if pb, err = p.decodeOne(t, pb, will); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// decodeOne decodes one property from b and returns the rest.
func (p *Properties) decodeOne(t Type, b []byte, will bool) ([]byte, error) {
	id := b[0]
	if int(id) >= len(propSpecs) || propSpecs[id].kind == 0 {
		return b, errUnknownProp // [MQTT-2.2.2-1] identifiers are from the table
	}
	if spec := propSpecs[id]; will && !spec.will || !will && spec.types&(1<<t) == 0 {
		return b, errPropNotAllowed // §2.2.2.2 table
	}
	if p.Has(id) && id != PropUser && (id != PropSubscriptionID || t != PUBLISH) {
		return b, errPropDup // "It is a Protocol Error to include ... more than once"
	}
	p.Set(id)
	b = b[1:]
	var err error
	switch id {
	case PropPayloadFormat:
		p.PayloadFormat, b, err = readFlag(b) // §3.3.2.3.2
	case PropMessageExpiry:
		p.MessageExpiry, b, err = readU32(b)
	case PropContentType:
		p.ContentType, b, err = readString(b)
	case PropResponseTopic:
		p.ResponseTopic, b, err = readString(b)
	case PropCorrelationData:
		p.CorrelationData, b, err = readBinary(b)
	case PropSubscriptionID:
		var v uint32
		if v, b, err = readVarint(b); err != nil {
			return b, err
		}
		if v == 0 {
			return b, errPropValue // §3.8.2.1.2: 0 is a Protocol Error
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
	case PropSessionExpiry:
		p.SessionExpiry, b, err = readU32(b)
	case PropAssignedClientID:
		p.AssignedClientID, b, err = readString(b)
	case PropServerKeepAlive:
		p.ServerKeepAlive, b, err = readU16(b)
	case PropAuthMethod:
		p.AuthMethod, b, err = readString(b)
	case PropAuthData:
		p.AuthData, b, err = readBinary(b)
	case PropRequestProblemInfo:
		p.RequestProblemInfo, b, err = readFlag(b) // §3.1.2.11.7
	case PropWillDelay:
		p.WillDelay, b, err = readU32(b)
	case PropRequestResponseInfo:
		p.RequestResponseInfo, b, err = readFlag(b) // §3.1.2.11.6
	case PropResponseInfo:
		p.ResponseInfo, b, err = readString(b)
	case PropServerReference:
		p.ServerReference, b, err = readString(b)
	case PropReasonString:
		p.ReasonString, b, err = readString(b)
	case PropReceiveMaximum:
		p.ReceiveMaximum, b, err = readNonZero16(b) // §3.1.2.11.3, §3.2.2.3.3
	case PropTopicAliasMaximum:
		p.TopicAliasMaximum, b, err = readU16(b)
	case PropTopicAlias:
		// [MQTT-3.3.2-8] 0 is not permitted; §3.3.2.3.4: the receiver
		// disconnects with 0x94 Topic Alias invalid.
		if p.TopicAlias, b, err = readU16(b); err == nil && p.TopicAlias == 0 {
			err = errTopicAliasZero
		}
	case PropMaximumQoS:
		p.MaximumQoS, b, err = readFlag(b) // §3.2.2.3.4
	case PropRetainAvailable:
		p.RetainAvailable, b, err = readFlag(b)
	case PropUser:
		var u UserProperty
		if u.Key, b, err = readString(b); err != nil {
			return b, err
		}
		if u.Value, b, err = readString(b); err != nil {
			return b, err
		}
		p.User = append(p.User, u)
	case PropMaximumPacketSize:
		if p.MaximumPacketSize, b, err = readU32(b); err == nil && p.MaximumPacketSize == 0 {
			err = errPropValue // §3.1.2.11.4: 0 is a Protocol Error
		}
	case PropWildcardSubAvailable:
		p.WildcardSubAvailable, b, err = readFlag(b)
	case PropSubIDAvailable:
		p.SubIDAvailable, b, err = readFlag(b)
	case PropSharedSubAvailable:
		p.SharedSubAvailable, b, err = readFlag(b)
	}
	return b, err
}

// readFlag reads a byte property whose only valid values are 0 and 1.
func readFlag(b []byte) (byte, []byte, error) {
	v, b, err := readByte(b)
	if err == nil && v > 1 {
		err = errPropValue
	}
	return v, b, err
}

// readNonZero16 reads a two-byte property for which 0 is a Protocol Error.
func readNonZero16(b []byte) (uint16, []byte, error) {
	v, b, err := readU16(b)
	if err == nil && v == 0 {
		err = errPropValue
	}
	return v, b, err
}
