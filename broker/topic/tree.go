package topic

import (
	"slices"
	"sync/atomic"
)

// Sub is one subscription returned by [Tree.Match].
type Sub[K comparable, V any] struct {
	Key   K
	Value V
	// Filter is the topic filter, without the "$share/{group}/" prefix of
	// a shared subscription. It is shared by all subscriptions to the same
	// filter and costs nothing to copy.
	Filter string
	// Group is the share name of a shared subscription, "" otherwise.
	Group string
}

// Shared reports whether s is a shared subscription.
func (s Sub[K, V]) Shared() bool { return s.Group != "" }

// Tree indexes subscriptions by topic filter, one trie node per level.
//
// A Tree is not safe for concurrent use. Callers guard it with a
// sync.RWMutex: Subscribe and Unsubscribe need the write lock, while Match
// and Len may run concurrently under the read lock (Match only updates the
// shared-group round-robin counters, which are atomic). The zero value is
// an empty Tree.
type Tree[K comparable, V any] struct {
	// Prefer, if set, restricts the round robin over a shared group to
	// members for which it returns true, unless none does; for example to
	// skip members whose session is offline. It is called from Match, under
	// the caller's read lock, and must not call into the Tree.
	Prefer func(K) bool

	root node[K, V]
	n    int
}

// A node is 96 bytes (a size class): a tree with a node per subscribed
// device (devices/{id}/state) holds thousands of them on a gateway.
// Children are a slice while few (most nodes have one or none), searched
// linearly, and a map only beyond maxKids: a map costs 256 bytes even
// for one child. Wildcard children and shared groups, which few nodes
// have, hang off wild.
type node[K comparable, V any] struct {
	parent   *node[K, V]
	filter   string                 // full filter up to this node, shared by its Subs
	kids     []*node[K, V]          // the named children while at most maxKids, else nil
	children map[string]*node[K, V] // the named children by level beyond maxKids, else nil
	wild     *wild[K, V]            // nil while the node has none of it
	subs     []member[K, V]
	pos      int32 // where the node's level starts in filter
}

// wild is what few nodes have: "+" and "#" children and shared groups.
type wild[K comparable, V any] struct {
	plus   *node[K, V]
	hash   *node[K, V]
	groups []*group[K, V]
}

// wildPart returns n.wild, made if n has none.
func (n *node[K, V]) wildPart() *wild[K, V] {
	if n.wild == nil {
		n.wild = new(wild[K, V])
	}
	return n.wild
}

// dropWild forgets n.wild once it holds nothing.
func (n *node[K, V]) dropWild() {
	if w := n.wild; w != nil && w.plus == nil && w.hash == nil && len(w.groups) == 0 {
		n.wild = nil
	}
}

// maxKids is how many named children a node keeps in its slice.
const maxKids = 8

type group[K comparable, V any] struct {
	name    string
	next    atomic.Uint32
	members []member[K, V]
}

// member is a subscription as a node or group keeps it: Match adds the
// filter and group names, which the node and group hold once, to make
// its Sub (16 bytes kept a subscription instead of 48 for the usual
// pointer key and small value).
type member[K comparable, V any] struct {
	key   K
	value V
}

// NewTree returns an empty Tree.
func NewTree[K comparable, V any]() *Tree[K, V] { return new(Tree[K, V]) }

// Len returns the number of subscriptions, shared ones included.
func (t *Tree[K, V]) Len() int { return t.n }

// Subscribe adds the subscription of key to filter with value v, or replaces
// v if key already subscribed to filter. The filter must be valid (see
// ValidFilter) and may be a shared filter "$share/{group}/{f}"; a shared
// subscription is keyed by (group, f, key), independent of a plain
// subscription of key to f. Subscribe copies filter.
func (t *Tree[K, V]) Subscribe(filter []byte, key K, v V) (replaced bool) {
	grp, f, shared := ParseShared(filter)
	n := t.walk(f, true)
	subs := &n.subs
	if shared {
		g := n.group(grp)
		if g == nil {
			g = &group[K, V]{name: string(grp)}
			w := n.wildPart()
			w.groups = append(w.groups, g)
		}
		subs = &g.members
	}
	if i := index(*subs, key); i >= 0 {
		(*subs)[i].value = v
		return true
	}
	*subs = append(*subs, member[K, V]{key, v})
	t.n++
	return false
}

