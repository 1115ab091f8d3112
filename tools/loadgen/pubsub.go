package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/broker/packet"
)

// run is one fan-in, fan-out or latency run.
type run struct {
	cfg  *Config
	d    *dialer // the publishers' (and, without SubAddr, the subscribers')
	sd   *dialer // the subscribers'
	res  *Result
	id   string
	base time.Time // origin of the payload time stamps (monotonic)
	flow *flow
	e    errs

	pubs []*publisher
	subs []*subscriber

	budget  atomic.Int64  // messages left to publish
	stop    chan struct{} // closed when publishing must end
	stopped atomic.Bool
	closing atomic.Bool // connections are being closed: read errors are expected
	closed  sync.Once
}

type publisher struct {
	c      *client
	topic  []byte
	tokens chan struct{} // QoS 1/2 in-flight window
	dead   chan struct{} // closed when the ack reader ends
	sent   atomic.Int64
	acked  atomic.Int64
	// sentAt holds, by packet identifier, when each QoS 1/2 PUBLISH was
	// sent (since the run's base): written by the publishing goroutine,
	// read by the ack reader.
	sentAt []atomic.Int64
	acks   histogram // publish → PUBACK/PUBCOMP; owned by the ack reader
}

type subscriber struct {
	c    *client
	idx  int
	recv atomic.Int64
	last atomic.Int64 // time stamp (since base) of the latest delivery
	hist histogram    // owned by the reader goroutine
}

func (r *run) topic(i int) string {
	if r.cfg.Mode == FanIn {
		return fmt.Sprintf("%s/%s/in/%d", r.cfg.TopicPrefix, r.id, i)
	}
	return fmt.Sprintf("%s/%s/t", r.cfg.TopicPrefix, r.id)
}

func (r *run) filter() string {
	if r.cfg.Mode == FanIn {
		return fmt.Sprintf("%s/%s/in/+", r.cfg.TopicPrefix, r.id)
	}
	return r.topic(0)
}

func (r *run) fail(err error) {
	if !r.closing.Load() {
		r.e.add(err)
	}
}

func (r *run) run(ctx context.Context, progress io.Writer) error {
	cfg := r.cfg
	if err := RaiseFileLimit(uint64(cfg.Publishers+cfg.Subscribers) + 64); err != nil {
		return err
	}
	if cfg.Window > 0 {
		r.flow = newFlow(cfg.Window, cfg.Subscribers, cfg.Drain)
	}
	defer r.closeAll()
	if err := r.connect(ctx); err != nil {
		return err
	}
	var readers sync.WaitGroup
	for _, s := range r.subs {
		readers.Go(func() { r.readPublishes(s) })
	}
	for _, p := range r.pubs {
		go r.readAcks(p)
	}
	done := make(chan struct{})
	defer ticker(done, time.Duration(cfg.KeepAlive)*time.Second/2, r.ping)()
	defer close(done)

	if cfg.AtStart != nil {
		cfg.AtStart()
	}
	b0 := brokerSample(cfg, &r.e)
	r.budget.Store(cfg.Count)
	start := time.Since(r.base)
	waitProgress := r.progress(progress, start)
	stopTimer := time.AfterFunc(cfg.Duration, r.end)
	stopCtx := context.AfterFunc(ctx, r.end)
	var pubs sync.WaitGroup
	for i, p := range r.pubs {
		pubs.Go(func() { r.publish(p, i) })
	}
	pubs.Wait()
	r.end()
	stopTimer.Stop()
	stopCtx()
	r.drain(ctx)
	b1 := brokerSample(cfg, &r.e)
	if cfg.AtEnd != nil {
		cfg.AtEnd()
	}
	waitProgress()

	r.closing.Store(true)
	r.closeAll()
	readers.Wait()
	for _, p := range r.pubs {
		<-p.dead
	}
	r.collect(start, b0, b1)
	return nil
}

// connect opens the subscribers (and subscribes them), then the publishers.
func (r *run) connect(ctx context.Context) error {
	cfg := r.cfg
	ctx, cancel := context.WithTimeout(ctx, max(cfg.Duration, 10*time.Second))
	defer cancel()
	r.subs = make([]*subscriber, cfg.Subscribers)
	r.pubs = make([]*publisher, cfg.Publishers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	setErr := func(err error) {
		mu.Lock()
		first = cmpOr(first, err)
		mu.Unlock()
	}
	sem := make(chan struct{}, cfg.Dialers)
	for i := range r.subs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := r.sd.dial(ctx, fmt.Sprintf("mqttload-%s-s%d", r.id, i), nil, cfg.Persistent)
			if err == nil {
				r.subs[i] = &subscriber{c: c, idx: i}
				err = c.subscribe(r.filter(), cfg.QoS)
			}
			if err != nil {
				setErr(fmt.Errorf("loadgen: subscriber %d: %w", i, err))
			}
		})
	}
	wg.Wait()
	for i := range r.pubs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := r.d.dial(ctx, fmt.Sprintf("mqttload-%s-p%d", r.id, i), nil, false)
			if err != nil {
				setErr(fmt.Errorf("loadgen: publisher %d: %w", i, err))
				return
			}
			window := min(cfg.Inflight, c.recvMax)
			p := &publisher{c: c, topic: []byte(r.topic(i)), tokens: make(chan struct{}, window), dead: make(chan struct{})}
			if cfg.QoS > 0 {
				p.sentAt = make([]atomic.Int64, 1<<16)
			}
			r.pubs[i] = p
		})
	}
	wg.Wait()
	return first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// end stops the publishers.
