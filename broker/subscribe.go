package broker

import (
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/broker/topic"
)

// decodeSubscribe decodes a SUBSCRIBE and handles it.
func (c *conn) decodeSubscribe(flags byte, body []byte) error {
	var sp packet.Subscribe
	if err := sp.Decode(c.version, flags, body); err != nil {
		return err
	}
	return c.handleSubscribe(&sp)
}

// decodeUnsubscribe decodes an UNSUBSCRIBE and handles it.
func (c *conn) decodeUnsubscribe(flags byte, body []byte) error {
	var up packet.Unsubscribe
	if err := up.Decode(c.version, flags, body); err != nil {
		return err
	}
	return c.handleUnsubscribe(&up)
}

// decodeDisconnect decodes a DISCONNECT and handles it.
func (c *conn) decodeDisconnect(flags byte, body []byte) error {
	var d packet.Disconnect
	if err := d.Decode(c.version, flags, body); err != nil {
		return err
	}
	return c.handleDisconnect(&d)
}

// decodeAuth decodes a 5.0 AUTH and handles it.
func (c *conn) decodeAuth(flags byte, body []byte) error {
	var a packet.Auth
	if err := a.Decode(c.version, flags, body); err != nil {
		return err
	}
	return c.handleAuth(&a)
}

// handleSubscribe processes a SUBSCRIBE: SUBACK first, then the retained
// messages each new subscription asks for.
func (c *conn) handleSubscribe(sp *packet.Subscribe) error {
	var id uint32
	if len(sp.Props.SubscriptionIDs) > 0 {
		id = sp.Props.SubscriptionIDs[0]
	}
	ack := packet.Suback{PacketID: sp.PacketID}
	type wantRetained struct {
		filter []byte
		opts   subOpts
	}
	var want []wantRetained
	changed := false
	for i := range sp.Filters {
		f := &sp.Filters[i]
		code, existed, err := c.subscribe(f, id)
		if err != nil {
			return err
		}
		if c.version != packet.V5 && code >= 0x80 {
			code = 0x80
		}
		ack.Codes = append(ack.Codes, code)
		if code >= 0x80 {
			continue
		}
		changed = true
		if _, _, shared := topic.ParseShared(f.Filter); shared {
			continue // no retained messages for shared subscriptions [MQTT-3.8.4-?]
		}
		if f.RetainHandling == 0 || f.RetainHandling == 1 && !existed {
			want = append(want, wantRetained{f.Filter, subOpts{qos: f.QoS, id: id}})
		}
	}
	if changed {
		// SUBACK waits until the subscriptions are durable.
		if err := c.srv.waitDurable(c.sess.journalChanged()); err != nil {
			return err
		}
	}
	for _, code := range ack.Codes { // the first refusal explains itself
		if code >= 0x80 {
			c.addReason(&ack.Props, code)
			break
		}
	}
	var b [64]byte
	c.reply(ack.Append(b[:0], c.version), replyBatched)
	for _, w := range want {
		c.sendRetained(w.filter, w.opts)
	}
	return nil
}

