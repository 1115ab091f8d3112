package packet

// packetTests is the annotated wire-byte table shared by the decode,
// encode and fuzz tests. Valid entries round-trip: raw decodes to pkt and
// pkt encodes to raw, unless decodeOnly is set (a valid but non-canonical
// encoding). Entries with err != 0 must fail to decode with that code.
var packetTests = []struct {
	name       string
	v          byte
	raw        []byte
	pkt        any
	decodeOnly bool
	err        Code
}{
	// CONNECT
	{
		name: "connect v311 minimal", v: V311,
		raw: []byte{
			byte(CONNECT << 4), 16, // fixed header
			0, 4, 'M', 'Q', 'T', 'T', // protocol name
			4,           // protocol level
			0b0000_0010, // flags: clean session
			0, 60,       // keep alive
			0, 4, 'z', 'e', 'n', '3', // client id
		},
		pkt: &Connect{ProtocolName: []byte("MQTT"), Version: V311, CleanStart: true, KeepAlive: 60, ClientID: []byte("zen3")},
	},
	{
		name: "connect v311 bridge (mosquitto try_private)", v: V311,
		raw: []byte{
			byte(CONNECT << 4), 16, // fixed header
			0, 4, 'M', 'Q', 'T', 'T', // protocol name
			0x84,        // protocol level 4 with the bridge bit
			0b0000_0010, // flags: clean session
			0, 60,       // keep alive
			0, 4, 'z', 'e', 'n', '3', // client id
		},
		pkt: &Connect{ProtocolName: []byte("MQTT"), Version: V311, Bridge: true, CleanStart: true, KeepAlive: 60, ClientID: []byte("zen3")},
	},
	{
		name: "connect v311 will user password", v: V311,
		raw: []byte{
			byte(CONNECT << 4), 37, // fixed header
			0, 4, 'M', 'Q', 'T', 'T', // protocol name
			4,           // protocol level
			0b1110_1110, // flags: user, password, will retain, will QoS 1, will, clean
			0, 60,       // keep alive
			0, 4, 'z', 'e', 'n', '3', // client id
			0, 3, 'l', 'w', 't', // will topic
			0, 2, 'n', 'o', // will payload
			0, 4, 'u', 's', 'e', 'r', // user name
			0, 4, 'p', 'a', 's', 's', // password
		},
		pkt: &Connect{
			ProtocolName: []byte("MQTT"), Version: V311, CleanStart: true, KeepAlive: 60, ClientID: []byte("zen3"),
			WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: []byte("lwt"), WillPayload: []byte("no"),
			UsernameFlag: true, Username: []byte("user"), PasswordFlag: true, Password: []byte("pass"),
		},
	},
	{
		name: "connect v31", v: V31,
		raw: []byte{
			byte(CONNECT << 4), 18, // fixed header
			0, 6, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name
			3,           // protocol level
			0b0000_0010, // flags: clean session
			0, 30,       // keep alive
			0, 4, 'z', 'e', 'n', '3', // client id
		},
		pkt: &Connect{ProtocolName: []byte("MQIsdp"), Version: V31, CleanStart: true, KeepAlive: 30, ClientID: []byte("zen3")},
	},
	{
		name: "connect v5 all properties", v: V5,
		raw: []byte{
			byte(CONNECT << 4), 117, // fixed header
			0, 4, 'M', 'Q', 'T', 'T', // protocol name
			5,           // protocol level
			0b1110_1110, // flags: user, password, will retain, will QoS 1, will, clean
			0, 60,       // keep alive
			39,                 // property length
			0x11, 0, 0, 0, 120, // session expiry
			0x15, 0, 4, 'S', 'C', 'R', 'M', // auth method
			0x16, 0, 2, 1, 2, // auth data
			0x17, 1, // request problem info
			0x19, 1, // request response info
			0x21, 0, 100, // receive maximum
			0x22, 0, 10, // topic alias maximum
			0x27, 0, 0, 0x10, 0, // maximum packet size
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
			0, 4, 'z', 'e', 'n', '3', // client id
			39,      // will property length
			0x01, 1, // payload format
			0x02, 0, 0, 0, 60, // message expiry
			0x03, 0, 4, 't', 'e', 'x', 't', // content type
			0x08, 0, 5, 'r', 'e', 'p', 'l', 'y', // response topic
			0x09, 0, 2, 0xCA, 0xFE, // correlation data
			0x18, 0, 0, 0, 5, // will delay
			0x26, 0, 1, 'a', 0, 1, 'b', // user property
			0, 3, 'l', 'w', 't', // will topic
			0, 2, 'n', 'o', // will payload
			0, 4, 'u', 's', 'e', 'r', // user name
			0, 4, 'p', 'a', 's', 's', // password
		},
		pkt: &Connect{
			ProtocolName: []byte("MQTT"), Version: V5, CleanStart: true, KeepAlive: 60,
			Props: Properties{
				Present:       ids(0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27),
				SessionExpiry: 120, AuthMethod: []byte("SCRM"), AuthData: []byte{1, 2},
				RequestProblemInfo: 1, RequestResponseInfo: 1, ReceiveMaximum: 100,
				TopicAliasMaximum: 10, MaximumPacketSize: 4096,
				User: []UserProperty{{[]byte("k"), []byte("v")}},
			},
			ClientID: []byte("zen3"),
			WillFlag: true, WillQoS: 1, WillRetain: true,
			WillProps: Properties{
				Present:       ids(0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26),
				PayloadFormat: 1, MessageExpiry: 60, ContentType: []byte("text"),
				ResponseTopic: []byte("reply"), CorrelationData: []byte{0xCA, 0xFE}, WillDelay: 5,
				User: []UserProperty{{[]byte("a"), []byte("b")}},
			},
			WillTopic: []byte("lwt"), WillPayload: []byte("no"),
			UsernameFlag: true, Username: []byte("user"), PasswordFlag: true, Password: []byte("pass"),
		},
	},
	{
		name: "connect v5 password without user name", v: V5,
		raw: []byte{
			byte(CONNECT << 4), 23, // fixed header
			0, 4, 'M', 'Q', 'T', 'T', // protocol name
			5,           // protocol level
			0b0100_0010, // flags: password, clean start
			0, 0,        // keep alive
			0,                        // property length
			0, 4, 'z', 'e', 'n', '3', // client id
			0, 4, 'p', 'a', 's', 's', // password
		},
		pkt: &Connect{ProtocolName: []byte("MQTT"), Version: V5, CleanStart: true, ClientID: []byte("zen3"), PasswordFlag: true, Password: []byte("pass")},
	},

	// CONNACK
	{
		name: "connack v311", v: V311,
		raw: []byte{
			byte(CONNACK << 4), 2, // fixed header
			1, // session present
			0, // return code: accepted
		},
		pkt: &Connack{SessionPresent: true},
	},
	{
		name: "connack v311 not authorized", v: V311,
		raw: []byte{
			byte(CONNACK << 4), 2, // fixed header
			0, // session present
			5, // return code: not authorized
		},
		pkt: &Connack{Code: Code(ConnackNotAuthorized)},
	},
	{
		name: "connack v5 minimal", v: V5,
		raw: []byte{
			byte(CONNACK << 4), 3, // fixed header
			0,    // ack flags
			0x86, // reason code: bad user name or password
			0,    // property length
		},
		pkt: &Connack{Code: BadUsernameOrPassword},
	},
	{
		name: "connack v5 all properties", v: V5,
		raw: []byte{
			byte(CONNACK << 4), 75, // fixed header
			1,                 // ack flags: session present
			0,                 // reason code
			72,                // property length
			0x11, 0, 0, 0, 60, // session expiry
			0x12, 0, 3, 'c', 'i', 'd', // assigned client id
			0x13, 0, 30, // server keep alive
			0x15, 0, 4, 'S', 'C', 'R', 'M', // auth method
			0x16, 0, 2, 1, 2, // auth data
			0x1A, 0, 4, 'r', 'e', 's', 'p', // response info
			0x1C, 0, 3, 's', 'r', 'v', // server reference
			0x1F, 0, 2, 'o', 'k', // reason string
			0x21, 0, 50, // receive maximum
			0x22, 0, 5, // topic alias maximum
			0x24, 1, // maximum QoS
			0x25, 1, // retain available
			0x27, 0, 0, 1, 0, // maximum packet size
			0x28, 1, // wildcard subscription available
			0x29, 0, // subscription identifiers available
			0x2A, 1, // shared subscription available
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
		},
		pkt: &Connack{
			SessionPresent: true,
			Props: Properties{
				Present: ids(0x11, 0x12, 0x13, 0x15, 0x16, 0x1A, 0x1C, 0x1F, 0x21, 0x22,
					0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2A),
				SessionExpiry: 60, AssignedClientID: []byte("cid"), ServerKeepAlive: 30,
				AuthMethod: []byte("SCRM"), AuthData: []byte{1, 2}, ResponseInfo: []byte("resp"),
				ServerReference: []byte("srv"), ReasonString: []byte("ok"), ReceiveMaximum: 50,
				TopicAliasMaximum: 5, MaximumQoS: 1, RetainAvailable: 1, MaximumPacketSize: 256,
				WildcardSubAvailable: 1, SubIDAvailable: 0, SharedSubAvailable: 1,
				User: []UserProperty{{[]byte("k"), []byte("v")}},
			},
		},
	},

	// PUBLISH
	{
		name: "publish v311 qos0", v: V311,
		raw: []byte{
			byte(PUBLISH << 4), 12, // fixed header
			0, 5, 'a', '/', 'b', '/', 'c', // topic
			'h', 'e', 'l', 'l', 'o', // payload
		},
		pkt: &Publish{Topic: []byte("a/b/c"), Payload: []byte("hello")},
	},
	{
		name: "publish v311 qos1 dup retain", v: V311,
		raw: []byte{
			byte(PUBLISH<<4) | 0b1011, 11, // fixed header: dup, QoS 1, retain
			0, 5, 'a', '/', 'b', '/', 'c', // topic
			0, 7, // packet id
			'h', 'i', // payload
		},
		pkt: &Publish{Dup: true, QoS: 1, Retain: true, Topic: []byte("a/b/c"), PacketID: 7, Payload: []byte("hi")},
	},
	{
		name: "publish v311 qos2 empty payload", v: V311,
		raw: []byte{
			byte(PUBLISH<<4) | 0b0100, 5, // fixed header: QoS 2
			0, 1, 't', // topic
			0x12, 0x34, // packet id
		},
		pkt: &Publish{QoS: 2, Topic: []byte("t"), PacketID: 0x1234},
	},
	{
		name: "publish v5 no properties", v: V5,
		raw: []byte{
			byte(PUBLISH << 4), 8, // fixed header
			0, 3, 'a', '/', 'b', // topic
			0,        // property length
			'h', 'i', // payload
		},
		pkt: &Publish{Topic: []byte("a/b"), Payload: []byte("hi")},
	},
	{
		name: "publish v5 all properties", v: V5,
		raw: []byte{
			byte(PUBLISH<<4) | 0b0010, 68, // fixed header: QoS 1
			0, 5, 'a', '/', 'b', '/', 'c', // topic
			0, 1, // packet id
			53,      // property length
			0x01, 1, // payload format
			0x02, 0, 0, 0, 30, // message expiry
			0x03, 0, 4, 'j', 's', 'o', 'n', // content type
			0x08, 0, 5, 'r', 'e', 'p', 'l', 'y', // response topic
			0x09, 0, 4, 1, 2, 3, 4, // correlation data
			0x23, 0, 3, // topic alias
			0x0B, 5, // subscription id 5
			0x0B, 0x80, 0x01, // subscription id 128
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
			0x26, 0, 2, 'k', '2', 0, 2, 'v', '2', // user property
			'h', 'e', 'l', 'l', 'o', // payload
		},
		pkt: &Publish{
			QoS: 1, Topic: []byte("a/b/c"), PacketID: 1,
			Props: Properties{
				Present:       ids(0x01, 0x02, 0x03, 0x08, 0x09, 0x0B, 0x23, 0x26),
				PayloadFormat: 1, MessageExpiry: 30, ContentType: []byte("json"),
				ResponseTopic: []byte("reply"), CorrelationData: []byte{1, 2, 3, 4},
				TopicAlias: 3, SubscriptionIDs: []uint32{5, 128},
				User: []UserProperty{{[]byte("k"), []byte("v")}, {[]byte("k2"), []byte("v2")}},
			},
			Payload: []byte("hello"),
		},
	},
	{
		name: "publish v5 topic alias only", v: V5,
		raw: []byte{
			byte(PUBLISH << 4), 7, // fixed header
			0, 0, // topic: empty
			3,          // property length
			0x23, 0, 1, // topic alias
			'x', // payload
		},
		pkt: &Publish{Topic: []byte{}, Props: Properties{Present: ids(0x23), TopicAlias: 1}, Payload: []byte("x")},
	},

	// PUBACK, PUBREC, PUBREL, PUBCOMP
	{
		name: "puback v311", v: V311,
		raw: []byte{byte(PUBACK << 4), 2, 0, 7}, // fixed header, packet id
		pkt: &Ack{Type: PUBACK, PacketID: 7},
	},
	{
		name: "pubrec v311", v: V311,
		raw: []byte{byte(PUBREC << 4), 2, 0, 7}, // fixed header, packet id
		pkt: &Ack{Type: PUBREC, PacketID: 7},
	},
	{
		name: "pubrel v311", v: V311,
		raw: []byte{byte(PUBREL<<4) | 0b0010, 2, 0, 7}, // fixed header, packet id
		pkt: &Ack{Type: PUBREL, PacketID: 7},
	},
	{
		name: "pubcomp v311", v: V311,
		raw: []byte{byte(PUBCOMP << 4), 2, 0, 7}, // fixed header, packet id
		pkt: &Ack{Type: PUBCOMP, PacketID: 7},
	},
	{
		name: "puback v5 short", v: V5,
		raw: []byte{byte(PUBACK << 4), 2, 0, 7}, // fixed header, packet id
		pkt: &Ack{Type: PUBACK, PacketID: 7},
	},
	{
		name: "pubrec v5 code only", v: V5,
		raw: []byte{
			byte(PUBREC << 4), 3, // fixed header
			0, 7, // packet id
			0x10, // reason code: no matching subscribers
		},
		pkt: &Ack{Type: PUBREC, PacketID: 7, Code: NoMatchingSubscribers},
	},
	{
		name: "pubrel v5 code only", v: V5,
		raw: []byte{
			byte(PUBREL<<4) | 0b0010, 3, // fixed header
			0, 7, // packet id
			0x92, // reason code: packet identifier not found
		},
		pkt: &Ack{Type: PUBREL, PacketID: 7, Code: PacketIdentifierNotFound},
	},
	{
		name: "puback v5 properties", v: V5,
		raw: []byte{
			byte(PUBACK << 4), 20, // fixed header
			0, 7, // packet id
			0x87,                                     // reason code: not authorized
			16,                                       // property length
			0x1F, 0, 6, 'd', 'e', 'n', 'i', 'e', 'd', // reason string
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
		},
		pkt: &Ack{Type: PUBACK, PacketID: 7, Code: NotAuthorized, Props: Properties{
			Present: ids(0x1F, 0x26), ReasonString: []byte("denied"),
			User: []UserProperty{{[]byte("k"), []byte("v")}},
		}},
	},
	{
		name: "pubcomp v5 success with empty properties", v: V5, decodeOnly: true,
		raw: []byte{
			byte(PUBCOMP << 4), 4, // fixed header
			0, 7, // packet id
			0, // reason code
			0, // property length
		},
		pkt: &Ack{Type: PUBCOMP, PacketID: 7},
	},

	// SUBSCRIBE, SUBACK
	{
		name: "subscribe v311", v: V311,
		raw: []byte{
			byte(SUBSCRIBE<<4) | 0b0010, 14, // fixed header
			0, 10, // packet id
			0, 3, 'a', '/', '#', // filter
			1,                   // options: QoS 1
			0, 3, 'x', '/', '+', // filter
			2, // options: QoS 2
		},
		pkt: &Subscribe{PacketID: 10, Filters: []Subscription{
			{Filter: []byte("a/#"), QoS: 1},
			{Filter: []byte("x/+"), QoS: 2},
		}},
	},
	{
		name: "subscribe v5", v: V5,
		raw: []byte{
			byte(SUBSCRIBE<<4) | 0b0010, 33, // fixed header
			0, 11, // packet id
			9,          // property length
			0x0B, 0x0A, // subscription id
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
			0, 3, 'a', '/', '#', // filter
			0b0010_1101,                                                       // options: retain handling 2, RAP, no local, QoS 1
			0, 12, '$', 's', 'h', 'a', 'r', 'e', '/', 'g', '/', 'x', '/', 'y', // filter
			0, // options
		},
		pkt: &Subscribe{
			PacketID: 11,
			Props: Properties{Present: ids(0x0B, 0x26), SubscriptionIDs: []uint32{10},
				User: []UserProperty{{[]byte("k"), []byte("v")}}},
			Filters: []Subscription{
				{Filter: []byte("a/#"), QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2},
				{Filter: []byte("$share/g/x/y")},
			},
		},
	},
	{
		name: "suback v311", v: V311,
		raw: []byte{
			byte(SUBACK << 4), 5, // fixed header
			0, 10, // packet id
			0x00, 0x01, 0x80, // return codes
		},
		pkt: &Suback{PacketID: 10, Codes: []Code{GrantedQoS0, GrantedQoS1, UnspecifiedError}},
	},
	{
		name: "suback v5", v: V5,
		raw: []byte{
			byte(SUBACK << 4), 18, // fixed header
			0, 11, // packet id
			12,                   // property length
			0x1F, 0, 2, 'o', 'k', // reason string
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
			0x02, 0xA2, 0x9E, // reason codes
		},
		pkt: &Suback{
			PacketID: 11,
			Props: Properties{Present: ids(0x1F, 0x26), ReasonString: []byte("ok"),
				User: []UserProperty{{[]byte("k"), []byte("v")}}},
			Codes: []Code{GrantedQoS2, WildcardSubscriptionsNotSupported, SharedSubscriptionsNotSupported},
		},
	},

	// UNSUBSCRIBE, UNSUBACK
	{
		name: "unsubscribe v311", v: V311,
		raw: []byte{
			byte(UNSUBSCRIBE<<4) | 0b0010, 10, // fixed header
			0, 12, // packet id
			0, 3, 'a', '/', '#', // filter
			0, 1, 'b', // filter
		},
		pkt: &Unsubscribe{PacketID: 12, Filters: [][]byte{[]byte("a/#"), []byte("b")}},
	},
	{
		name: "unsubscribe v5", v: V5,
		raw: []byte{
			byte(UNSUBSCRIBE<<4) | 0b0010, 15, // fixed header
			0, 13, // packet id
			7,                          // property length
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
			0, 3, 'a', '/', '#', // filter
		},
		pkt: &Unsubscribe{PacketID: 13,
			Props:   Properties{Present: ids(0x26), User: []UserProperty{{[]byte("k"), []byte("v")}}},
			Filters: [][]byte{[]byte("a/#")}},
	},
	{
		name: "unsuback v311", v: V311,
		raw: []byte{byte(UNSUBACK << 4), 2, 0, 12}, // fixed header, packet id
		pkt: &Unsuback{PacketID: 12},
	},
	{
		name: "unsuback v5", v: V5,
		raw: []byte{
			byte(UNSUBACK << 4), 10, // fixed header
			0, 13, // packet id
			5,                    // property length
			0x1F, 0, 2, 'o', 'k', // reason string
			0x00, 0x11, // reason codes
		},
		pkt: &Unsuback{PacketID: 13, Props: Properties{Present: ids(0x1F), ReasonString: []byte("ok")},
			Codes: []Code{Success, NoSubscriptionExisted}},
	},

	// PINGREQ, PINGRESP
	{name: "pingreq", v: V311, raw: []byte{byte(PINGREQ << 4), 0}, pkt: &pingreq{}},
	{name: "pingresp", v: V5, raw: []byte{byte(PINGRESP << 4), 0}, pkt: &pingresp{}},

	// DISCONNECT
	{name: "disconnect v311", v: V311, raw: []byte{byte(DISCONNECT << 4), 0}, pkt: &Disconnect{}},
	{name: "disconnect v5 normal", v: V5, raw: []byte{byte(DISCONNECT << 4), 0}, pkt: &Disconnect{}},
	{
		name: "disconnect v5 code only", v: V5,
		raw: []byte{
			byte(DISCONNECT << 4), 1, // fixed header
			0x04, // reason code: disconnect with will message
		},
		pkt: &Disconnect{Code: DisconnectWithWill},
	},
	{
		name: "disconnect v5 properties", v: V5,
		raw: []byte{
			byte(DISCONNECT << 4), 26, // fixed header
			0x9C,             // reason code: use another server
			24,               // property length
			0x11, 0, 0, 0, 0, // session expiry
			0x1C, 0, 3, 's', 'r', 'v', // server reference
			0x1F, 0, 3, 'b', 'y', 'e', // reason string
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
		},
		pkt: &Disconnect{Code: UseAnotherServer, Props: Properties{
			Present:       ids(0x11, 0x1C, 0x1F, 0x26),
			SessionExpiry: 0, ServerReference: []byte("srv"), ReasonString: []byte("bye"),
			User: []UserProperty{{[]byte("k"), []byte("v")}},
		}},
	},

	// AUTH
	{name: "auth v5 empty", v: V5, raw: []byte{byte(AUTH << 4), 0}, pkt: &Auth{}},
	{
		name: "auth v5 properties", v: V5,
		raw: []byte{
			byte(AUTH << 4), 26, // fixed header
			0x18,                           // reason code: continue authentication
			24,                             // property length
			0x15, 0, 4, 'S', 'C', 'R', 'M', // auth method
			0x16, 0, 2, 1, 2, // auth data
			0x1F, 0, 2, 'o', 'k', // reason string
			0x26, 0, 1, 'k', 0, 1, 'v', // user property
		},
		pkt: &Auth{Code: ContinueAuthentication, Props: Properties{
			Present:    ids(0x15, 0x16, 0x1F, 0x26),
			AuthMethod: []byte("SCRM"), AuthData: []byte{1, 2}, ReasonString: []byte("ok"),
			User: []UserProperty{{[]byte("k"), []byte("v")}},
		}},
	},

	// Invalid fixed headers.
	{name: "reserved type 0", v: V311, raw: []byte{0x00, 0}, err: MalformedPacket},
	{name: "subscribe flags 0", v: V311, raw: []byte{byte(SUBSCRIBE << 4), 0}, err: MalformedPacket},
	{name: "puback flags 1", v: V311, raw: []byte{byte(PUBACK<<4) | 1, 2, 0, 1}, err: MalformedPacket},
	{name: "pubrel flags 0", v: V5, raw: []byte{byte(PUBREL << 4), 2, 0, 1}, err: MalformedPacket},
	{name: "publish qos 3", v: V311, raw: []byte{byte(PUBLISH<<4) | 0b0110, 3, 0, 1, 'a'}, err: MalformedPacket},
	{
		name: "remaining length 5 bytes", v: V311,
		raw: []byte{byte(PUBLISH << 4), 0xFF, 0xFF, 0xFF, 0xFF, 0x7F},
		err: MalformedPacket,
	},
	{name: "remaining length not minimal", v: V311, raw: []byte{byte(PINGREQ << 4), 0x80, 0x00}, err: MalformedPacket},

	// Invalid CONNECT.
	{
		name: "connect bad protocol name", v: V311,
		raw: []byte{byte(CONNECT << 4), 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 2, 0, 0, 0, 0},
		err: UnsupportedProtocolVersion,
	},
	{
		name: "connect level 6", v: V5,
		raw: []byte{byte(CONNECT << 4), 12, 0, 4, 'M', 'Q', 'T', 'T', 6, 2, 0, 0, 0, 0},
		err: UnsupportedProtocolVersion,
	},
	{
		name: "connect MQIsdp level 4", v: V311,
		raw: []byte{byte(CONNECT << 4), 14, 0, 6, 'M', 'Q', 'I', 's', 'd', 'p', 4, 2, 0, 0, 0, 0},
		err: UnsupportedProtocolVersion,
	},
	{
		name: "connect reserved flag", v: V311,
		raw: []byte{byte(CONNECT << 4), 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0b0000_0011, 0, 0, 0, 0},
		err: MalformedPacket,
	},
	{
		name: "connect will qos without will", v: V311,
		raw: []byte{byte(CONNECT << 4), 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0b0000_1010, 0, 0, 0, 0},
		err: MalformedPacket,
	},
	{
		name: "connect will retain without will", v: V311,
		raw: []byte{byte(CONNECT << 4), 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0b0010_0010, 0, 0, 0, 0},
		err: MalformedPacket,
	},
	{
		name: "connect will qos 3", v: V311,
		raw: []byte{byte(CONNECT << 4), 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0b0001_1110, 0, 0, 0, 0},
		err: MalformedPacket,
	},
	{
		name: "connect v311 password without user name", v: V311,
		raw: []byte{byte(CONNECT << 4), 15, 0, 4, 'M', 'Q', 'T', 'T', 4, 0b0100_0010, 0, 0, 0, 0, 0, 1, 'p'},
		err: MalformedPacket,
	},
	{
		name: "connect client id invalid utf-8", v: V311,
		raw: []byte{byte(CONNECT << 4), 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 0xFF},
		err: MalformedPacket,
	},
	{
		name: "connect client id with U+0000", v: V311,
		raw: []byte{byte(CONNECT << 4), 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 1, 0},
		err: MalformedPacket,
	},
	{
		name: "connect client id truncated", v: V311,
		raw: []byte{byte(CONNECT << 4), 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 5, 'a'},
		err: MalformedPacket,
	},
	{
		name: "connect trailing bytes", v: V311,
		raw: []byte{byte(CONNECT << 4), 13, 0, 4, 'M', 'Q', 'T', 'T', 4, 2, 0, 0, 0, 0, 'x'},
		err: MalformedPacket,
	},
	{
		name: "connect v5 property length past end", v: V5,
		raw: []byte{byte(CONNECT << 4), 13, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 9, 0, 0},
		err: MalformedPacket,
	},
	{
		name: "connect v5 unknown property", v: V5,
		raw: []byte{byte(CONNECT << 4), 15, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 2, 0x05, 0, 0, 0},
		err: MalformedPacket,
	},
	{
		name: "connect v5 topic alias not allowed", v: V5,
		raw: []byte{byte(CONNECT << 4), 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 3, 0x23, 0, 1, 0, 0},
		err: ProtocolError,
	},
	{
		name: "connect v5 duplicate session expiry", v: V5,
		raw: []byte{byte(CONNECT << 4), 23, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0,
			10, 0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 2, 0, 0},
		err: ProtocolError,
	},
	{
		name: "connect v5 receive maximum 0", v: V5,
		raw: []byte{byte(CONNECT << 4), 16, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 3, 0x21, 0, 0, 0, 0},
		err: ProtocolError,
	},
	{
		name: "connect v5 maximum packet size 0", v: V5,
		raw: []byte{byte(CONNECT << 4), 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 5, 0x27, 0, 0, 0, 0, 0, 0},
		err: ProtocolError,
	},
	{
		name: "connect v5 request problem info 2", v: V5,
		raw: []byte{byte(CONNECT << 4), 15, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 2, 0x17, 2, 0, 0},
		err: ProtocolError,
	},
	{
		name: "connect v5 session expiry in will properties", v: V5,
		raw: []byte{byte(CONNECT << 4), 24, 0, 4, 'M', 'Q', 'T', 'T', 5, 0b0000_0110, 0, 0, 0, 0, 0,
			5, 0x11, 0, 0, 0, 1, 0, 1, 't', 0, 0},
		err: ProtocolError,
	},
	{
		name: "connect v5 user property invalid utf-8", v: V5,
		raw: []byte{byte(CONNECT << 4), 20, 0, 4, 'M', 'Q', 'T', 'T', 5, 2, 0, 0, 7, 0x26, 0, 1, 'k', 0, 1, 0xC0, 0, 0},
		err: MalformedPacket,
	},

	// Invalid CONNACK.
	{name: "connack v311 reserved flags", v: V311, raw: []byte{byte(CONNACK << 4), 2, 2, 0}, err: MalformedPacket},
	{name: "connack v311 return code 6", v: V311, raw: []byte{byte(CONNACK << 4), 2, 0, 6}, err: ProtocolError},
	{name: "connack v5 maximum qos 2", v: V5, raw: []byte{byte(CONNACK << 4), 5, 0, 0, 2, 0x24, 2}, err: ProtocolError},
	{name: "connack v5 topic alias not allowed", v: V5, raw: []byte{byte(CONNACK << 4), 6, 0, 0, 3, 0x23, 0, 1}, err: ProtocolError},

	// Invalid PUBLISH.
	{name: "publish v311 dup qos 0", v: V311, raw: []byte{byte(PUBLISH<<4) | 0b1000, 3, 0, 1, 'a'}, err: MalformedPacket},
	{name: "publish v311 packet id 0", v: V311, raw: []byte{byte(PUBLISH<<4) | 0b0010, 5, 0, 1, 'a', 0, 0}, err: ProtocolError},
	{name: "publish v311 packet id truncated", v: V311, raw: []byte{byte(PUBLISH<<4) | 0b0010, 4, 0, 1, 'a', 0}, err: MalformedPacket},
	{name: "publish v311 empty topic", v: V311, raw: []byte{byte(PUBLISH << 4), 2, 0, 0}, err: ProtocolError},
	{name: "publish v5 empty topic without alias", v: V5, raw: []byte{byte(PUBLISH << 4), 3, 0, 0, 0}, err: ProtocolError},
	{name: "publish wildcard topic", v: V311, raw: []byte{byte(PUBLISH << 4), 5, 0, 3, 'a', '/', '+'}, err: TopicNameInvalid},
	{name: "publish topic surrogate", v: V311, raw: []byte{byte(PUBLISH << 4), 5, 0, 3, 0xED, 0xA0, 0x80}, err: MalformedPacket},
	{name: "publish topic U+0000", v: V311, raw: []byte{byte(PUBLISH << 4), 4, 0, 2, 'a', 0}, err: MalformedPacket},
	{name: "publish topic length past end", v: V311, raw: []byte{byte(PUBLISH << 4), 3, 0xFF, 0xFF, 'a'}, err: MalformedPacket},
	{name: "publish v5 subscription id 0", v: V5, raw: []byte{byte(PUBLISH << 4), 6, 0, 1, 'a', 2, 0x0B, 0}, err: ProtocolError},
	{name: "publish v5 topic alias 0", v: V5, raw: []byte{byte(PUBLISH << 4), 7, 0, 1, 'a', 3, 0x23, 0, 0}, err: TopicAliasInvalid},
	{name: "publish v5 payload format 2", v: V5, raw: []byte{byte(PUBLISH << 4), 6, 0, 1, 'a', 2, 0x01, 2}, err: ProtocolError},
	{name: "publish v5 session expiry not allowed", v: V5, raw: []byte{byte(PUBLISH << 4), 9, 0, 1, 'a', 5, 0x11, 0, 0, 0, 1}, err: ProtocolError},
	{
		name: "publish v5 duplicate message expiry", v: V5,
		raw: []byte{byte(PUBLISH << 4), 14, 0, 1, 'a', 10, 0x02, 0, 0, 0, 1, 0x02, 0, 0, 0, 1},
		err: ProtocolError,
	},
	{
		name: "publish v5 response topic U+0000", v: V5,
		raw: []byte{byte(PUBLISH << 4), 8, 0, 1, 'a', 4, 0x08, 0, 1, 0},
		err: MalformedPacket,
	},
	{name: "publish v5 property truncated", v: V5, raw: []byte{byte(PUBLISH << 4), 6, 0, 1, 'a', 2, 0x02, 0}, err: MalformedPacket},
	{
		name: "publish v5 property length 5 bytes", v: V5,
		raw: []byte{byte(PUBLISH << 4), 8, 0, 1, 'a', 0x80, 0x80, 0x80, 0x80, 0x01},
		err: MalformedPacket,
	},

	// Invalid acknowledgements.
	{name: "puback v311 trailing", v: V311, raw: []byte{byte(PUBACK << 4), 3, 0, 7, 0}, err: MalformedPacket},
	{name: "puback packet id 0", v: V311, raw: []byte{byte(PUBACK << 4), 2, 0, 0}, err: ProtocolError},
	{name: "puback truncated", v: V5, raw: []byte{byte(PUBACK << 4), 1, 0}, err: MalformedPacket},
	{name: "puback v5 code 0x92", v: V5, raw: []byte{byte(PUBACK << 4), 3, 0, 7, 0x92}, err: ProtocolError},
	{name: "pubrel v5 code 0x10", v: V5, raw: []byte{byte(PUBREL<<4) | 2, 3, 0, 7, 0x10}, err: ProtocolError},
	{name: "puback v5 trailing after properties", v: V5, raw: []byte{byte(PUBACK << 4), 5, 0, 7, 0, 0, 0}, err: MalformedPacket},
	{name: "puback v5 user property truncated", v: V5, raw: []byte{byte(PUBACK << 4), 7, 0, 7, 0, 3, 0x26, 0, 1}, err: MalformedPacket},

	// Invalid SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK.
	{name: "subscribe no filters", v: V311, raw: []byte{byte(SUBSCRIBE<<4) | 2, 2, 0, 1}, err: ProtocolError},
	{name: "subscribe v5 no filters", v: V5, raw: []byte{byte(SUBSCRIBE<<4) | 2, 3, 0, 1, 0}, err: ProtocolError},
	{name: "subscribe v311 option bits", v: V311, raw: []byte{byte(SUBSCRIBE<<4) | 2, 6, 0, 1, 0, 1, 'a', 0x04}, err: MalformedPacket},
	{name: "subscribe v5 reserved bits", v: V5, raw: []byte{byte(SUBSCRIBE<<4) | 2, 7, 0, 1, 0, 0, 1, 'a', 0x40}, err: MalformedPacket},
	{name: "subscribe qos 3", v: V5, raw: []byte{byte(SUBSCRIBE<<4) | 2, 7, 0, 1, 0, 0, 1, 'a', 0x03}, err: MalformedPacket},
	{name: "subscribe retain handling 3", v: V5, raw: []byte{byte(SUBSCRIBE<<4) | 2, 7, 0, 1, 0, 0, 1, 'a', 0x30}, err: ProtocolError},
	{name: "subscribe missing options", v: V311, raw: []byte{byte(SUBSCRIBE<<4) | 2, 5, 0, 1, 0, 1, 'a'}, err: MalformedPacket},
	{name: "subscribe packet id 0", v: V311, raw: []byte{byte(SUBSCRIBE<<4) | 2, 6, 0, 0, 0, 1, 'a', 0}, err: ProtocolError},
	{
		name: "subscribe v5 two subscription ids", v: V5,
		raw: []byte{byte(SUBSCRIBE<<4) | 2, 11, 0, 1, 4, 0x0B, 1, 0x0B, 2, 0, 1, 'a', 0},
		err: ProtocolError,
	},
	{name: "subscribe filter invalid utf-8", v: V311, raw: []byte{byte(SUBSCRIBE<<4) | 2, 6, 0, 1, 0, 1, 0x80, 0}, err: MalformedPacket},
	{name: "suback v311 code 0x87", v: V311, raw: []byte{byte(SUBACK << 4), 3, 0, 1, 0x87}, err: ProtocolError},
	{name: "suback v311 no codes", v: V311, raw: []byte{byte(SUBACK << 4), 2, 0, 1}, err: ProtocolError},
	{name: "unsubscribe no filters", v: V311, raw: []byte{byte(UNSUBSCRIBE<<4) | 2, 2, 0, 1}, err: ProtocolError},
	{name: "unsubscribe flags 0", v: V311, raw: []byte{byte(UNSUBSCRIBE << 4), 5, 0, 1, 0, 1, 'a'}, err: MalformedPacket},
	{name: "unsuback v311 trailing", v: V311, raw: []byte{byte(UNSUBACK << 4), 3, 0, 1, 0}, err: MalformedPacket},
	{name: "unsuback v5 no codes", v: V5, raw: []byte{byte(UNSUBACK << 4), 3, 0, 1, 0}, err: ProtocolError},

	// Invalid PINGREQ, DISCONNECT, AUTH.
	{name: "pingreq with body", v: V311, raw: []byte{byte(PINGREQ << 4), 1, 0}, err: MalformedPacket},
	{name: "disconnect v311 with body", v: V311, raw: []byte{byte(DISCONNECT << 4), 1, 0}, err: MalformedPacket},
	{name: "disconnect v5 code 0x01", v: V5, raw: []byte{byte(DISCONNECT << 4), 1, 0x01}, err: ProtocolError},
	{name: "disconnect v5 assigned client id", v: V5, raw: []byte{byte(DISCONNECT << 4), 6, 0, 4, 0x12, 0, 1, 'c'}, err: ProtocolError},
	{name: "auth v311", v: V311, raw: []byte{byte(AUTH << 4), 0}, err: ProtocolError},
	{name: "auth v5 code 0x80", v: V5, raw: []byte{byte(AUTH << 4), 1, 0x80}, err: ProtocolError},
}
