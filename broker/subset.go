package broker

// subSet is a session's subscriptions by filter. Most sessions hold a
// few, so they are a slice searched linearly: 24 bytes an entry, where a
// map costs its 48-byte header and a 208-byte group even for one entry
// (an idle subscribed connection's largest single saving, see
// idle_mem_test.go). Beyond subIndexAt entries an index map is kept
// beside the slice, so a session with Limits.MaxSubscriptions filters
// does not search a thousand entries per SUBSCRIBE. The zero value is
// empty. Its owner guards it (session.mu).
type subSet struct {
	list  []subEntry
	index map[string]int // filter → position in list; nil below subIndexAt entries
}

type subEntry struct {
	filter string
	opts   subOpts
}

// subIndexAt is the size from which a subSet keeps an index map.
const subIndexAt = 16

func (s *subSet) len() int { return len(s.list) }

// all returns the entries, in no particular order. The caller must not
// modify the set while it uses them.
func (s *subSet) all() []subEntry { return s.list }

// find returns the position of filter in list, or -1.
func (s *subSet) find(filter string) int {
	if s.index != nil {
		if i, ok := s.index[filter]; ok {
			return i
		}
		return -1
	}
	for i := range s.list {
		if s.list[i].filter == filter {
			return i
		}
	}
	return -1
}

func (s *subSet) has(filter string) bool { return s.find(filter) >= 0 }

// set adds the subscription to filter or replaces its options.
func (s *subSet) set(filter string, o subOpts) {
	if i := s.find(filter); i >= 0 {
		s.list[i].opts = o
		return
	}
	s.list = append(s.list, subEntry{filter, o})
	switch {
	case s.index != nil:
		s.index[filter] = len(s.list) - 1
	case len(s.list) >= subIndexAt:
		s.index = make(map[string]int, len(s.list))
		for i := range s.list {
			s.index[s.list[i].filter] = i
		}
	}
}

// intern replaces the filter of entry i with f, an equal string that
// someone else keeps anyway, so that only one copy stays.
func (s *subSet) intern(i int, f string) {
	if s.list[i].filter != f {
		return
	}
	s.list[i].filter = f
	if s.index != nil {
		delete(s.index, f)
		s.index[f] = i
	}
}

// remove deletes the subscription to filter (the last entry takes its
// place) and reports whether there was one.
func (s *subSet) remove(filter string) bool {
	i := s.find(filter)
	if i < 0 {
		return false
	}
	last := len(s.list) - 1
	if s.index != nil {
		delete(s.index, filter)
		if i != last {
			s.index[s.list[last].filter] = i
		}
	}
	s.list[i] = s.list[last]
	s.list[last] = subEntry{}
	s.list = s.list[:last]
	switch {
	case last == 0:
		s.list = nil
	case s.index != nil && last < subIndexAt/2:
		s.index = nil
	}
	return true
}
