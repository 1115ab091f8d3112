package packet

// Code is an MQTT 5.0 reason code, or an MQTT 3.1.1 CONNACK return code or
// SUBACK return code. Code implements error so that a decode failure, or a
// broker decision, can carry the code to send back to the peer.
type Code byte

// MQTT 5.0 reason codes (§2.4). Several names share a value.
const (
	Success                             Code = 0x00
	NormalDisconnection                 Code = 0x00
	GrantedQoS0                         Code = 0x00
	GrantedQoS1                         Code = 0x01
	GrantedQoS2                         Code = 0x02
	DisconnectWithWill                  Code = 0x04
	NoMatchingSubscribers               Code = 0x10
	NoSubscriptionExisted               Code = 0x11
	ContinueAuthentication              Code = 0x18
	ReAuthenticate                      Code = 0x19
	UnspecifiedError                    Code = 0x80
	MalformedPacket                     Code = 0x81
	ProtocolError                       Code = 0x82
	ImplementationSpecificError         Code = 0x83
	UnsupportedProtocolVersion          Code = 0x84
	ClientIdentifierNotValid            Code = 0x85
	BadUsernameOrPassword               Code = 0x86
	NotAuthorized                       Code = 0x87
	ServerUnavailable                   Code = 0x88
	ServerBusy                          Code = 0x89
	Banned                              Code = 0x8A
	ServerShuttingDown                  Code = 0x8B
	BadAuthenticationMethod             Code = 0x8C
	KeepAliveTimeout                    Code = 0x8D
	SessionTakenOver                    Code = 0x8E
	TopicFilterInvalid                  Code = 0x8F
	TopicNameInvalid                    Code = 0x90
	PacketIdentifierInUse               Code = 0x91
	PacketIdentifierNotFound            Code = 0x92
	ReceiveMaximumExceeded              Code = 0x93
	TopicAliasInvalid                   Code = 0x94
	PacketTooLarge                      Code = 0x95
	MessageRateTooHigh                  Code = 0x96
	QuotaExceeded                       Code = 0x97
	AdministrativeAction                Code = 0x98
	PayloadFormatInvalid                Code = 0x99
	RetainNotSupported                  Code = 0x9A
	QoSNotSupported                     Code = 0x9B
	UseAnotherServer                    Code = 0x9C
	ServerMoved                         Code = 0x9D
	SharedSubscriptionsNotSupported     Code = 0x9E
	ConnectionRateExceeded              Code = 0x9F
	MaximumConnectTime                  Code = 0xA0
	SubscriptionIdentifiersNotSupported Code = 0xA1
	WildcardSubscriptionsNotSupported   Code = 0xA2
)

// codeText is the static table behind Code.Error. Entries left empty here
// are filled once by init with "reason code (0xNN)".
var codeText = [256]string{
	0x00: "success (0x00)",
	0x01: "granted QoS 1 (0x01)",
	0x02: "granted QoS 2 (0x02)",
	0x04: "disconnect with will message (0x04)",
	0x10: "no matching subscribers (0x10)",
	0x11: "no subscription existed (0x11)",
	0x18: "continue authentication (0x18)",
	0x19: "re-authenticate (0x19)",
	0x80: "unspecified error (0x80)",
	0x81: "malformed packet (0x81)",
	0x82: "protocol error (0x82)",
	0x83: "implementation specific error (0x83)",
	0x84: "unsupported protocol version (0x84)",
	0x85: "client identifier not valid (0x85)",
	0x86: "bad user name or password (0x86)",
	0x87: "not authorized (0x87)",
	0x88: "server unavailable (0x88)",
	0x89: "server busy (0x89)",
	0x8A: "banned (0x8A)",
	0x8B: "server shutting down (0x8B)",
	0x8C: "bad authentication method (0x8C)",
	0x8D: "keep alive timeout (0x8D)",
	0x8E: "session taken over (0x8E)",
	0x8F: "topic filter invalid (0x8F)",
	0x90: "topic name invalid (0x90)",
	0x91: "packet identifier in use (0x91)",
	0x92: "packet identifier not found (0x92)",
	0x93: "receive maximum exceeded (0x93)",
	0x94: "topic alias invalid (0x94)",
	0x95: "packet too large (0x95)",
	0x96: "message rate too high (0x96)",
	0x97: "quota exceeded (0x97)",
	0x98: "administrative action (0x98)",
	0x99: "payload format invalid (0x99)",
	0x9A: "retain not supported (0x9A)",
	0x9B: "QoS not supported (0x9B)",
	0x9C: "use another server (0x9C)",
	0x9D: "server moved (0x9D)",
	0x9E: "shared subscriptions not supported (0x9E)",
	0x9F: "connection rate exceeded (0x9F)",
	0xA0: "maximum connect time (0xA0)",
	0xA1: "subscription identifiers not supported (0xA1)",
	0xA2: "wildcard subscriptions not supported (0xA2)",
}

