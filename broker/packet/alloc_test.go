package packet

import "testing"

// publishV5 is a PUBLISH carrying the properties a request/response
// exchange and a fan-out use.
func publishV5() *Publish {
	return &Publish{
		QoS: 1, Topic: []byte("site/gw1/sensors/temp"), PacketID: 42,
		Props: Properties{
			Present:       1<<PropPayloadFormat | 1<<PropMessageExpiry | 1<<PropResponseTopic | 1<<PropCorrelationData | 1<<PropContentType,
			PayloadFormat: 1, MessageExpiry: 3600, ContentType: []byte("application/json"),
			ResponseTopic: []byte("site/gw1/reply"), CorrelationData: []byte{1, 2, 3, 4, 5, 6, 7, 8},
			SubscriptionIDs: []uint32{7, 300},
			User: []UserProperty{
				{[]byte("trace"), []byte("abc123")},
				{[]byte("unit"), []byte("celsius")},
			},
		},
		Payload: []byte(`{"t":21.5}`),
	}
}

func publishV3() *Publish {
	return &Publish{QoS: 1, Topic: []byte("site/gw1/sensors/temp"), PacketID: 42, Payload: []byte(`{"t":21.5}`)}
}

// assertNoAllocs fails t if f allocates.
func assertNoAllocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(1000, f); n != 0 {
		t.Errorf("%s: %v allocs per run, want 0", name, n)
	}
}

func TestAllocsPublish(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    byte
		pkt  *Publish
	}{
		{"v311", V311, publishV3()},
		{"v5", V5, publishV5()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 0, 512)
			assertNoAllocs(t, "Publish.Append", func() {
				buf = tc.pkt.Append(buf[:0], tc.v)
			})
			assertNoAllocs(t, "Publish.Size", func() { _ = tc.pkt.Size(tc.v) })
			raw := tc.pkt.Append(nil, tc.v)
			var p Publish
			decode := func() {
				h, n, err := ParseFixedHeader(raw)
				if err != nil {
					t.Fatal(err)
				}
				if err := p.Decode(tc.v, h.Flags, raw[n:]); err != nil {
					t.Fatal(err)
				}
			}
			decode() // grow p's slices
			assertNoAllocs(t, "Publish.Decode", decode)
			if got, want := len(p.Props.User), len(tc.pkt.Props.User); tc.v == V5 && got != want {
				t.Errorf("decoded %d user properties, want %d", got, want)
			}
		})
	}
}

func TestAllocsAck(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    byte
		pkt  Ack
	}{
		{"v311", V311, Ack{Type: PUBACK, PacketID: 7}},
		{"v5 short", V5, Ack{Type: PUBACK, PacketID: 7}},
		{"v5 reason", V5, Ack{Type: PUBACK, PacketID: 7, Code: NotAuthorized, Props: Properties{
			Present: 1 << PropReasonString, ReasonString: []byte("denied"),
			User: []UserProperty{{[]byte("k"), []byte("v")}},
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, 0, 64)
			assertNoAllocs(t, "Ack.Append", func() { buf = tc.pkt.Append(buf[:0], tc.v) })
			raw := tc.pkt.Append(nil, tc.v)
			var a Ack
			decode := func() {
				h, n, err := ParseFixedHeader(raw)
				if err != nil {
					t.Fatal(err)
				}
				if err := a.Decode(h.Type, tc.v, h.Flags, raw[n:]); err != nil {
					t.Fatal(err)
				}
			}
			decode()
			assertNoAllocs(t, "Ack.Decode", decode)
		})
	}
}

func TestAllocsFixedHeader(t *testing.T) {
	raw := []byte{0x32, 0xFF, 0xFF, 0x7F}
	assertNoAllocs(t, "ParseFixedHeader", func() {
		if _, _, err := ParseFixedHeader(raw); err != nil {
			t.Fatal(err)
		}
	})
	assertNoAllocs(t, "ParseFixedHeader incomplete", func() { _, _, _ = ParseFixedHeader(raw[:2]) })
}

// TestAllocsDecodeErrors checks that failing decodes do not allocate.
func TestAllocsDecodeErrors(t *testing.T) {
	for _, tt := range packetTests {
		if tt.err == 0 {
			continue
		}
		raw := tt.raw
		// Reused values: a failing decode may still grow a slice once.
		var (
			p Publish
			c Connect
			a Ack
			s Subscribe
		)
		assertNoAllocs(t, tt.name, func() {
			h, n, err := ParseFixedHeader(raw)
			if err != nil {
				return
			}
			b := raw[n:]
			switch h.Type {
			case PUBLISH:
				_ = p.Decode(tt.v, h.Flags, b)
			case CONNECT:
				_ = c.Decode(h.Flags, b)
			case PUBACK, PUBREC, PUBREL, PUBCOMP:
				_ = a.Decode(h.Type, tt.v, h.Flags, b)
			case SUBSCRIBE:
				_ = s.Decode(tt.v, h.Flags, b)
			}
		})
	}
}

func benchmarkPublishDecode(b *testing.B, v byte, pkt *Publish) {
	raw := pkt.Append(nil, v)
	var p Publish
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		h, n, err := ParseFixedHeader(raw)
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Decode(v, h.Flags, raw[n:]); err != nil {
			b.Fatal(err)
		}
	}
}

func benchmarkPublishEncode(b *testing.B, v byte, pkt *Publish) {
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	b.SetBytes(int64(pkt.Size(v)))
	for b.Loop() {
		buf = pkt.Append(buf[:0], v)
	}
}

func BenchmarkPublishDecodeV3(b *testing.B) { benchmarkPublishDecode(b, V311, publishV3()) }
func BenchmarkPublishDecodeV5(b *testing.B) { benchmarkPublishDecode(b, V5, publishV5()) }
func BenchmarkPublishEncodeV3(b *testing.B) { benchmarkPublishEncode(b, V311, publishV3()) }
func BenchmarkPublishEncodeV5(b *testing.B) { benchmarkPublishEncode(b, V5, publishV5()) }
