package packet

import "errors"

// Error is a decode failure: the reason code to report to the peer (in a
// CONNACK or DISCONNECT, or by closing the connection in 3.1.1) and a short
// description of the check that failed. Decode methods return only the
// pre-allocated values below, so a failed decode never allocates.
//
// errors.Is(err, MalformedPacket) works through Unwrap.
type Error struct {
	Code   Code
	Reason string
}

// Error returns "packet: " followed by the reason and the code. Unlike
// returning the error, formatting it allocates.
func (e *Error) Error() string { return "packet: " + e.Reason + ": " + e.Code.Error() }

// Unwrap returns the reason code.
func (e *Error) Unwrap() error { return e.Code }

// CodeOf returns the reason code carried by err: the Code of an *Error, or
// err itself if it is a Code (also when wrapped). It returns Success for a
// nil error and UnspecifiedError for any other error.
func CodeOf(err error) Code {
	switch e := err.(type) {
	case nil:
		return Success
	case *Error:
		return e.Code
	case Code:
		return e
	}
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Code
	}
	var c Code
	if errors.As(err, &c) {
		return c
	}
	return UnspecifiedError
}

// Decode errors. Each check in the decoders returns one of these.
var (
	errTruncated      = &Error{MalformedPacket, "truncated packet"}
	errTrailing       = &Error{MalformedPacket, "unexpected bytes after packet"}
	errVarint         = &Error{MalformedPacket, "invalid variable byte integer"}
	errReservedType   = &Error{MalformedPacket, "reserved packet type 0"}
	errFixedFlags     = &Error{MalformedPacket, "invalid fixed header flags"}
	errPublishQoS     = &Error{MalformedPacket, "PUBLISH with QoS 3"}
	errDupQoS0        = &Error{MalformedPacket, "DUP flag set on QoS 0 PUBLISH"}
	errUTF8           = &Error{MalformedPacket, "invalid UTF-8 string"}
	errUnknownProp    = &Error{MalformedPacket, "unknown property identifier"}
	errPropNotAllowed = &Error{ProtocolError, "property not allowed in this packet"}
	errPropDup        = &Error{ProtocolError, "duplicate property"}
	errPropValue      = &Error{ProtocolError, "invalid property value"}
	errTopicAliasZero = &Error{TopicAliasInvalid, "topic alias 0"}
	errPropLen        = &Error{MalformedPacket, "property length exceeds packet"}
	errProtocol       = &Error{UnsupportedProtocolVersion, "unsupported protocol name or level"}
	errConnectFlags   = &Error{MalformedPacket, "CONNECT reserved flag set"}
	errWillFlags      = &Error{MalformedPacket, "will QoS or retain set without will flag"}
	errWillQoS        = &Error{MalformedPacket, "will QoS 3"}
	errPasswordFlag   = &Error{MalformedPacket, "password flag without user name flag"}
	errConnackFlags   = &Error{MalformedPacket, "CONNACK reserved flags set"}
	errReasonCode     = &Error{ProtocolError, "invalid reason code"}
	errPacketID       = &Error{ProtocolError, "packet identifier 0"}
	errTopicEmpty     = &Error{ProtocolError, "empty topic name without topic alias"}
	errTopicWildcard  = &Error{TopicNameInvalid, "wildcard in topic name"}
	errNoFilters      = &Error{ProtocolError, "no topic filters"}
	errSubOptions     = &Error{MalformedPacket, "reserved subscription option bits set"}
	errSubQoS         = &Error{MalformedPacket, "subscription QoS 3"}
	errRetainHandling = &Error{ProtocolError, "retain handling 3"}
	errNoCodes        = &Error{ProtocolError, "no reason codes"}
	errAuthV3         = &Error{ProtocolError, "AUTH before MQTT 5"}
)
