// Package mqttapi serves a statestore.Store over MQTT 5 with the Azure IoT
// Operations state store protocol: RESP-encoded requests published to
// RequestTopic, responses to each request's Response Topic, and KEYNOTIFY
// notifications delivered straight to the registering client's session.
//
// # What a client can make the broker do
//
// A response is published as the requesting client's own PUBLISH would
// be (broker.Server.PublishAs): its Response Topic must be one the client
// may publish on, and never a '$' topic. A request with a response topic
// refused so is not executed, answers nothing, and is logged and counted
// (seclog.ResponseTopicRefused); the client stays connected (a client
// with a mistaken policy keeps working for its other requests). The two
// response topics the protocol calls invalid (the request topic, and the
// notification prefix) disconnect the client, as AIO does.
//
// A KEYNOTIFY registration belongs to the connection that made it, on
// its session instance (broker.Client.Session): notifications go only to
// that connection's session (broker.Server.SendTo), never to a later
// connection with the same client ID, and nothing is queued while it is
// offline. The registration ends with the connection (ClientGone); a
// reconnecting client registers again, as the SDKs do. Notifications are
// not routed by topic, so no other client can receive them; they are not
// authorized as the watcher's PUBLISH (AIO policies do not grant the
// notification topic), the watcher's read permission on the key was
// checked at KEYNOTIFY.
//
// # Workers
//
// Requests are not executed on the publisher's goroutine (a SET waits for
// an fsync, and the broker's in-process subscribers must not block):
// handle checks what it can at once, copies the request and queues it for
// one of RequestWorkers workers, which execute it and publish the
// response. The requests of one connection always go to the same worker,
// so they are executed and answered in the order they were published (a
// SET followed by a GET reads its own write). The queued requests hold at
// most MaxRequestQueueBytes; a request beyond that is not executed but
// answered "-ERR " + BusyText (in its turn, by its worker, so a
// connection's answers stay in order; only its response topic and
// correlation data are kept), and counted (seclog.LimitQueue). AIO clients
// then get an error they can retry on, as soon as the requests before it
// are answered, where a dropped request would leave them waiting for
// their command timeout with nothing to tell them why. Only when even the
// busy answers' room (MaxRequestQueueBytes/16) is full is a request
// dropped, also counted.
//
// Writes are charged to the writing client's principal: the store's
// per-owner quotas (statestore.Options.MaxKeysPerOwner, ...) apply per
// principal, and a refusal by any quota is counted
// (seclog.LimitStateStore).
package mqttapi

import (
	"bytes"
	"encoding/hex"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/broker"
	"edgebroker/broker/packet"
	"edgebroker/broker/seclog"
	"edgebroker/statestore"
)

// Topics of the protocol (§1, §6).
const (
	RequestTopic = "statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8/command/invoke"
	// ReservedPrefix starts the notification topics; a request whose
	// response topic starts with it gets its client disconnected.
	ReservedPrefix = "clients/statestore/v1/FA9AE35F-2F64-47CD-9BFF-08E2B32A0FE8"
	// ProtocolVersion is sent as __protVer.
	ProtocolVersion = "1.0"
)

// User property names.
const (
	propStatus   = "__stat"
	propTS       = "__ts"
	propFencing  = "__ft"
	propProtVer  = "__protVer"
	propSourceID = "__srcId"
	contentType  = "application/octet-stream"
)

// Limits of the KEYNOTIFY machinery: keys one client (by client id) may
// watch at once, and their bytes, and the bytes of every client's watched
// keys (a KEYNOTIFY beyond gets "-ERR the quota has been exceeded"); and
// bytes of change events waiting for the notifier (beyond it, events are
// dropped, counted and logged).
const (
	MaxWatchesPerClient    = 1024
	MaxWatchBytesPerClient = 256 << 10
	MaxWatchBytes          = 16 << 20
	MaxNotifyQueueBytes    = 16 << 20
)

