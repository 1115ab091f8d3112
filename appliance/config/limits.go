package config

import (
	"fmt"
	"io"

	"github.com/goccy/go-yaml/scanner"
	"github.com/goccy/go-yaml/token"
)

// Limits on one configuration file, checked on the YAML tokens before
// any of them is parsed into a tree, so a hostile file costs at most a
// few megabytes and milliseconds. The YAML parser stores with every node
// the path from the root to it ("$.spec.ports[0].tls"), so its memory
// grows with depth times the number of nodes, and with the length of the
// keys above each node: 40 KB of "[" once took 655 MB. Real
// configurations stay far below every limit.
const (
	// MaxFileSize bounds one configuration file (a YAML file or a file in
	// the secrets folder).
	MaxFileSize = 1 << 20

	// MaxDocuments bounds the "---"-separated documents in one file.
	MaxDocuments = 1024

	// MaxTokens bounds the YAML tokens (keys, values, "-", brackets) in
	// one file, counted before reading them (an upper bound: words of a
	// string count one each); a long base64 value is one token.
	MaxTokens = 1 << 16

	// MaxDepth bounds the nesting of mappings and lists. AIO and
	// cert-manager resources nest about 8 deep.
	MaxDepth = 64

	// MaxKeyLength bounds a mapping key in bytes (YAML 1.2 limits an
	// implicit key to 1024 characters).
	MaxKeyLength = 1024

	// MaxAliases bounds the aliases (*name and "<<" merges) in one file.
	// An alias may not appear inside an anchored value, so aliases cannot
	// multiply one another (the "billion laughs").
	MaxAliases = 128

	// maxPathBytes bounds the estimated bytes of the node paths the
	// parser would store: the sum over all nodes of the length of their
	// path, which the other limits alone bound only by their product.
	maxPathBytes = 16 << 20
)

// frame is one open mapping entry, list entry or flow collection while
// scanning.
type frame struct {
	col      int  // column of the key or "-"; -1 for flow collections and the root
	key      bool // a block mapping key
	flow     bool // "[" or "{"
	path     int  // estimated length of the path of the value in this frame
	anchored bool // inside the value of an anchor
	flowKey  int  // flow only: length+3 of the key just read, 0 if none
}

// scanState checks the limits token by token.
type scanState struct {
	stack    []frame
	flow     int // open flow collections
	anchored int // frames in stack with anchored set
	tokens   int
	aliases  int
	paths    int // estimated path bytes so far

	expect      token.Type // AnchorType or AliasType: the next token is its name
	anchorOwner int        // index in stack owning a pending anchor, -1 if none
	anchorLine  int        // line of the pending anchor
	anchorName  string     // name of the pending anchor
	lastAnchor  string     // name of the anchor of the innermost anchored frame, for messages
}

// limitError is a limit exceeded at line (of the scanned text).
type limitError struct {
	line int
	msg  string
}

func (e *limitError) Error() string { return e.msg }

// countTokens returns an upper bound on the YAML tokens in data, stopping
// past max, and the line it stopped on: every token starts at a YAML
// indicator or at a non-blank byte after a blank or an indicator. The
// scanner holds a whole flow collection ("[...]") before returning any of
// its tokens, so scanDocument can only stop a long one after the fact.
func countTokens(data []byte, max int) (n, line int) {
	line = 1
	prev := byte('\n')
	for _, c := range data {
		switch {
		case c == '\n':
			line++
		case isIndicator(c):
			n++
		case c != ' ' && c != '\t' && c != '\r' && (prev == ' ' || prev == '\t' || prev == '\n' || prev == '\r' || isIndicator(prev)):
			n++
		}
		if n > max {
			return n, line
		}
		prev = c
	}
	return n, line
}

func isIndicator(c byte) bool {
	switch c {
	case '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`', '<', '.':
		return true
	}
	return false
}

// scanDocument tokenizes one document, checking the limits on each token
// as it is read. Counts (tokens, aliases, path bytes) carry over in st
// from the file's earlier documents.
func scanDocument(src []byte, st *scanState) (token.Tokens, error) {
	st.stack = append(st.stack[:0], frame{col: -1})
	st.flow, st.anchored, st.anchorOwner, st.expect = 0, 0, -1, 0
	var s scanner.Scanner
	s.Init(string(src))
	var tokens token.Tokens
	for {
		tks, err := s.Scan()
		if err == io.EOF {
			return tokens, nil
		}
		for _, tk := range tks {
			if err := st.check(tk, tokens); err != nil {
				return nil, err
			}
			tokens.Add(tk)
		}
	}
}

func (st *scanState) fail(tk *token.Token, format string, args ...any) error {
	return &limitError{line: tk.Position.Line, msg: fmt.Sprintf(format, args...)}
}

