package topic

import (
	"bytes"
	"slices"
)

// walk returns the node for the non-shared filter f, creating missing nodes
// if create is set and returning nil for a missing one otherwise.
func (t *Tree[K, V]) walk(f []byte, create bool) *node[K, V] {
	n := &t.root
	for pos := 0; ; {
		end := len(f)
		if i := bytes.IndexByte(f[pos:], '/'); i >= 0 {
			end = pos + i
		}
		c := n.child(f[pos:end])
		if c == nil {
			if !create {
				return nil
			}
			c = n.addChild(string(f[:end]), pos)
		}
		n = c
		if end == len(f) {
			return n
		}
		pos = end + 1
	}
}

// child returns n's child for one filter level, or nil.
func (n *node[K, V]) child(level []byte) *node[K, V] {
	switch w := n.wild; {
	case isPlus(level):
		if w != nil {
			return w.plus
		}
		return nil
	case isHash(level):
		if w != nil {
			return w.hash
		}
		return nil
	}
	return n.named(level)
}

// named returns n's child for a level that is not a wildcard, or nil.
func (n *node[K, V]) named(level []byte) *node[K, V] {
	if n.children != nil {
		return n.children[string(level)]
	}
	for _, c := range n.kids {
		if c.level() == string(level) {
			return c
		}
	}
	return nil
}

// level is the node's last filter level: "+", "#" or a name.
func (n *node[K, V]) level() string { return n.filter[n.pos:] }

// addChild adds the node for filter, whose last level starts at pos. The
// node's level is a substring of its filter: one allocation for both.
func (n *node[K, V]) addChild(filter string, pos int) *node[K, V] {
	c := &node[K, V]{parent: n, filter: filter, pos: int32(pos)}
	switch c.level() {
	case "+":
		n.wildPart().plus = c
	case "#":
		n.wildPart().hash = c
	default:
		switch {
		case n.children != nil:
			n.children[c.level()] = c
		case len(n.kids) < maxKids:
			n.kids = append(n.kids, c)
		default:
			n.children = make(map[string]*node[K, V], 2*maxKids)
			for _, k := range n.kids {
				n.children[k.level()] = k
			}
			n.children[c.level()] = c
			n.kids = nil
		}
	}
	return c
}

// prune removes n and its ancestors while they hold nothing.
func (t *Tree[K, V]) prune(n *node[K, V]) {
	for n != &t.root && n.empty() {
		p := n.parent
		switch w := p.wild; {
		case w != nil && w.plus == n:
			w.plus = nil
			p.dropWild()
		case w != nil && w.hash == n:
			w.hash = nil
			p.dropWild()
		case p.children != nil:
			delete(p.children, n.level())
			if len(p.children) == 0 {
				p.children = nil
			}
		default:
			i := slices.Index(p.kids, n)
			if p.kids = slices.Delete(p.kids, i, i+1); len(p.kids) == 0 {
				p.kids = nil
			}
		}
		n.parent = nil
		n = p
	}
}

func (n *node[K, V]) empty() bool {
	return len(n.subs) == 0 && n.wild == nil && len(n.kids) == 0 && len(n.children) == 0
}

// group returns n's shared group named name, or nil.
func (n *node[K, V]) group(name []byte) *group[K, V] {
	if i := n.groupIndex(name); i >= 0 {
		return n.wild.groups[i]
	}
	return nil
}

func (n *node[K, V]) groupIndex(name []byte) int {
	if n.wild == nil {
		return -1
	}
	for i, g := range n.wild.groups {
		if g.name == string(name) {
			return i
		}
	}
	return -1
}

// index returns the position of key's subscription in subs, or -1.
func index[K comparable, V any](subs []member[K, V], key K) int {
	for i := range subs {
		if subs[i].key == key {
			return i
		}
	}
	return -1
}
