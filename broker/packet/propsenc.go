package packet

import "math/bits"

// num returns the value of a numeric property.
func (p *Properties) num(id byte) uint32 {
	switch id {
	case PropPayloadFormat:
		return uint32(p.PayloadFormat)
	case PropMessageExpiry:
		return p.MessageExpiry
	case PropSessionExpiry:
		return p.SessionExpiry
	case PropServerKeepAlive:
		return uint32(p.ServerKeepAlive)
	case PropRequestProblemInfo:
		return uint32(p.RequestProblemInfo)
	case PropWillDelay:
		return p.WillDelay
	case PropRequestResponseInfo:
		return uint32(p.RequestResponseInfo)
	case PropReceiveMaximum:
		return uint32(p.ReceiveMaximum)
	case PropTopicAliasMaximum:
		return uint32(p.TopicAliasMaximum)
	case PropTopicAlias:
		return uint32(p.TopicAlias)
	case PropMaximumQoS:
		return uint32(p.MaximumQoS)
	case PropRetainAvailable:
		return uint32(p.RetainAvailable)
	case PropMaximumPacketSize:
		return p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return uint32(p.WildcardSubAvailable)
	case PropSubIDAvailable:
		return uint32(p.SubIDAvailable)
	case PropSharedSubAvailable:
		return uint32(p.SharedSubAvailable)
	}
	return 0
}

// bytesOf returns the value of a string or binary property.
func (p *Properties) bytesOf(id byte) []byte {
	switch id {
	case PropContentType:
		return p.ContentType
	case PropResponseTopic:
		return p.ResponseTopic
	case PropCorrelationData:
		return p.CorrelationData
	case PropAssignedClientID:
		return p.AssignedClientID
	case PropAuthMethod:
		return p.AuthMethod
	case PropAuthData:
		return p.AuthData
	case PropResponseInfo:
		return p.ResponseInfo
	case PropServerReference:
		return p.ServerReference
	case PropReasonString:
		return p.ReasonString
	}
	return nil
}

// bodySize is the length of the properties without the length prefix.
func (p *Properties) bodySize() int {
	n := 0
	for m := p.Present & scalarMask; m != 0; m &= m - 1 {
		id := byte(bits.TrailingZeros64(m))
		n++ // identifier
		switch propSpecs[id].kind {
		case kByte:
			n++
		case kU16:
			n += 2
		case kU32:
			n += 4
		case kString, kBinary:
			n += 2 + len(p.bytesOf(id))
		}
	}
	for _, v := range p.SubscriptionIDs {
		n += 1 + VarintLen(v)
	}
	for _, u := range p.User {
		n += 1 + 2 + len(u.Key) + 2 + len(u.Value)
	}
	return n
}

// size is the encoded length of the property block, length prefix included.
func (p *Properties) size() int {
	n := p.bodySize()
	return VarintLen(uint32(n)) + n
}

// append appends the property block, length prefix included. Properties
// are written in identifier order, then subscription identifiers, then
// user properties.
func (p *Properties) append(dst []byte) []byte {
	dst = AppendVarint(dst, uint32(p.bodySize()))
	for m := p.Present & scalarMask; m != 0; m &= m - 1 {
		id := byte(bits.TrailingZeros64(m))
		dst = append(dst, id)
		switch propSpecs[id].kind {
		case kByte:
			dst = append(dst, byte(p.num(id)))
		case kU16:
			dst = appendU16(dst, uint16(p.num(id)))
		case kU32:
			dst = appendU32(dst, p.num(id))
		case kString, kBinary:
			dst = appendBinary(dst, p.bytesOf(id))
		}
	}
	for _, v := range p.SubscriptionIDs {
		dst = AppendVarint(append(dst, PropSubscriptionID), v)
	}
	for _, u := range p.User {
		dst = append(dst, PropUser)
		dst = appendBinary(appendBinary(dst, u.Key), u.Value)
	}
	return dst
}
