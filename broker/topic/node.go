package topic

import "bytes"

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
	switch {
	case isPlus(level):
		return n.plus
	case isHash(level):
		return n.hash
	}
	return n.children[string(level)]
}

// addChild adds the node for filter, whose last level starts at pos. The
// node's level is a substring of its filter, so both cost one allocation.
func (n *node[K, V]) addChild(filter string, pos int) *node[K, V] {
	c := &node[K, V]{parent: n, level: filter[pos:], filter: filter}
	switch c.level {
	case "+":
		n.plus = c
	case "#":
		n.hash = c
	default:
		if n.children == nil {
			n.children = make(map[string]*node[K, V])
		}
		n.children[c.level] = c
	}
	return c
}

// prune removes n and its ancestors while they hold nothing.
func (t *Tree[K, V]) prune(n *node[K, V]) {
	for n != &t.root && n.empty() {
		p := n.parent
		switch {
		case p.plus == n:
			p.plus = nil
		case p.hash == n:
			p.hash = nil
		default:
			delete(p.children, n.level)
			if len(p.children) == 0 {
				p.children = nil
			}
		}
		n.parent = nil
		n = p
	}
}

func (n *node[K, V]) empty() bool {
	return len(n.subs) == 0 && len(n.groups) == 0 && len(n.children) == 0 &&
		n.plus == nil && n.hash == nil
}

// group returns n's shared group named name, or nil.
func (n *node[K, V]) group(name []byte) *group[K, V] {
	if i := n.groupIndex(name); i >= 0 {
		return n.groups[i]
	}
	return nil
}

func (n *node[K, V]) groupIndex(name []byte) int {
	for i, g := range n.groups {
		if g.name == string(name) {
			return i
		}
	}
	return -1
}

// index returns the position of key's subscription in subs, or -1.
func index[K comparable, V any](subs []Sub[K, V], key K) int {
	for i := range subs {
		if subs[i].Key == key {
			return i
		}
	}
	return -1
}