func (r *run) end() {
	if r.stopped.CompareAndSwap(false, true) {
		close(r.stop)
	}
}

// publish is one publisher's loop: it sends until the budget, the
// duration or the context runs out, keeping to the rate and the windows.
func (r *run) publish(p *publisher, i int) {
	cfg := r.cfg
	c := p.c
	defer c.flush()
	pub := packet.Publish{QoS: cfg.QoS, Topic: p.topic, Payload: make([]byte, cfg.Payload)}
	for j := stampSize; j < len(pub.Payload); j++ {
		pub.Payload[j] = 'x'
	}
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(len(r.pubs)) / cfg.Rate)
	}
	flush := func() {
		if err := c.flush(); err != nil {
			r.fail(fmt.Errorf("publisher %d: %w", i, err))
		}
	}
	next := time.Now()
	var credit int64
	var pid uint16
	for seq := uint64(0); !r.stopped.Load() && r.budget.Add(-1) >= 0; seq++ {
		if interval > 0 {
			if next = next.Add(interval); time.Until(next) > 0 {
				flush()
				if !r.sleepUntil(next) {
					return
				}
			}
		}
		if !r.flow.acquire(&credit, len(r.pubs), flush, r.stop) {
			return
		}
		if cfg.QoS > 0 {
			select {
			case p.tokens <- struct{}{}:
			default:
				flush()
				select {
				case p.tokens <- struct{}{}:
				case <-r.stop:
					return
				case <-p.dead:
					return
				}
			}
			pid = pid%65535 + 1
			pub.PacketID = pid
		}
		now := time.Since(r.base)
		stamp(pub.Payload, now, seq)
		if cfg.QoS > 0 {
			p.sentAt[pid].Store(int64(now))
		}
		if err := c.publish(&pub); err != nil {
			r.fail(fmt.Errorf("publisher %d: %w", i, err))
			return
		}
		p.sent.Add(1)
		if interval > 0 {
			flush()
		}
	}
}

func (r *run) sleepUntil(t time.Time) bool {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-r.stop:
		return false
	}
}

// readAcks reads a publisher's connection: PUBACK, PUBREC (answered with
// PUBREL) and PUBCOMP free the in-flight window.
func (r *run) readAcks(p *publisher) {
	defer close(p.dead)
	var a packet.Ack
	for {
		h, body, err := p.c.next()
		if err != nil {
			r.fail(fmt.Errorf("publisher read: %w", err))
			return
		}
		switch h.Type {
		case packet.PUBACK, packet.PUBREC, packet.PUBCOMP:
			if err := a.Decode(h.Type, p.c.v, h.Flags, body); err != nil {
				r.fail(fmt.Errorf("publisher: %w", err))
				return
			}
			if a.Code >= 0x80 {
				r.fail(fmt.Errorf("publish %d refused: %w", a.PacketID, a.Code))
			} else if h.Type == packet.PUBREC {
				p.c.ack(packet.PUBREL, a.PacketID) // flushed before the next read blocks
				continue
			} else if p.sentAt != nil {
				p.acks.record(time.Since(r.base) - time.Duration(p.sentAt[a.PacketID].Load()))
			}
			<-p.tokens
			p.acked.Add(1)
		case packet.PINGRESP:
		case packet.DISCONNECT:
			r.fail(errors.New("publisher: broker sent DISCONNECT"))
			return
		default:
			r.fail(fmt.Errorf("publisher: unexpected packet type %d", h.Type))
		}
	}
}