// check accounts for tk, which follows prev.
func (st *scanState) check(tk *token.Token, prev token.Tokens) error {
	switch tk.Type {
	case token.CommentType, token.SpaceType, token.DirectiveType, token.DocumentHeaderType, token.DocumentEndType:
		return nil
	}
	if st.tokens++; st.tokens > MaxTokens {
		return st.fail(tk, "more than %d YAML tokens (keys, values, punctuation) in one file", MaxTokens)
	}
	switch st.expect {
	case token.AnchorType: // tk names the anchor
		st.expect = 0
		st.anchorOwner, st.anchorLine, st.anchorName = len(st.stack)-1, tk.Position.Line, tk.Value
		return nil
	case token.AliasType: // tk names the alias, and is a value (or key)
		st.expect = 0
		if st.anchored > 0 || st.anchorOwner >= 0 {
			return st.fail(tk, "alias *%s inside the value of anchor &%s: an anchored value may not contain aliases", tk.Value, st.lastAnchor)
		}
	}
	if st.anchorOwner >= 0 && tk.Type != token.TagType {
		st.resolveAnchor(tk)
	}
	top := &st.stack[len(st.stack)-1]
	switch tk.Type {
	case token.MappingKeyType:
		return st.fail(tk, "explicit mapping keys (\"? \") are not supported")
	case token.MappingValueType:
		return st.key(tk, last(prev))
	case token.SequenceEntryType:
		if st.flow > 0 {
			return nil
		}
		c := tk.Position.Column
		st.popBlock(func(f *frame) bool { return f.col > c || f.col == c && !f.key })
		return st.push(tk, frame{col: c, path: st.top().path + 12})
	case token.SequenceStartType, token.MappingStartType:
		path := top.path
		if top.flow {
			path += elemCost(top)
		}
		st.flow++
		return st.push(tk, frame{col: -1, flow: true, path: path, anchored: st.takeAnchor()})
	case token.SequenceEndType, token.MappingEndType:
		for len(st.stack) > 1 {
			f := st.pop()
			if f.flow {
				st.flow--
				break
			}
		}
		return nil
	case token.CollectEntryType:
		top.flowKey = 0
		return nil
	case token.AnchorType:
		st.expect = token.AnchorType
		return nil
	case token.AliasType:
		if st.aliases++; st.aliases > MaxAliases {
			return st.fail(tk, "more than %d aliases", MaxAliases)
		}
		st.expect = token.AliasType
		return nil
	case token.MergeKeyType:
		if st.aliases++; st.aliases > MaxAliases {
			return st.fail(tk, "more than %d aliases", MaxAliases)
		}
	case token.TagType, token.LiteralType, token.FoldedType:
		return nil
	}
	// A scalar (or alias): a value, or a key if ":" follows.
	return st.addPath(tk, top.path+elemCost(top))
}

// key handles ":" after the key token k.
func (st *scanState) key(tk, k *token.Token) error {
	if k == nil {
		return nil // ": x" with an empty key; the parser decides
	}
	switch k.Type {
	case token.SequenceEndType, token.MappingEndType:
		return st.fail(tk, "a mapping key must be a string, not a list or mapping")
	}
	n := len(k.Value)
	if n > MaxKeyLength {
		return st.fail(k, "mapping key longer than %d bytes", MaxKeyLength)
	}
	if st.flow > 0 {
		st.top().flowKey = n + 3
		return nil
	}
	c := k.Position.Column
	st.popBlock(func(f *frame) bool { return f.col >= c })
	return st.push(k, frame{col: c, key: true, path: st.top().path + n + 3})
}

// elemCost is the path length a value adds inside f.
func elemCost(f *frame) int {
	if f.flow && f.flowKey > 0 {
		return f.flowKey
	}
	if f.flow {
		return 12 // "[index]"
	}
	return 0 // the block key or "-" already counted it
}

func (st *scanState) top() *frame { return &st.stack[len(st.stack)-1] }

func (st *scanState) push(tk *token.Token, f frame) error {
	if len(st.stack) > MaxDepth {
		return st.fail(tk, "nesting deeper than %d", MaxDepth)
	}
	if f.anchored {
		st.anchored++
	}
	st.stack = append(st.stack, f)
	return st.addPath(tk, f.path)
}

func (st *scanState) pop() frame {
	f := st.stack[len(st.stack)-1]
	st.stack = st.stack[:len(st.stack)-1]
	if f.anchored {
		st.anchored--
	}
	if st.anchorOwner >= len(st.stack) {
		st.anchorOwner = -1
	}
	return f
}

// popBlock closes block frames (never flow ones, nor the root) while
// done says so.
func (st *scanState) popBlock(done func(*frame) bool) {
	for len(st.stack) > 1 && st.flow == 0 && done(st.top()) {
		st.pop()
	}
}

func (st *scanState) addPath(tk *token.Token, n int) error {
	if st.paths += n; st.paths > maxPathBytes {
		return st.fail(tk, "too many values under long keys or deep nesting (their paths would take more than %d bytes)", maxPathBytes)
	}
	return nil
}

// resolveAnchor decides what the pending anchor applies to, seeing the
// token after it: a flow collection (takeAnchor marks it), a scalar on
// the anchor's line (nothing to track), or a block collection on the
// lines below, which lies inside the anchor's owner frame.
func (st *scanState) resolveAnchor(tk *token.Token) {
	switch {
	case tk.Type == token.SequenceStartType || tk.Type == token.MappingStartType:
		return
	case tk.Position.Line > st.anchorLine && st.anchorOwner < len(st.stack):
		f := &st.stack[st.anchorOwner]
		if !f.anchored {
			f.anchored = true
			st.anchored++
		}
		st.lastAnchor = st.anchorName
	}
	st.anchorOwner = -1
}

// takeAnchor reports whether a pending anchor applies to the flow
// collection starting now.
func (st *scanState) takeAnchor() bool {
	if st.anchorOwner < 0 {
		return false
	}
	st.anchorOwner = -1
	st.lastAnchor = st.anchorName
	return true
}

func last(ts token.Tokens) *token.Token {
	for i := len(ts) - 1; i >= 0; i-- {
		switch ts[i].Type {
		case token.CommentType, token.SpaceType:
			continue
		}
		return ts[i]
	}
	return nil
}