// Limits of request handling (see Workers in the package doc): workers,
// and bytes of requests waiting for them (payload, response topic,
// correlation data and timestamps, plus requestOverhead each).
const (
	RequestWorkers       = 4
	MaxRequestQueueBytes = 4 << 20
)

// BusyText is the error text of a request refused because the request
// queue is full.
const BusyText = "the state store is busy; retry later"

// requestOverhead is what one queued request costs besides its bytes.
const requestOverhead = 128

// InvalidResponseTopicCode is the DISCONNECT reason code a client gets for
// a request with a forbidden response topic.
const InvalidResponseTopicCode = packet.ProtocolError

// Options configures a Service.
type Options struct {
	// Authorize reports whether client c may read (write false: GET,
	// KEYNOTIFY) or write (SET, DEL, VDEL) key. nil allows everything.
	// It is not consulted for in-process requests (c nil).
	Authorize func(c *broker.Client, write bool, key []byte) bool
	Logger    *slog.Logger
}

// Service answers state store requests. Create it with New, feed it the
// store's change events through OnChange, and call ClientGone from
// broker.Config.OnDisconnect.
type Service struct {
	srv   *broker.Server
	store *statestore.Store
	opts  Options
	log   *slog.Logger

	unsub func()

	mu sync.Mutex
	// watch holds the KEYNOTIFY registrations: one per client ID and key,
	// made by the connection whose Client it holds (a later connection
	// with the same ID replaces it).
	watch   map[string]map[string]*broker.Client // key → clientID → registering connection
	clients map[string]map[string]struct{}       // clientID → keys
	// clientBytes and watchBytes are the bytes of the keys in clients, by
	// client ID and in all (MaxWatchBytesPerClient, MaxWatchBytes).
	clientBytes map[string]int
	watchBytes  int
	queue       []statestore.Event
	// queueBytes is the keys and values in queue, at most
	// MaxNotifyQueueBytes.
	queueBytes int
	wake       chan struct{}
	stop       chan struct{}
	done       chan struct{}
	started    bool

	// Request queues, one per worker, guarded by mu: a connection's
	// requests go to shards[shardOf(c)].
	shards [RequestWorkers]shard
	// reqBytes is what the queued requests (and the one each worker
	// executes) hold, at most MaxRequestQueueBytes; busyBytes the same
	// for busy answers, at most MaxRequestQueueBytes/16. Guarded by mu.
	reqBytes, busyBytes int
	// pending counts each connection's queued requests; gone holds the
	// connections that ended with requests still queued, whose KEYNOTIFY
	// must not register any more. Entries leave when the count reaches
	// 0, so both are bounded by the queue. Guarded by mu.
	pending map[*broker.Client]int
	gone    map[*broker.Client]bool
	workers sync.WaitGroup // the workers Start started

	// hold, if set (tests), is called by a worker before it executes a
	// request: a slow store.
	hold atomic.Pointer[func()]
}

// shard is one worker's queue.
type shard struct {
	queue []*request    // guarded by Service.mu
	wake  chan struct{} // capacity 1: the queue may have grown
}

// request is a state store request copied out of the broker's Message
// (which lives only during the handler's call), waiting for its worker.
// Set by handle, read-only afterwards.
type request struct {
	c        *broker.Client // nil: in-process
	own      bool           // the response topic is in c's own namespace
	rt, corr []byte         // response topic, correlation data
	payload  []byte
	ts, ft   string // __ts and __ft
	hasTS    bool
	hasFT    bool
	busy     bool // answer BusyText, execute nothing
	size     int  // bytes charged against the queue
}

// New returns a Service for store on srv; Start subscribes it.
func New(srv *broker.Server, store *statestore.Store, opts Options) *Service {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Service{
		srv: srv, store: store, opts: opts, log: log,
		watch:       map[string]map[string]*broker.Client{},
		clients:     map[string]map[string]struct{}{},
		clientBytes: map[string]int{},
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		pending:     map[*broker.Client]int{},
		gone:        map[*broker.Client]bool{},
	}
	for i := range s.shards {
		s.shards[i].wake = make(chan struct{}, 1)
	}
	return s
}

