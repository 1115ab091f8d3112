package broker

import (
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"edgebroker/broker/packet"
)

// notTravelling are the properties a PUBLISH may carry that do not travel
// with the message, and why.
var notTravelling = map[byte]string{
	packet.PropSubscriptionID: "a subscription's: set per delivery",
	packet.PropTopicAlias:     "a connection's: set per connection",
}

// fillProps sets every field of p to a value that is not zero.
func fillProps(p *packet.Properties) {
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Interface().(type) {
		case uint64: // Present
		case byte, uint16, uint32:
			f.SetUint(1)
		case []byte:
			f.SetBytes([]byte(v.Type().Field(i).Name))
		case []uint32:
			f.Set(reflect.ValueOf([]uint32{7}))
		case []packet.UserProperty:
			f.Set(reflect.ValueOf([]packet.UserProperty{{Key: []byte("k1"), Value: []byte("v1")}, {Key: []byte("k2")}}))
		default:
			panic("fillProps: field " + v.Type().Field(i).Name + " of an unknown type")
		}
	}
}

// setFields returns the names of the fields of p that are not zero, but
// for Present.
func setFields(p *packet.Properties) []string {
	v := reflect.ValueOf(p).Elem()
	var names []string
	for i := range v.NumField() {
		if name := v.Type().Field(i).Name; name != "Present" && !v.Field(i).IsZero() {
			names = append(names, name)
		}
	}
	return names
}

// publishProps asks the packet codec which properties a PUBLISH may
// carry, and returns the field of packet.Properties each one lives in: a
// PUBLISH with each property alone is encoded and decoded.
func publishProps(t *testing.T) map[byte]string {
	t.Helper()
	fields := map[byte]string{}
	for id := byte(1); id < 64; id++ {
		var pr packet.Properties
		fillProps(&pr)
		pr.Present = 1 << id
		// The lists are encoded whenever they are not empty.
		if id != packet.PropUser {
			pr.User = nil
		}
		if id != packet.PropSubscriptionID {
			pr.SubscriptionIDs = nil
		}
		p := packet.Publish{Topic: []byte("t"), QoS: 1, PacketID: 1, Props: pr}
		b := p.Append(nil, packet.V5)
		h, n, err := packet.ParseFixedHeader(b)
		if err != nil {
			t.Fatalf("property %#x: %v", id, err)
		}
		var got packet.Publish
		if got.Decode(packet.V5, h.Flags, b[n:]) != nil {
			continue // not allowed in a PUBLISH
		}
		switch names := setFields(&got.Props); len(names) {
		case 0: // not a property
		case 1:
			fields[id] = names[0]
		default:
			t.Fatalf("property %#x decodes into fields %v", id, names)
		}
	}
	if len(fields) == 0 {
		t.Fatal("no PUBLISH property found")
	}
	return fields
}

// TestTravellingList: every property a PUBLISH may carry (by the packet
// codec's rules) is on the travelling list, or is user properties or
// message expiry (which travel beside it), or is declared not to travel;
// each entry of the list is a PUBLISH property, once, whose field
// travellingField finds; and the list fits the saved flag byte.
func TestTravellingList(t *testing.T) {
	fields := publishProps(t)
	on := map[byte]bool{}
	for _, id := range travelling {
		if on[id] {
			t.Errorf("property %#x twice on the list", id)
		}
		on[id] = true
	}
	for id, field := range fields {
		if !on[id] && id != packet.PropUser && id != packet.PropMessageExpiry && notTravelling[id] == "" {
			t.Errorf("PUBLISH property %#x (%s) neither travels nor is declared not to (add it to travelling and travellingField, or to notTravelling)", id, field)
		}
	}
	for _, id := range travelling {
		if fields[id] == "" {
			t.Errorf("travelling property %#x is not a PUBLISH property", id)
			continue
		}
		var pr packet.Properties
		if num, str := travellingField(&pr, id); num != nil {
			*num = 1
		} else {
			*str = []byte("x")
		}
		if got := setFields(&pr); len(got) != 1 || got[0] != fields[id] {
			t.Errorf("travellingField(%#x) sets %v, want %s", id, got, fields[id])
		}
	}
	if len(travelling) > 8 {
		t.Errorf("%d travelling properties: the saved flags are one byte", len(travelling))
	}
}

// TestTravellingRoundTrip: a PUBLISH with every property set goes
// Publish → Message → StoredMessage → saved bytes → StoredMessage →
// Message → the PUBLISH a subscriber gets, and arrives with every
// property that travels, field by field (message expiry counted down),
// and none that does not.
func TestTravellingRoundTrip(t *testing.T) {
	fields := publishProps(t)
	s := New(Config{})
	in := packet.Publish{Topic: []byte("a/b"), Payload: []byte("payload"), QoS: 1, PacketID: 9, Retain: true}
	fillProps(&in.Props)
	in.Props.Present = 1<<(packet.PropSharedSubAvailable+1) - 2 // every property
	in.Props.MessageExpiry = 3600
	now := time.Unix(1_700_000_000, 0)

	m := s.newMessage(&in, now, nil)
	sm := storedMessage(m)
	m.release()
	b, err := sm.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back StoredMessage
	if err := back.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	later := now.Add(10 * time.Second)
	m = s.restoreMessage(&back, true, later)
	defer m.release()
	// What writePublish sends a 5.0 subscriber.
	out := m.Props
	if rem, ok := m.remaining(later); !ok || m.Expiry == 0 {
		t.Fatal("message expiry lost")
	} else {
		out.Set(packet.PropMessageExpiry)
		out.MessageExpiry = rem
	}

	var want packet.Properties
	wv, iv := reflect.ValueOf(&want).Elem(), reflect.ValueOf(&in.Props).Elem()
	for id, field := range fields {
		if notTravelling[id] != "" {
			continue
		}
		wv.FieldByName(field).Set(iv.FieldByName(field))
		if id != packet.PropUser { // User has no presence bit: it is sent when not empty
			want.Set(id)
		}
	}
	want.MessageExpiry = 3600 - 10
	if diff := cmp.Diff(want, out, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("properties after the round trip (-want +got):\n%s", diff)
	}
	if string(m.Topic) != "a/b" || string(m.Payload) != "payload" || m.QoS != 1 || !m.Retain {
		t.Errorf("message after the round trip: %q %q QoS %d retain %v", m.Topic, m.Payload, m.QoS, m.Retain)
	}
}