// Filter returns the tree's copy of the filter f (not a shared one),
// which its subscriptions' Sub.Filter share, or "" when the tree has no
// node for it. A caller that keeps its own record of a subscription can
// share the copy instead of keeping another.
func (t *Tree[K, V]) Filter(f []byte) string {
	if n := t.walk(f, false); n != nil {
		return n.filter
	}
	return ""
}

// Unsubscribe removes the subscription of key to filter (plain or shared)
// and prunes nodes left empty. It reports whether there was one.
func (t *Tree[K, V]) Unsubscribe(filter []byte, key K) bool {
	grp, f, shared := ParseShared(filter)
	n := t.walk(f, false)
	if n == nil {
		return false
	}
	if !shared {
		i := index(n.subs, key)
		if i < 0 {
			return false
		}
		n.subs = slices.Delete(n.subs, i, i+1)
	} else {
		gi := n.groupIndex(grp)
		if gi < 0 {
			return false
		}
		w := n.wild
		g := w.groups[gi]
		i := index(g.members, key)
		if i < 0 {
			return false
		}
		g.members = slices.Delete(g.members, i, i+1)
		if len(g.members) == 0 {
			w.groups = slices.Delete(w.groups, gi, gi+1)
			n.dropWild()
		}
	}
	t.n--
	t.prune(n)
	return true
}

// Match appends to dst every plain subscription whose filter matches the
// topic name, and for every matching shared group one member, chosen round
// robin (see Prefer). The name must be valid (see ValidName). A client with
// overlapping filters appears once per matching filter; the caller merges.
// Match allocates nothing unless dst has to grow, so reuse dst[:0].
func (t *Tree[K, V]) Match(name []byte, dst []Sub[K, V]) []Sub[K, V] {
	// [MQTT-4.7.2-1] names starting with '$' skip the root's wildcards.
	wild := len(name) == 0 || name[0] != '$'
	return t.matchLevel(&t.root, name, wild, dst)
}

// matchLevel matches name, the part of the topic name below node n.
func (t *Tree[K, V]) matchLevel(n *node[K, V], name []byte, wild bool, dst []Sub[K, V]) []Sub[K, V] {
	level, rest, more := cut(name)
	if w := n.wild; wild && w != nil {
		if w.hash != nil {
			dst = t.appendSubs(w.hash, dst) // [MQTT-4.7.1-2]
		}
		if w.plus != nil {
			dst = t.descend(w.plus, rest, more, dst) // [MQTT-4.7.1-3]
		}
	}
	if c := n.named(level); c != nil {
		dst = t.descend(c, rest, more, dst)
	}
	return dst
}

// descend continues matching at n, whose level matched one name level.
func (t *Tree[K, V]) descend(n *node[K, V], rest []byte, more bool, dst []Sub[K, V]) []Sub[K, V] {
	if more {
		return t.matchLevel(n, rest, true, dst)
	}
	dst = t.appendSubs(n, dst)
	if w := n.wild; w != nil && w.hash != nil {
		dst = t.appendSubs(w.hash, dst) // "sport/#" matches "sport"
	}
	return dst
}

func (t *Tree[K, V]) appendSubs(n *node[K, V], dst []Sub[K, V]) []Sub[K, V] {
	k := len(dst)
	dst = slices.Grow(dst, len(n.subs))[:k+len(n.subs)]
	for i, m := range n.subs {
		s := &dst[k+i]
		s.Key, s.Value, s.Filter, s.Group = m.key, m.value, n.filter, ""
	}
	if n.wild == nil {
		return dst
	}
	for _, g := range n.wild.groups {
		m := &g.members[g.pick(t.Prefer)]
		dst = append(dst, Sub[K, V]{Key: m.key, Value: m.value, Filter: n.filter, Group: g.name})
	}
	return dst
}

// pick returns the index of the next member in round-robin order, skipping
// members that prefer rejects unless all are rejected. Concurrent callers
// may occasionally pick the same member.
func (g *group[K, V]) pick(prefer func(K) bool) int {
	n := uint32(len(g.members))
	for {
		cur := g.next.Load()
		i := cur % n
		for off := uint32(0); prefer != nil && off < n; off++ {
			if j := (cur + off) % n; prefer(g.members[j].key) {
				i = j
				break
			}
		}
		// Continue after the chosen member, so members that prefer
		// rejected do not hand their turn to the next one.
		if g.next.CompareAndSwap(cur, cur+(i+n-cur%n)%n+1) {
			return int(i)
		}
	}
}