// subscribe adds one subscription and returns its SUBACK code and whether
// it replaced an existing subscription to the same filter.
func (c *conn) subscribe(f *packet.Subscription, id uint32) (code packet.Code, existed bool, err error) {
	s := c.srv
	if err := s.tlim.ValidFilter(f.Filter); err != nil {
		return packet.TopicFilterInvalid, false, nil
	}
	_, inner, shared := topic.ParseShared(f.Filter)
	if shared && f.NoLocal {
		return 0, false, packet.ProtocolError // [MQTT-3.8.3-4]
	}
	if c.perms != nil && !c.perms.AllowSubscribe(inner) {
		s.sec.Event(seclog.SubscribeDenied, "subscription not authorized", "principal", c.client.Principal,
			"client", c.client.ID, "filter", string(f.Filter), "remote", remoteString(c.nc))
		return packet.NotAuthorized, false, nil
	}
	o := subOpts{qos: f.QoS, noLocal: f.NoLocal, retainAsPub: f.RetainAsPublished, retainHandling: f.RetainHandling, id: id}
	if c.bridge { // a broker: nothing back to where it came from, retain flags kept
		o.noLocal, o.retainAsPub = !shared, true
	}
	ss := c.sess
	key := string(f.Filter)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.dead { // ended by a takeover while this connection closes
		return packet.UnspecifiedError, false, nil
	}
	existed = ss.subs.has(key)
	if !existed && ss.subs.len() >= s.lim.MaxSubscriptions {
		return packet.QuotaExceeded, false, nil
	}
	if !existed && !ss.chargeSubLocked(key) {
		if s.sec.Allow(seclog.LimitSubscriptions) {
			s.sec.Log(seclog.LimitSubscriptions, "subscription refused: over the subscription memory limit",
				"principal", c.client.Principal, "client", c.client.ID, "filter_bytes", len(key), "remote", remoteString(c.nc))
		}
		return packet.QuotaExceeded, false, nil
	}
	s.subMu.Lock() // under ss.mu, so endSessionLocked cannot miss it
	s.subs.Subscribe(f.Filter, ss, o)
	if !shared {
		key = s.subs.Filter(f.Filter) // the session shares the tree's copy
	}
	s.subMu.Unlock()
	ss.subs.set(key, o)
	return packet.Code(f.QoS), existed, nil // granted QoS 0, 1 or 2
}

// sendRetained delivers the retained messages matching filter, with the
// retain flag set [MQTT-3.3.1-8].
func (c *conn) sendRetained(filter []byte, o subOpts) {
	s := c.srv
	sc := &c.handling().sc
	s.retMu.RLock()
	s.retained.Match(filter, func(_ []byte, m *Message) bool {
		sc.ret = append(sc.ret, m.retain())
		return true
	})
	s.retMu.RUnlock()
	for i, m := range sc.ret {
		d := delivery{msg: m, qos: min(o.qos, m.QoS), retain: true}
		d.addID(o.id)
		c.sess.deliver(&d, sc, s.now())
		m.release()
		sc.ret[i] = nil
	}
	sc.ret = sc.ret[:0]
}

// handleUnsubscribe processes an UNSUBSCRIBE.
func (c *conn) handleUnsubscribe(up *packet.Unsubscribe) error {
	s := c.srv
	ss := c.sess
	ack := packet.Unsuback{PacketID: up.PacketID}
	changed := false
	for _, f := range up.Filters {
		ss.mu.Lock()
		ok := ss.subs.remove(string(f))
		if ok {
			ss.uncharge(string(f))
			s.subMu.Lock()
			s.subs.Unsubscribe(f, ss)
			s.subMu.Unlock()
		}
		ss.mu.Unlock()
		code := packet.Success
		if !ok {
			code = packet.NoSubscriptionExisted
		}
		changed = changed || ok
		ack.Codes = append(ack.Codes, code)
	}
	if changed {
		if err := c.srv.waitDurable(ss.journalChanged()); err != nil {
			return err
		}
	}
	var b [64]byte
	c.reply(ack.Append(b[:0], c.version), replyBatched)
	return nil
}

// handleDisconnect processes a DISCONNECT from the client.
func (c *conn) handleDisconnect(d *packet.Disconnect) error {
	ss := c.sess
	if c.version == packet.V5 && d.Props.Has(packet.PropSessionExpiry) {
		ss.mu.Lock()
		was := ss.expiry
		if was == 0 && d.Props.SessionExpiry != 0 {
			ss.mu.Unlock()
			return packet.ProtocolError // [MQTT-3.14.2-2]
		}
		ss.setExpiry(min(d.Props.SessionExpiry, c.srv.lim.MaxSessionExpiry))
		ss.mu.Unlock()
	}
	// 0x04 Disconnect with Will Message keeps the will; anything else
	// from the client discards it [MQTT-3.14.4-3].
	c.normalExit = c.version != packet.V5 || d.Code != packet.DisconnectWithWill
	return errClosed
}
