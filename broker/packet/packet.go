// Package packet implements the MQTT 3.1.1 and 5.0 wire codec.
//
// Every packet kind has its own struct. Decode methods fill a caller-owned
// value from a packet body; byte-slice fields (topics, payloads, property
// values) alias the buffer passed to Decode and stay valid only until that
// buffer is reused. Slices of sub-values (user properties, subscription
// filters, reason codes) are appended to the receiver's existing slices
// (reset to length zero first), so a value reused across calls decodes
// without allocating once its slices have grown.
//
// Append methods encode a complete packet, fixed header included, by
// appending to dst. Size methods report the encoded length, so callers can
// check a peer's Maximum Packet Size before encoding.
//
// The package uses only the standard library, no reflection, and allocates
// nothing on the PUBLISH/PUBACK paths.
package packet

// Type is an MQTT control packet type (the high nibble of the first byte).
type Type byte

// Control packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

// Protocol versions (the CONNECT protocol level byte).
const (
	V31  byte = 3 // MQTT 3.1 ("MQIsdp")
	V311 byte = 4 // MQTT 3.1.1
	V5   byte = 5 // MQTT 5.0
)

// MaxRemaining is the largest remaining length the variable byte integer
// can express (268,435,455).
const MaxRemaining = 268435455

// FixedHeader is the first 2–5 bytes of every packet.
type FixedHeader struct {
	Type      Type
	Flags     byte // low nibble of the first byte
	Remaining int  // remaining length: bytes after the fixed header
}

// UserProperty is one MQTT 5 user property (0x26), a UTF-8 string pair.
type UserProperty struct {
	Key, Value []byte
}

// Property identifiers (MQTT 5.0 §2.2.2.2).
const (
	PropPayloadFormat        byte = 0x01
	PropMessageExpiry        byte = 0x02
	PropContentType          byte = 0x03
	PropResponseTopic        byte = 0x08
	PropCorrelationData      byte = 0x09
	PropSubscriptionID       byte = 0x0B
	PropSessionExpiry        byte = 0x11
	PropAssignedClientID     byte = 0x12
	PropServerKeepAlive      byte = 0x13
	PropAuthMethod           byte = 0x15
	PropAuthData             byte = 0x16
	PropRequestProblemInfo   byte = 0x17
	PropWillDelay            byte = 0x18
	PropRequestResponseInfo  byte = 0x19
	PropResponseInfo         byte = 0x1A
	PropServerReference      byte = 0x1C
	PropReasonString         byte = 0x1F
	PropReceiveMaximum       byte = 0x21
	PropTopicAliasMaximum    byte = 0x22
	PropTopicAlias           byte = 0x23
	PropMaximumQoS           byte = 0x24
	PropRetainAvailable      byte = 0x25
	PropUser                 byte = 0x26
	PropMaximumPacketSize    byte = 0x27
	PropWildcardSubAvailable byte = 0x28
	PropSubIDAvailable       byte = 0x29
	PropSharedSubAvailable   byte = 0x2A
)

// Properties holds the MQTT 5 properties of any packet. Present has bit
// (1 << id) set for every property that was decoded or is to be encoded;
// User and SubscriptionIDs are encoded when non-empty regardless of Present.
// Which properties a packet kind may carry is checked by Decode.
type Properties struct {
	Present uint64

	PayloadFormat        byte
	MessageExpiry        uint32
	ContentType          []byte
	ResponseTopic        []byte
	CorrelationData      []byte
	SubscriptionIDs      []uint32
	SessionExpiry        uint32
	AssignedClientID     []byte
	ServerKeepAlive      uint16
	AuthMethod           []byte
	AuthData             []byte
	RequestProblemInfo   byte
	WillDelay            uint32
	RequestResponseInfo  byte
	ResponseInfo         []byte
	ServerReference      []byte
	ReasonString         []byte
	ReceiveMaximum       uint16
	TopicAliasMaximum    uint16
	TopicAlias           uint16
	MaximumQoS           byte
	RetainAvailable      byte
	User                 []UserProperty
	MaximumPacketSize    uint32
	WildcardSubAvailable byte
	SubIDAvailable       byte
	SharedSubAvailable   byte
}

// Has reports whether property id is present.
func (p *Properties) Has(id byte) bool { return p.Present&(1<<id) != 0 }

// Set marks property id as present.
func (p *Properties) Set(id byte) { p.Present |= 1 << id }

// Clear marks property id as absent.
func (p *Properties) Clear(id byte) { p.Present &^= 1 << id }

// Reset empties p, keeping the capacity of its slices.
func (p *Properties) Reset() {
	user, ids := p.User[:0], p.SubscriptionIDs[:0]
	*p = Properties{User: user, SubscriptionIDs: ids}
}

// Connect is a CONNECT packet.
type Connect struct {
	ProtocolName []byte // "MQTT", or "MQIsdp" for 3.1
	Version      byte   // V31, V311 or V5
	// Bridge: the protocol level had bit 7 set (0x83, 0x84), as a
	// mosquitto bridge sends it (try_private): the client is a broker.
	// Version is without the bit.
	Bridge     bool
	CleanStart bool // Clean Session in 3.1.1
	KeepAlive  uint16
	Props      Properties
	ClientID   []byte

	WillFlag    bool
	WillQoS     byte
	WillRetain  bool
	WillProps   Properties
	WillTopic   []byte
	WillPayload []byte

	UsernameFlag bool
	Username     []byte
	PasswordFlag bool
	Password     []byte
}

// Connack is a CONNACK packet.
type Connack struct {
	SessionPresent bool
	Code           Code // the 3.1.1 return code or the 5.0 reason code
	Props          Properties
}

// Publish is a PUBLISH packet.
type Publish struct {
	Dup      bool
	QoS      byte
	Retain   bool
	Topic    []byte
	PacketID uint16 // only for QoS 1 and 2
	Props    Properties
	Payload  []byte
}

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP packet (they share a shape).
type Ack struct {
	Type     Type // PUBACK, PUBREC, PUBREL or PUBCOMP
	PacketID uint16
	Code     Code
	Props    Properties
}

// Subscription is one topic filter and its options in a SUBSCRIBE packet.
type Subscription struct {
	Filter            []byte
	QoS               byte
	NoLocal           bool // 5.0
	RetainAsPublished bool // 5.0
	RetainHandling    byte // 5.0: 0, 1 or 2
}

// Subscribe is a SUBSCRIBE packet.
type Subscribe struct {
	PacketID uint16
	Props    Properties
	Filters  []Subscription
}

// Suback is a SUBACK packet.
type Suback struct {
	PacketID uint16
	Props    Properties
	Codes    []Code
}

// Unsubscribe is an UNSUBSCRIBE packet.
type Unsubscribe struct {
	PacketID uint16
	Props    Properties
	Filters  [][]byte
}

// Unsuback is an UNSUBACK packet. Codes are sent in 5.0 only.
type Unsuback struct {
	PacketID uint16
	Props    Properties
	Codes    []Code
}

// Disconnect is a DISCONNECT packet. Code and Props are 5.0 only.
type Disconnect struct {
	Code  Code
	Props Properties
}

// Auth is an AUTH packet (5.0 only).
type Auth struct {
	Code  Code
	Props Properties
}