func init() {
	const hex = "0123456789ABCDEF"
	for i := range codeText {
		if codeText[i] == "" {
			codeText[i] = "reason code (0x" + string(hex[i>>4]) + string(hex[i&15]) + ")"
		}
	}
}

// Error returns the reason code's name and value, e.g. "malformed packet
// (0x81)". It does not allocate.
func (c Code) Error() string { return codeText[c] }

// IsFailure reports whether c is an error reason code (0x80 or above).
func (c Code) IsFailure() bool { return c >= 0x80 }

// MQTT 3.1.1 CONNACK return codes (§3.2.2.3).
const (
	ConnackAccepted           byte = 0
	ConnackBadProtocolVersion byte = 1
	ConnackIDRejected         byte = 2
	ConnackServerUnavailable  byte = 3
	ConnackBadUsernamePass    byte = 4
	ConnackNotAuthorized      byte = 5
)

// ConnackV3 maps a 5.0 CONNACK reason code to the 3.1.1 return code that
// is closest in meaning. Pass the result as Connack.Code (converted to
// Code) when encoding for a 3.1.1 client.
func ConnackV3(c Code) byte {
	switch c {
	case Success:
		return ConnackAccepted
	case UnsupportedProtocolVersion:
		return ConnackBadProtocolVersion
	case ClientIdentifierNotValid:
		return ConnackIDRejected
	case ServerUnavailable, ServerBusy, ServerShuttingDown, UseAnotherServer,
		ServerMoved, ConnectionRateExceeded, QuotaExceeded:
		return ConnackServerUnavailable
	case BadUsernameOrPassword, BadAuthenticationMethod:
		return ConnackBadUsernamePass
	default: // NotAuthorized, Banned and every other failure
		return ConnackNotAuthorized
	}
}

// codeSet is a bitmap of the reason codes valid in one packet kind.
type codeSet [4]uint64

func newCodeSet(codes ...Code) codeSet {
	var s codeSet
	for _, c := range codes {
		s[c>>6] |= 1 << (c & 63)
	}
	return s
}

func (s *codeSet) has(c Code) bool { return s[c>>6]&(1<<(c&63)) != 0 }

// Reason codes allowed per packet kind (§3.2.2.2, §3.4.2.1, §3.5.2.1,
// §3.6.2.1, §3.7.2.1, §3.9.3, §3.11.3, §3.14.2.1, §3.15.2.1).
var (
	connackCodes = newCodeSet(0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86,
		0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B,
		0x9C, 0x9D, 0x9F)
	connackCodesV3 = newCodeSet(0, 1, 2, 3, 4, 5)
	pubackCodes    = newCodeSet(0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91,
		0x97, 0x99) // PUBACK and PUBREC
	pubrelCodes = newCodeSet(0x00, 0x92) // PUBREL and PUBCOMP
	subackCodes = newCodeSet(0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91,
		0x97, 0x9E, 0xA1, 0xA2)
	subackCodesV3  = newCodeSet(0x00, 0x01, 0x02, 0x80)
	unsubackCodes  = newCodeSet(0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91)
	disconnectCode = newCodeSet(0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87,
		0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95, 0x96, 0x97,
		0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2)
	authCodes = newCodeSet(0x00, 0x18, 0x19)
)
