package broker

import (
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/broker/packet"
)

// Message is a published application message kept by the broker: queued for
// a session, in flight, or retained. It owns its bytes. Messages are
// reference counted and recycled through a pool, so routing a message to
// stored destinations allocates nothing in steady state.
type Message struct {
	refs atomic.Int32 // references; the last release recycles the message
	// Expiry is the message expiry interval in seconds; 0 means none.
	// (Beside refs: two 4-byte fields in one word keep a Message in its
	// size class.)
	Expiry uint32
	buf    []byte     // backing store for Topic, Payload and the property values
	pool   *sync.Pool // set by Server.newMessage, then read-only: its Server's messages

	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	// Props carries the 5.0 properties that travel with the message
	// (travelling, and user properties). Message expiry is kept in
	// Received and Expiry.
	Props packet.Properties
	// Received is when the broker got the message (Unix nanoseconds);
	// Expiry (above) counts from it.
	Received int64
	// Sender is the publishing client; nil for in-process publishers.
	Sender *Client

	// jid is the message's id in the journal once a delivery of it was
	// journaled; 0 before. Read and written by journal.Enqueue under its
	// lock.
	jid uint64
}

// maxPooledBuf is the largest message buffer kept for reuse.
const maxPooledBuf = 64 << 10

// capExpiry applies Limits.MaxMessageExpiry to a client's message.
func (s *Server) capExpiry(m *Message) {
	if max := s.lim.MaxMessageExpiry; max > 0 && (m.Expiry == 0 || m.Expiry > max) {
		m.Expiry = max
	}
}

// newMessage copies p into a Message from the server's pool with one
// reference. (The pointer to the pool costs no memory: a Message stays in
// the 448-byte size class.)
func (s *Server) newMessage(p *packet.Publish, now time.Time, sender *Client) *Message {
	m := s.messages.Get().(*Message)
	m.pool = &s.messages
	m.refs.Store(1)
	n := len(p.Topic) + len(p.Payload) + travellingLen(&p.Props)
	if cap(m.buf) < n {
		m.buf = make([]byte, 0, n)
	}
	a := arena{b: m.buf[:0]}
	m.Topic = a.keep(p.Topic)
	m.Payload = a.keep(p.Payload)
	m.QoS, m.Retain = p.QoS, p.Retain
	m.jid = 0
	m.Props.Reset()
	a = copyTravelling(&m.Props, &p.Props, a)
	m.buf = a.b
	m.Received = now.UnixNano()
	m.Expiry = 0
	if p.Props.Has(packet.PropMessageExpiry) {
		m.Expiry = p.Props.MessageExpiry
	}
	m.Sender = sender
	return m
}

// travelling is the one list of the 5.0 properties that travel with a
// message in its Props, from the publisher to the subscribers and into
// the store: newMessage, storedMessage and restoreMessage copy them with
// copyTravelling, the saved encoding writes them (persistcodec.go), and
// travellingField says where each lives. Two more travel beside the list:
// user properties (a list, Props.User, copied by copyTravelling and
// saved) and message expiry, kept counting down (Message.Received and
// Expiry, StoredMessage.Expires). Subscription identifiers and topic
// aliases belong to a subscription and a connection: they do not travel.
//
// The order is the saved encoding's flag bits: add a property at the
// end, never reorder (TestStoredGolden).
var travelling = [...]byte{packet.PropPayloadFormat, packet.PropContentType, packet.PropResponseTopic, packet.PropCorrelationData}

// travellingField returns where travelling property id lives in p: num
// for a one-byte value, str for a string or binary one. A property on
// the list without a case here panics (TestTravellingList).
func travellingField(p *packet.Properties, id byte) (num *byte, str *[]byte) {
	switch id {
	case packet.PropPayloadFormat:
		return &p.PayloadFormat, nil
	case packet.PropContentType:
		return nil, &p.ContentType
	case packet.PropResponseTopic:
		return nil, &p.ResponseTopic
	case packet.PropCorrelationData:
		return nil, &p.CorrelationData
	}
	panic("broker: travelling property without a field")
}

// travellingLen is the number of bytes copyTravelling copies from p.
func travellingLen(p *packet.Properties) int {
	n := 0
	for _, id := range travelling {
		if _, str := travellingField(p, id); str != nil {
			n += len(*str)
		}
	}
	for _, u := range p.User {
		n += len(u.Key) + len(u.Value)
	}
	return n
}

// copyTravelling copies the travelling properties and user properties of
// src into dst, which has none, their bytes through a, and returns a with
// them. It copies the values whether or not Present marks them (Present
// says which count), and reuses the capacity of dst.User. (The arena
// goes by value: kept in registers, not in memory.)
func copyTravelling(dst, src *packet.Properties, a arena) arena {
	for _, id := range travelling {
		if src.Has(id) {
			dst.Set(id)
		}
		dnum, dstr := travellingField(dst, id)
		snum, sstr := travellingField(src, id)
		if dnum != nil {
			*dnum = *snum
		} else {
			*dstr = a.keep(*sstr)
		}
	}
	if cap(dst.User) < len(src.User) {
		dst.User = make([]packet.UserProperty, 0, len(src.User))
	}
	dst.User = dst.User[:0]
	for _, u := range src.User {
		dst.User = append(dst.User, packet.UserProperty{Key: a.keep(u.Key), Value: a.keep(u.Value)})
	}
	return a
}

// arena copies byte strings end to end into one buffer, so that a
// message owns its bytes in one allocation. Owned by the function that
// copies a message.
type arena struct {
	b        []byte // the buffer; sized by the caller, grown if too small
	nilEmpty bool   // keep an empty string as nil (as the decoder reads it)
}

// keep copies s to the end of the buffer and returns the copy, with its
// capacity cut to its length.
func (a *arena) keep(s []byte) []byte {
	if len(s) == 0 && a.nilEmpty {
		return nil
	}
	start := len(a.b)
	a.b = append(a.b, s...)
	return a.b[start:len(a.b):len(a.b)]
}

// retain adds a reference.
func (m *Message) retain() *Message {
	m.refs.Add(1)
	return m
}

// release drops a reference; the last one returns m to the pool.
func (m *Message) release() {
	switch n := m.refs.Add(-1); {
	case n == 0:
		if cap(m.buf) > maxPooledBuf {
			// A large message's bytes go back to the runtime, not to
			// the pool (it would keep them after a burst).
			m.buf, m.Topic, m.Payload = nil, nil, nil
			m.Props = packet.Properties{}
		}
		m.pool.Put(m)
	case n < 0:
		panic("broker: Message released too often")
	}
}

// remaining returns the expiry interval left at now, and false when the
// message has expired. A message without expiry has 0, true.
func (m *Message) remaining(now time.Time) (uint32, bool) {
	if m.Expiry == 0 {
		return 0, true
	}
	waited := uint64(now.UnixNano()-m.Received) / uint64(time.Second)
	if waited >= uint64(m.Expiry) {
		return 0, false
	}
	return m.Expiry - uint32(waited), true
}
