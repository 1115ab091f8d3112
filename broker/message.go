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
	buf  []byte       // backing store for Topic, Payload and the property values
	pool *sync.Pool   // set by Server.newMessage, then read-only: its Server's messages

	Topic   []byte
	Payload []byte
	QoS     byte
	Retain  bool
	// Props carries the 5.0 properties that travel with the message:
	// payload format, content type, response topic, correlation data and
	// user properties. Message expiry is kept in Received and Expiry.
	Props packet.Properties
	// Received is when the broker got the message (Unix nanoseconds).
	Received int64
	// Expiry is the message expiry interval in seconds; 0 means none.
	Expiry uint32
	// Sender is the publishing client; nil for in-process publishers.
	Sender *Client
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
	pr := &p.Props
	n := len(p.Topic) + len(p.Payload) + len(pr.ContentType) + len(pr.ResponseTopic) + len(pr.CorrelationData)
	for _, u := range pr.User {
		n += len(u.Key) + len(u.Value)
	}
	if cap(m.buf) < n {
		m.buf = make([]byte, 0, n)
	}
	b := m.buf[:0]
	keep := func(s []byte) []byte {
		start := len(b)
		b = append(b, s...)
		return b[start:len(b):len(b)]
	}
	m.Topic = keep(p.Topic)
	m.Payload = keep(p.Payload)
	m.QoS, m.Retain = p.QoS, p.Retain
	m.Props.Reset()
	for _, id := range [...]byte{packet.PropPayloadFormat, packet.PropContentType, packet.PropResponseTopic, packet.PropCorrelationData} {
		if pr.Has(id) {
			m.Props.Set(id)
		}
	}
	m.Props.PayloadFormat = pr.PayloadFormat
	m.Props.ContentType = keep(pr.ContentType)
	m.Props.ResponseTopic = keep(pr.ResponseTopic)
	m.Props.CorrelationData = keep(pr.CorrelationData)
	for _, u := range pr.User {
		m.Props.User = append(m.Props.User, packet.UserProperty{Key: keep(u.Key), Value: keep(u.Value)})
	}
	m.buf = b
	m.Received = now.UnixNano()
	m.Expiry = 0
	if pr.Has(packet.PropMessageExpiry) {
		m.Expiry = pr.MessageExpiry
	}
	m.Sender = sender
	return m
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