// Start starts the workers and the notification sender, and subscribes
// to RequestTopic.
func (s *Service) Start() error {
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	for i := range s.shards {
		s.workers.Go(func() { s.work(&s.shards[i]) })
	}
	go s.notifyLoop()
	unsub, err := s.srv.Subscribe(RequestTopic, 1, s.handle)
	if err != nil {
		s.halt()
		return err
	}
	s.mu.Lock()
	s.unsub = unsub
	s.mu.Unlock()
	return nil
}

// Stop unsubscribes and stops the workers (each finishes the request it
// executes) and the notification sender. Queued requests and pending
// notifications are dropped.
func (s *Service) Stop() {
	s.mu.Lock()
	unsub := s.unsub
	s.unsub = nil
	s.mu.Unlock()
	if unsub != nil {
		unsub()
		s.halt()
	}
}

// halt stops the goroutines Start started.
func (s *Service) halt() {
	s.mu.Lock()
	s.started = false
	s.mu.Unlock()
	close(s.stop)
	s.workers.Wait()
	<-s.done
}

// OnChange queues a change event for KEYNOTIFY watchers. It is meant for
// statestore.Options.OnChange: it only appends to a queue, so the store's
// committer never waits for the broker.
func (s *Service) OnChange(ev statestore.Event) {
	s.mu.Lock()
	if len(s.watch[string(ev.Key)]) == 0 || !s.started {
		s.mu.Unlock()
		return
	}
	n := len(ev.Key) + len(ev.Value)
	if s.queueBytes+n > MaxNotifyQueueBytes {
		s.mu.Unlock()
		s.srv.Security().Event(seclog.LimitQueue, "KEYNOTIFY notification dropped: the notification queue is full",
			"key_bytes", len(ev.Key), "max_bytes", MaxNotifyQueueBytes)
		return
	}
	s.queueBytes += n
	s.queue = append(s.queue, ev)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// ClientGone drops the KEYNOTIFY registrations made over connection c
// (broker.Config.OnDisconnect). Registrations made by a newer connection
// with the same client ID (a takeover) stay.
func (s *Service) ClientGone(c *broker.Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.clients[c.ID] {
		if w := s.watch[k]; w[c.ID] == c {
			delete(w, c.ID)
			s.forgetLocked(c.ID, k)
			if len(w) == 0 {
				delete(s.watch, k)
			}
		}
	}
	if s.pending[c] > 0 { // a KEYNOTIFY still queued must not outlive c
		s.gone[c] = true
	}
}

func (s *Service) notifyLoop() {
	defer close(s.done)
	for {
		select {
		case <-s.stop:
			return
		case <-s.wake:
		}
		s.mu.Lock()
		evs := s.queue
		s.queue, s.queueBytes = nil, 0
		s.mu.Unlock()
		for _, ev := range evs {
			s.notify(ev)
		}
	}
}

// notify sends ev to every connection watching its key (§6).
func (s *Service) notify(ev statestore.Event) {
	s.mu.Lock()
	var watchers []*broker.Client
	for _, c := range s.watch[string(ev.Key)] {
		watchers = append(watchers, c)
	}
	s.mu.Unlock()
	if len(watchers) == 0 {
		return
	}
	payload := notifyDelete
	if ev.Kind == statestore.EventSet {
		payload = notifySet(ev.Value)
	}
	keyHex := strings.ToUpper(hex.EncodeToString(ev.Key))
	for _, c := range watchers {
		p := &packet.Publish{
			QoS:     1,
			Topic:   []byte(ReservedPrefix + "/" + strings.ToUpper(hex.EncodeToString([]byte(c.ID))) + "/command/notify/" + keyHex),
			Payload: payload,
		}
		p.Props.Set(packet.PropContentType)
		p.Props.ContentType = []byte(contentType)
		p.Props.User = []packet.UserProperty{
			userProp(propTS, ev.Version.String()),
			userProp(propProtVer, ProtocolVersion),
			userProp(propSourceID, "StateStore"),
		}
		if !s.srv.SendTo(c.Session, p) {
			s.log.Debug("notification target gone", "client", c.ID)
		}
	}
}

func userProp(k, v string) packet.UserProperty {
	return packet.UserProperty{Key: []byte(k), Value: []byte(v)}
}

func userValue(m *broker.Message, key string) (string, bool) {
	for _, u := range m.Props.User {
		if string(u.Key) == key {
			return string(u.Value), true
		}
	}
	return "", false
}

// response is what a request produces.
type response struct {
	payload []byte
	version statestore.HLC // zero: no __ts
}

func errResp(text string) response { return response{payload: errPayload(text)} }

// handle runs on the publisher's goroutine for every request: it checks
// what needs no store, copies the request and queues it for its worker
// (enqueue). It never blocks.
func (s *Service) handle(m *broker.Message) {
	c := m.Sender
	rt := m.Props.ResponseTopic
	if !m.Props.Has(packet.PropResponseTopic) || len(rt) == 0 || !m.Props.Has(packet.PropCorrelationData) {
		s.log.Debug("state store request without response topic or correlation data dropped", "client", clientID(c))
		return
	}
	if string(rt) == RequestTopic || bytes.HasPrefix(rt, []byte(ReservedPrefix)) {
		s.srv.Security().Event(seclog.ResponseTopicRefused, "state store request with an invalid response topic: disconnecting",
			"client", clientID(c), "topic", string(rt))
		if c != nil {
			s.srv.DisconnectSession(c.Session, InvalidResponseTopicCode)
		}
		return
	}
	if m.QoS != 1 || c != nil && c.Version != packet.V5 {
		s.log.Debug("state store request not MQTT 5 QoS 1 dropped", "client", clientID(c), "qos", m.QoS)
		return
	}
	own := c != nil && inOwnNamespace(c, rt)
	if c != nil && !own {
		if err := s.srv.CheckPublishAs(c, rt); err != nil {
			if sec := s.srv.Security(); sec.Allow(seclog.ResponseTopicRefused) {
				sec.Log(seclog.ResponseTopicRefused, "state store request dropped: the client may not publish on its response topic",
					"principal", principal(c), "client", c.ID, "remote", c.Remote, "topic", string(rt), "reason", err)
			}
			return
		}
	}
	s.enqueue(c, own, m)
}

// enqueue copies m's request into its worker's queue, or a busy answer
// when the queue is full, or nothing when even the busy answers' room is
// full. The sizes are checked before anything is copied.
func (s *Service) enqueue(c *broker.Client, own bool, m *broker.Message) {
	ts, hasTS := userValue(m, propTS)
	ft, hasFT := userValue(m, propFencing)
	answer := len(m.Props.ResponseTopic) + len(m.Props.CorrelationData) + requestOverhead
	size := answer + len(m.Payload) + len(ts) + len(ft)
	s.mu.Lock()
	if !s.started {
		s.mu.Unlock()
		return
	}
	busy := s.reqBytes+size > MaxRequestQueueBytes
	if busy {
		size = answer
		if s.busyBytes+size > MaxRequestQueueBytes/16 {
			s.mu.Unlock()
			s.refused(c, "state store request dropped: the request queue and the room for busy answers are full")
			return
		}
		s.busyBytes += size
	} else {
		s.reqBytes += size
	}
	r := &request{c: c, own: own, rt: bytes.Clone(m.Props.ResponseTopic), corr: bytes.Clone(m.Props.CorrelationData),
		busy: busy, size: size}
	if !busy {
		r.payload = bytes.Clone(m.Payload)
		r.ts, r.hasTS, r.ft, r.hasFT = ts, hasTS, ft, hasFT
	}
	if c != nil {
		s.pending[c]++
	}
	sh := &s.shards[shardOf(c)]
	sh.queue = append(sh.queue, r)
	s.mu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
	if busy {
		s.refused(c, "state store request answered busy: the request queue is full")
	}
}

// refused counts and logs a request the queue had no room for.
func (s *Service) refused(c *broker.Client, msg string) {
	if sec := s.srv.Security(); sec.Allow(seclog.LimitQueue) {
		if c == nil {
			sec.Log(seclog.LimitQueue, msg, "client", clientID(c), "max_bytes", MaxRequestQueueBytes)
			return
		}
		sec.Log(seclog.LimitQueue, msg, "principal", principal(c), "client", c.ID, "remote", c.Remote, "max_bytes", MaxRequestQueueBytes)
	}
}

// shardOf is the worker of c's requests (FNV-1a of the client ID; the
// in-process requests go to the first).
func shardOf(c *broker.Client) int {
	if c == nil {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(c.ID); i++ {
		h = (h ^ uint32(c.ID[i])) * 16777619
	}
	return int(h % RequestWorkers)
}

// work executes the requests of sh in order until Stop.
func (s *Service) work(sh *shard) {
	for {
		select {
		case <-s.stop:
			return
		case <-sh.wake:
		}
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			s.mu.Lock()
			if len(sh.queue) == 0 {
				s.mu.Unlock()
				break
			}
			r := sh.queue[0]
			sh.queue[0] = nil
			sh.queue = sh.queue[1:]
			s.mu.Unlock()
			s.serve(r)
			s.mu.Lock()
			if r.busy {
				s.busyBytes -= r.size
			} else {
				s.reqBytes -= r.size
			}
			if r.c != nil {
				if s.pending[r.c]--; s.pending[r.c] == 0 {
					delete(s.pending, r.c)
					delete(s.gone, r.c)
				}
			}
			s.mu.Unlock()
		}
	}
}

// serve executes r (a busy answer executes nothing) and publishes the
// response to r's response topic, as r's client's own PUBLISH unless the
// topic is in its own namespace.
func (s *Service) serve(r *request) {
	c := r.c
	var resp response
	if r.busy {
		resp = errResp(BusyText)
	} else {
		if hold := s.hold.Load(); hold != nil {
			(*hold)()
		}
		resp = s.execute(c, r)
	}
	p := &packet.Publish{QoS: 1, Topic: r.rt, Payload: resp.payload}
	p.Props.Set(packet.PropCorrelationData)
	p.Props.CorrelationData = r.corr
	p.Props.Set(packet.PropContentType)
	p.Props.ContentType = []byte(contentType)
	p.Props.User = []packet.UserProperty{userProp(propStatus, "200"), userProp(propProtVer, ProtocolVersion)}
	if !resp.version.IsZero() {
		p.Props.User = append(p.Props.User, userProp(propTS, resp.version.String()))
	}
	var err error
	if c != nil && !r.own {
		err = s.srv.PublishAs(c, p)
	} else {
		err = s.srv.Publish(p)
	}
	if err != nil {
		s.log.Warn("state store response not sent", "client", clientID(c), "err", err)
	}
}

// inOwnNamespace reports whether topic lies in the requester's own
// namespace, "clients/ID/" with the client id as is or in upper-case hex
// (the AIO SDKs' response topics: clients/HEX(ID)/statestore/v1/...).
// Responses there need no Publish grant, so AIO policies written for a
// cluster (which grant only the request topic and the subscription) keep
// working; any other response topic is authorized as the client's own
// PUBLISH. A client id cannot be borrowed while its owner has a session,
// so this namespace reaches only the requester.
func inOwnNamespace(c *broker.Client, topic []byte) bool {
	rest, ok := bytes.CutPrefix(topic, []byte("clients/"))
	if !ok {
		return false
	}
	seg, _, ok := bytes.Cut(rest, []byte("/"))
	if !ok || len(seg) == 0 {
		return false
	}
	return string(seg) == c.ID || string(seg) == strings.ToUpper(hex.EncodeToString([]byte(c.ID)))
}

// principal is whose quota a client's writes count against: the identity
// its authentication method verified (on an anonymous port, the port).
func principal(c *broker.Client) string {
	if c.Principal != "" {
		return c.Principal
	}
	return "anonymous:" + c.Port
}

func clientID(c *broker.Client) string {
	if c == nil {
		return "(in-process)"
	}
	return c.ID
}

// execute parses and runs one request.
func (s *Service) execute(c *broker.Client, r *request) response {
	args, err := parseArray(r.payload)
	if err != nil {
		return errResp("syntax error")
	}
	verb := strings.ToUpper(string(args[0]))
	var write bool
	switch verb {
	case "SET":
		if len(args) < 3 {
			return errResp("wrong number of arguments")
		}
		write = true
	case "GET":
		if len(args) != 2 {
			return errResp("wrong number of arguments")
		}
	case "DEL":
		if len(args) != 2 {
			return errResp("wrong number of arguments")
		}
		write = true
	case "VDEL":
		if len(args) != 3 {
			return errResp("wrong number of arguments")
		}
		write = true
	case "KEYNOTIFY":
		if len(args) != 2 && len(args) != 3 {
			return errResp("wrong number of arguments")
		}
	default:
		return errResp("unknown command")
	}
	key := args[1]
	if len(key) == 0 {
		return errResp("the key length is zero")
	}
	var opt statestore.SetOptions
	if verb == "SET" {
		if opt, err = parseSetOptions(args[3:]); err != nil {
			return errResp("syntax error")
		}
	}
	if verb == "KEYNOTIFY" && len(args) == 3 && !strings.EqualFold(string(args[2]), "STOP") {
		return errResp("syntax error")
	}
	if c != nil && s.opts.Authorize != nil && !s.opts.Authorize(c, write, key) {
		return errResp("not authorized")
	}

	// Timestamps (§1, §2, §5).
	hasTS := r.hasTS
	var reqTS statestore.HLC
	if hasTS {
		if reqTS, err = statestore.ParseHLC(r.ts); err != nil {
			return errResp("malformed timestamp")
		}
	} else if verb == "SET" {
		return errResp("missing timestamp")
	}
	var fencing *statestore.HLC
	if r.hasFT && verb != "GET" && verb != "KEYNOTIFY" {
		h, err := statestore.ParseHLC(r.ft)
		if err != nil {
			return errResp("malformed timestamp")
		}
		fencing = &h
	}
	if hasTS && verb != "SET" {
		// SET merges __ts inside the store; the others only advance the
		// clock (and reject a timestamp from the future).
		if _, err := s.store.Clock().Update(reqTS); err != nil {
			return s.storeErr(c, err)
		}
	}

	switch verb {
	case "SET":
		opt.Timestamp, opt.Fencing = reqTS, fencing
		if c != nil {
			opt.Owner = principal(c)
		}
		res, err := s.store.Set(key, args[2], opt)
		if err != nil {
			return s.storeErr(c, err)
		}
		if !res.Applied {
			return response{payload: respSkipped, version: res.Version}
		}
		return response{payload: respOK, version: res.Version}
	case "GET":
		v, ver, err := s.store.Get(key)
		if errors.Is(err, statestore.ErrNotFound) {
			return response{payload: respNil}
		}
		if err != nil {
			return s.storeErr(c, err)
		}
		return response{payload: appendBulk(nil, v), version: ver}
	case "DEL", "VDEL":
		var n int
		var ver statestore.HLC
		if verb == "DEL" {
			n, ver, err = s.store.DelVersion(key, fencing)
		} else {
			n, ver, err = s.store.VDelVersion(key, args[2], fencing)
		}
		if err != nil {
			return s.storeErr(c, err)
		}
		return response{payload: appendInt(nil, n), version: ver}
	default: // KEYNOTIFY
		if c == nil {
			return errResp("not authorized")
		}
		if len(args) == 3 {
			if !s.unregister(c, key) {
				return response{payload: respZero}
			}
			return response{payload: respOK}
		}
		if !s.register(c, key) {
			s.srv.Security().Event(seclog.LimitStateStore, "KEYNOTIFY refused: too many registrations for one client",
				"principal", principal(c), "client", c.ID, "remote", c.Remote, "max", MaxWatchesPerClient)
			return errResp("the quota has been exceeded")
		}
		return response{payload: respOK}
	}
}

// parseSetOptions parses SET's [NX|NEX] [PX ms].
func parseSetOptions(args [][]byte) (statestore.SetOptions, error) {
	var opt statestore.SetOptions
	var cond, px bool
	for i := 0; i < len(args); i++ {
		switch strings.ToUpper(string(args[i])) {
		case "NX", "NEX":
			if cond {
				return opt, errSyntax
			}
			cond = true
			opt.Condition = statestore.NX
			if len(args[i]) == 3 {
				opt.Condition = statestore.NEX
			}
		case "PX":
			if px || i+1 >= len(args) {
				return opt, errSyntax
			}
			px = true
			i++
			ms, err := strconv.ParseInt(string(args[i]), 10, 64)
			if err != nil || ms <= 0 || ms > int64(time.Duration(1<<63-1)/time.Millisecond) {
				return opt, errSyntax
			}
			opt.PX = time.Duration(ms) * time.Millisecond
		default:
			return opt, errSyntax
		}
	}
	return opt, nil
}

// storeErr maps a store error to its -ERR payload. Errors outside the
// protocol's list are logged and reported with their message.
func (s *Service) storeErr(c *broker.Client, err error) response {
	if errors.Is(err, statestore.ErrQuotaExceeded) && c != nil {
		quota := "total"
		if errors.Is(err, statestore.ErrOwnerQuotaExceeded) {
			quota = "principal"
		}
		if sec := s.srv.Security(); sec.Allow(seclog.LimitStateStore) {
			sec.Log(seclog.LimitStateStore, "state store SET refused: quota exceeded",
				"principal", principal(c), "client", c.ID, "remote", c.Remote, "quota", quota)
		}
	}
	if text, ok := statestore.ProtocolText(err); ok {
		return errResp(text)
	}
	s.log.Error("state store request failed", "client", clientID(c), "err", err)
	return errResp("internal error")
}

// register records c's KEYNOTIFY on key; false when c already watches
// MaxWatchesPerClient other keys.
func (s *Service) register(c *broker.Client, key []byte) bool {
	k := string(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone[c] { // the connection ended while this waited: it registers nothing
		return true
	}
	if _, again := s.clients[c.ID][k]; !again {
		if len(s.clients[c.ID]) >= MaxWatchesPerClient || s.clientBytes[c.ID]+len(k) > MaxWatchBytesPerClient ||
			s.watchBytes+len(k) > MaxWatchBytes {
			return false
		}
		s.clientBytes[c.ID] += len(k)
		s.watchBytes += len(k)
	}
	w := s.watch[k]
	if w == nil {
		w = map[string]*broker.Client{}
		s.watch[k] = w
	}
	w[c.ID] = c
	ks := s.clients[c.ID]
	if ks == nil {
		ks = map[string]struct{}{}
		s.clients[c.ID] = ks
	}
	ks[k] = struct{}{}
	return true
}

// forgetLocked removes key k from client id's watched keys and their
// byte counts. Callers hold mu.
func (s *Service) forgetLocked(id, k string) {
	if _, ok := s.clients[id][k]; !ok {
		return
	}
	delete(s.clients[id], k)
	s.watchBytes -= len(k)
	if s.clientBytes[id] -= len(k); len(s.clients[id]) == 0 {
		delete(s.clients, id)
		delete(s.clientBytes, id)
	}
}

func (s *Service) unregister(c *broker.Client, key []byte) bool {
	k := string(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.watch[k]
	if _, ok := w[c.ID]; !ok {
		return false
	}
	delete(w, c.ID)
	if len(w) == 0 {
		delete(s.watch, k)
	}
	s.forgetLocked(c.ID, k)
	return true
}