// readPublishes reads a subscriber's connection, acknowledging QoS 1 and
// 2 deliveries and recording their latency.
func (r *run) readPublishes(s *subscriber) {
	var p packet.Publish
	var a packet.Ack
	c := s.c
	for {
		h, body, err := c.next()
		if err != nil {
			r.fail(fmt.Errorf("subscriber %d read: %w", s.idx, err))
			return
		}
		switch h.Type {
		case packet.PUBLISH:
			if err := p.Decode(c.v, h.Flags, body); err != nil {
				r.fail(fmt.Errorf("subscriber %d: %w", s.idx, err))
				return
			}
			now := time.Since(r.base)
			if sent, ok := unstamp(p.Payload); ok {
				s.hist.record(now - sent)
			}
			s.last.Store(int64(now))
			s.recv.Add(1)
			r.flow.received(s.idx)
			switch p.QoS {
			case 1:
				c.ack(packet.PUBACK, p.PacketID)
			case 2:
				c.ack(packet.PUBREC, p.PacketID)
			}
		case packet.PUBREL:
			if err := a.Decode(h.Type, c.v, h.Flags, body); err != nil {
				r.fail(fmt.Errorf("subscriber %d: %w", s.idx, err))
				return
			}
			c.ack(packet.PUBCOMP, a.PacketID)
		case packet.PINGRESP:
		case packet.DISCONNECT:
			r.fail(fmt.Errorf("subscriber %d: broker sent DISCONNECT", s.idx))
			return
		default:
			r.fail(fmt.Errorf("subscriber %d: unexpected packet type %d", s.idx, h.Type))
		}
	}
}

func (r *run) sent() int64 {
	return atomicSum(r.pubs, func(p *publisher) *atomic.Int64 { return &p.sent })
}
func (r *run) acked() int64 {
	return atomicSum(r.pubs, func(p *publisher) *atomic.Int64 { return &p.acked })
}
func (r *run) received() int64 {
	return atomicSum(r.subs, func(s *subscriber) *atomic.Int64 { return &s.recv })
}

// drain waits until every delivery and acknowledgement arrived, or until
// cfg.Drain passes without progress.
func (r *run) drain(ctx context.Context) {
	sent := r.sent()
	want := sent * int64(len(r.subs))
	last, lastAt := int64(-1), time.Now()
	for {
		got := r.received()
		if r.cfg.QoS > 0 {
			got += r.acked()
			want = sent * int64(len(r.subs)+1)
		}
		if got >= want || ctx.Err() != nil {
			return
		}
		if got != last {
			last, lastAt = got, time.Now()
		} else if time.Since(lastAt) > r.cfg.Drain {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// progress prints a line per second until publishing and draining end.
func (r *run) progress(w io.Writer, start time.Duration) (wait func()) {
	if w == nil {
		return func() {}
	}
	stop := make(chan struct{})
	var prevSent, prevRecv int64
	waitTicker := ticker(stop, time.Second, func() {
		sent, recv := r.sent(), r.received()
		t := (time.Since(r.base) - start).Seconds()
		fmt.Fprintf(w, "mqttload: %4.0fs sent=%d (%d/s) recv=%d (%d/s)\n", t, sent, sent-prevSent, recv, recv-prevRecv)
		prevSent, prevRecv = sent, recv
	})
	return func() { close(stop); waitTicker() }
}

// ping keeps every connection alive.
func (r *run) ping() {
	for _, p := range r.pubs {
		if p != nil {
			p.c.ping()
		}
	}
	for _, s := range r.subs {
		if s != nil {
			s.c.ping()
		}
	}
}

func (r *run) closeAll() { r.closed.Do(r.disconnect) }

func (r *run) disconnect() {
	r.closing.Store(true)
	var cs []*client
	for _, p := range r.pubs {
		if p != nil {
			cs = append(cs, p.c)
		}
	}
	for _, s := range r.subs {
		if s != nil {
			cs = append(cs, s.c)
		}
	}
	closeAll(cs, r.cfg.Dialers)
}

// collect fills the Result once the readers have ended.
func (r *run) collect(start time.Duration, b0, b1 brokerReading) {
	res := r.res
	var h, acks histogram
	var end time.Duration
	for _, s := range r.subs {
		h.merge(&s.hist)
		end = max(end, time.Duration(s.last.Load()))
	}
	for _, p := range r.pubs {
		acks.merge(&p.acks)
	}
	res.Sent, res.Acked, res.Received = r.sent(), r.acked(), r.received()
	res.Expected = res.Sent * int64(len(r.subs))
	res.Lost = max(res.Expected-res.Received, 0)
	res.Duplicates = max(res.Received-res.Expected, 0)
	if end <= start {
		end = time.Since(r.base)
	}
	res.Seconds = (end - start).Seconds()
	res.SendRate = float64(res.Sent) / res.Seconds
	res.RecvRate = float64(res.Received) / res.Seconds
	res.Latency = summarize(&h)
	res.AckLatency = summarize(&acks)
	if r.cfg.BrokerPID != 0 {
		res.Broker = usage(r.cfg.BrokerPID, b0, b1, res.Received)
	}
	res.Errors = r.e.strings()
}
