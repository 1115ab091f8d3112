package packet

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecode(t *testing.T) {
	for _, tt := range packetTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeAny(tt.v, bytes.Clone(tt.raw))
			code, other := codeOf(err)
			if other != nil {
				t.Fatalf("decode: %v", other)
			}
			if tt.err != 0 {
				if err == nil {
					t.Fatalf("decode: got nil error, want %v", tt.err)
				}
				if code != tt.err {
					t.Errorf("decode: got %v, want code %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if diff := cmp.Diff(tt.pkt, got, cmpOpts); diff != "" {
				t.Errorf("decode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	for _, tt := range packetTests {
		if tt.err != 0 || tt.decodeOnly {
			continue
		}
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			got, err := appendAny(bytes.Clone(prefix), tt.v, tt.pkt)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, prefix) {
				t.Fatalf("Append clobbered dst: %q", got)
			}
			if diff := cmp.Diff(tt.raw, got[len(prefix):]); diff != "" {
				t.Errorf("encode mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestDecodeReuse decodes every valid packet into values that previously
// held other packets, so stale fields would show up.
func TestDecodeReuse(t *testing.T) {
	var (
		c  Connect
		ca Connack
		p  Publish
		a  Ack
		s  Subscribe
		sa Suback
		u  Unsubscribe
		ua Unsuback
		d  Disconnect
		au Auth
	)
	for round := 0; round < 2; round++ {
		for _, tt := range packetTests {
			if tt.err != 0 {
				continue
			}
			h, n, err := ParseFixedHeader(tt.raw)
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			b := tt.raw[n:]
			var got any
			switch h.Type {
			case CONNECT:
				got, err = &c, c.Decode(h.Flags, b)
			case CONNACK:
				got, err = &ca, ca.Decode(tt.v, h.Flags, b)
			case PUBLISH:
				got, err = &p, p.Decode(tt.v, h.Flags, b)
			case PUBACK, PUBREC, PUBREL, PUBCOMP:
				got, err = &a, a.Decode(h.Type, tt.v, h.Flags, b)
			case SUBSCRIBE:
				got, err = &s, s.Decode(tt.v, h.Flags, b)
			case SUBACK:
				got, err = &sa, sa.Decode(tt.v, h.Flags, b)
			case UNSUBSCRIBE:
				got, err = &u, u.Decode(tt.v, h.Flags, b)
			case UNSUBACK:
				got, err = &ua, ua.Decode(tt.v, h.Flags, b)
			case DISCONNECT:
				got, err = &d, d.Decode(tt.v, h.Flags, b)
			case AUTH:
				got, err = &au, au.Decode(tt.v, h.Flags, b)
			default:
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if diff := cmp.Diff(tt.pkt, got, cmpOpts); diff != "" {
				t.Errorf("%s: reused decode mismatch (-want +got):\n%s", tt.name, diff)
			}
		}
	}
}

func TestParseFixedHeader(t *testing.T) {
	tests := []struct {
		in      []byte
		want    FixedHeader
		wantN   int
		wantErr error
	}{
		{nil, FixedHeader{}, 0, ErrIncomplete},
		{[]byte{0x30}, FixedHeader{}, 0, ErrIncomplete},
		{[]byte{0x30, 0x80}, FixedHeader{}, 0, ErrIncomplete},
		{[]byte{0x30, 0x80, 0x80, 0x80}, FixedHeader{}, 0, ErrIncomplete},
		{[]byte{0x30, 0}, FixedHeader{PUBLISH, 0, 0}, 2, nil},
		{[]byte{0x3D, 127, 'x'}, FixedHeader{PUBLISH, 0xD, 127}, 2, nil},
		{[]byte{0x30, 0x80, 0x01}, FixedHeader{PUBLISH, 0, 128}, 3, nil},
		{[]byte{0x30, 0xFF, 0x7F}, FixedHeader{PUBLISH, 0, 16383}, 3, nil},
		{[]byte{0x30, 0x80, 0x80, 0x01}, FixedHeader{PUBLISH, 0, 16384}, 4, nil},
		{[]byte{0x30, 0xFF, 0xFF, 0xFF, 0x7F}, FixedHeader{PUBLISH, 0, MaxRemaining}, 5, nil},
		{[]byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF}, FixedHeader{}, 0, errVarint},
		{[]byte{0x30, 0x80, 0x80, 0x00}, FixedHeader{}, 0, errVarint},
		{[]byte{0x00, 0}, FixedHeader{}, 0, errReservedType},
		{[]byte{0x00}, FixedHeader{}, 0, errReservedType},
		{[]byte{0x36, 0}, FixedHeader{}, 0, errPublishQoS},
		{[]byte{0x62, 2}, FixedHeader{PUBREL, 2, 2}, 2, nil},
		{[]byte{0x60, 2}, FixedHeader{}, 0, errFixedFlags},
		{[]byte{0xA2, 2}, FixedHeader{UNSUBSCRIBE, 2, 2}, 2, nil},
		{[]byte{0xC1, 0}, FixedHeader{}, 0, errFixedFlags},
		{[]byte{0xF0, 0}, FixedHeader{AUTH, 0, 0}, 2, nil},
	}
	for _, tt := range tests {
		h, n, err := ParseFixedHeader(tt.in)
		if h != tt.want || n != tt.wantN || err != tt.wantErr {
			t.Errorf("ParseFixedHeader(% x) = %+v, %d, %v; want %+v, %d, %v",
				tt.in, h, n, err, tt.want, tt.wantN, tt.wantErr)
		}
	}
}

func TestVarint(t *testing.T) {
	for _, v := range []uint32{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, MaxRemaining} {
		b := AppendVarint(nil, v)
		if got, want := len(b), VarintLen(v); got != want {
			t.Errorf("len(AppendVarint(%d)) = %d, VarintLen = %d", v, got, want)
		}
		got, n := uvarint(b)
		if got != v || n != len(b) {
			t.Errorf("uvarint(AppendVarint(%d)) = %d, %d", v, got, n)
		}
	}
}

func TestCodes(t *testing.T) {
	if got, want := MalformedPacket.Error(), "malformed packet (0x81)"; got != want {
		t.Errorf("MalformedPacket.Error() = %q, want %q", got, want)
	}
	if got, want := Code(0x03).Error(), "reason code (0x03)"; got != want {
		t.Errorf("Code(3).Error() = %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(100, func() { _ = ServerBusy.Error() }); n != 0 {
		t.Errorf("Code.Error allocs = %v, want 0", n)
	}
	if got, want := errTruncated.Error(), "packet: truncated packet: malformed packet (0x81)"; got != want {
		t.Errorf("Error.Error() = %q, want %q", got, want)
	}
	if !errors.Is(errTruncated, MalformedPacket) {
		t.Errorf("errors.Is(errTruncated, MalformedPacket) = false")
	}
	for _, tt := range []struct {
		err  error
		want Code
	}{
		{nil, Success},
		{errPacketID, ProtocolError},
		{NotAuthorized, NotAuthorized},
		{errors.Join(errors.New("x"), errProtocol), UnsupportedProtocolVersion},
		{errors.New("x"), UnspecifiedError},
		{ErrIncomplete, UnspecifiedError},
	} {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("CodeOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestConnackV3(t *testing.T) {
	for _, tt := range []struct {
		in   Code
		want byte
	}{
		{Success, 0},
		{UnsupportedProtocolVersion, 1},
		{ClientIdentifierNotValid, 2},
		{ServerUnavailable, 3},
		{ServerBusy, 3},
		{ServerShuttingDown, 3},
		{UseAnotherServer, 3},
		{BadUsernameOrPassword, 4},
		{BadAuthenticationMethod, 4},
		{NotAuthorized, 5},
		{Banned, 5},
		{MalformedPacket, 5},
		{UnspecifiedError, 5},
	} {
		if got := ConnackV3(tt.in); got != tt.want {
			t.Errorf("ConnackV3(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// TestConnectVersionOnError checks that the version is known when a
// CONNECT fails after the protocol level, so the broker can answer in kind.
func TestConnectVersionOnError(t *testing.T) {
	var c Connect
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0b0000_0011, 0, 0, 0, 0, 0}
	err := c.Decode(0, body)
	if got, want := CodeOf(err), MalformedPacket; got != want {
		t.Errorf("Decode: got %v, want %v", err, want)
	}
	if got, want := c.Version, V5; got != want {
		t.Errorf("Version = %d, want %d", got, want)
	}
}

// TestDecodeAliasesDoNotGrow checks that appending to a decoded slice does
// not overwrite the rest of the read buffer.
func TestDecodeAliasesDoNotGrow(t *testing.T) {
	raw := []byte{0, 1, 'a', 'b', 'c'}
	var p Publish
	if err := p.Decode(V311, 0, raw); err != nil {
		t.Fatal(err)
	}
	_ = append(p.Topic, 'X')
	if got, want := string(raw), "\x00\x01abc"; got != want {
		t.Errorf("buffer after append to Topic = %q, want %q", got, want)
	}
}
