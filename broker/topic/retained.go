package topic

// Retained indexes retained messages by topic name, one trie node per level,
// so that a new subscription finds its retained messages by walking only the
// levels its filter can match.
//
// A Retained is not safe for concurrent use. Callers guard it with a
// sync.RWMutex: Set and Delete need the write lock, while Get, Len, Match and
// Range may run concurrently under the read lock. The zero value is an empty
// index.
type Retained[V any] struct {
	root rnode[V]
	n    int
}

type rnode[V any] struct {
	parent   *rnode[V]
	level    string
	children map[string]*rnode[V]
	topic    []byte // full topic name, set while the node holds a value
	value    V
	set      bool
}

// Len returns the number of retained topics.
func (r *Retained[V]) Len() int { return r.n }

// Set stores v for the topic name, returning the value it replaced, if any.
// The topic must be a valid topic name (see ValidName); Set copies it.
func (r *Retained[V]) Set(topic []byte, v V) (old V, replaced bool) {
	n := &r.root
	for rest, more := topic, true; more; {
		var level []byte
		level, rest, more = cut(rest)
		c := n.children[string(level)]
		if c == nil {
			c = &rnode[V]{parent: n, level: string(level)}
			if n.children == nil {
				n.children = make(map[string]*rnode[V])
			}
			n.children[c.level] = c
		}
		n = c
	}
	old, replaced = n.value, n.set
	if !replaced {
		n.topic = append([]byte(nil), topic...)
		n.set = true
		r.n++
	}
	n.value = v
	return old, replaced
}

// Get returns the value retained for topic.
func (r *Retained[V]) Get(topic []byte) (V, bool) {
	if n := r.find(topic); n != nil && n.set {
		return n.value, true
	}
	var zero V
	return zero, false
}

// Delete removes the value retained for topic, returning it, and prunes
// nodes left empty.
func (r *Retained[V]) Delete(topic []byte) (old V, ok bool) {
	n := r.find(topic)
	if n == nil || !n.set {
		return old, false
	}
	old = n.value
	var zero V
	n.value, n.topic, n.set = zero, nil, false
	r.n--
	for n != &r.root && !n.set && len(n.children) == 0 {
		p := n.parent
		delete(p.children, n.level)
		if len(p.children) == 0 {
			p.children = nil
		}
		n.parent = nil
		n = p
	}
	return old, true
}

func (r *Retained[V]) find(topic []byte) *rnode[V] {
	n := &r.root
	for rest, more := topic, true; more && n != nil; {
		var level []byte
		level, rest, more = cut(rest)
		n = n.children[string(level)]
	}
	return n
}

// Match calls fn for every retained topic that the topic filter matches,
// until fn returns false. The filter must be a valid, non-shared filter.
// Topics starting with '$' are not matched by a filter starting with a
// wildcard [MQTT-4.7.2-1]. Visiting order is unspecified.
//
// The topic passed to fn is owned by the Retained and must not be modified
// or kept after fn returns (it may be a reused buffer); copy it to keep it.
// fn must not call Set or Delete.
func (r *Retained[V]) Match(filter []byte, fn func(topic []byte, v V) bool) {
	r.root.match(filter, true, fn)
}

// Range calls fn for every retained topic, including '$' topics, until fn
// returns false. The rules for fn are those of Match.
func (r *Retained[V]) Range(fn func(topic []byte, v V) bool) {
	r.root.all(false, fn)
}

// match visits the nodes below n matched by filter; root marks the trie
// root, where '$' levels are hidden from wildcards. It returns false once
// fn has returned false.
func (n *rnode[V]) match(filter []byte, root bool, fn func([]byte, V) bool) bool {
	level, rest, more := cut(filter)
	switch {
	case isHash(level):
		// [MQTT-4.7.1-2] n itself ("sport/#" matches "sport") and all below.
		if !root && n.set && !fn(n.topic, n.value) {
			return false
		}
		return n.all(root, fn)
	case isPlus(level):
		for l, c := range n.children {
			if root && len(l) > 0 && l[0] == '$' {
				continue // [MQTT-4.7.2-1]
			}
			if !c.matchRest(rest, more, fn) {
				return false
			}
		}
		return true
	}
	if c := n.children[string(level)]; c != nil {
		return c.matchRest(rest, more, fn)
	}
	return true
}

// matchRest continues at n, whose level matched one filter level.
func (n *rnode[V]) matchRest(rest []byte, more bool, fn func([]byte, V) bool) bool {
	if more {
		return n.match(rest, false, fn)
	}
	if n.set {
		return fn(n.topic, n.value)
	}
	return true
}

// all visits every node below n, skipping '$' levels if hideDollar is set.
func (n *rnode[V]) all(hideDollar bool, fn func([]byte, V) bool) bool {
	for l, c := range n.children {
		if hideDollar && len(l) > 0 && l[0] == '$' {
			continue // [MQTT-4.7.2-1]
		}
		if c.set && !fn(c.topic, c.value) {
			return false
		}
		if !c.all(false, fn) {
			return false
		}
	}
	return true
}
