package auth

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"strings"
)

// Passwords is a parsed password file (see the package doc for its format).
// It is immutable and safe for concurrent use.
type Passwords struct {
	users map[string]*user
	// dummy is verified for unknown users so that they cost about as much
	// time as known ones: a hash with the parameters of the file's first
	// entry, and a random salt and digest.
	dummy *passwordHash
}

type user struct {
	hash  *passwordHash
	attrs map[string]string
}

// ParsePasswordFile parses a password file. Errors name the line, e.g.
// "auth: password file line 3: unknown hash format".
func ParsePasswordFile(data []byte) (*Passwords, error) {
	pw := &Passwords{users: make(map[string]*user)}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, u, err := parseUserLine(line)
		if err == nil && pw.users[name] != nil {
			err = fmt.Errorf("duplicate user %q", name)
		}
		if err != nil {
			return nil, fmt.Errorf("auth: password file line %d: %w", n, err)
		}
		if pw.dummy == nil {
			if pw.dummy, err = u.hash.dummy(); err != nil {
				return nil, fmt.Errorf("auth: password file: %w", err)
			}
		}
		pw.users[name] = u
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: password file line %d: %w", n+1, err)
	}
	return pw, nil
}

// parseUserLine parses "username:hash[:attributes]".
func parseUserLine(line string) (string, *user, error) {
	name, rest, ok := strings.Cut(line, ":")
	if !ok {
		return "", nil, errors.New(`want "username:hash"`)
	}
	if name == "" {
		return "", nil, errors.New("empty username")
	}
	h, attrField, _ := strings.Cut(rest, ":")
	hash, err := parseHash(h)
	if err != nil {
		return "", nil, err
	}
	attrs, err := parseAttributes(attrField)
	if err != nil {
		return "", nil, err
	}
	return name, &user{hash: hash, attrs: attrs}, nil
}

// parseAttributes parses "name=value,name2=value2" with percent-encoded
// values.
func parseAttributes(s string) (map[string]string, error) {
	if s == "" {
		return nil, nil
	}
	attrs := make(map[string]string)
	for item := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(item, "=")
		if !ok || k == "" || strings.ContainsAny(k, "{} \t") {
			return nil, fmt.Errorf("attribute %q: want name=value", item)
		}
		if _, dup := attrs[k]; dup {
			return nil, fmt.Errorf("attribute %q given twice", k)
		}
		val, err := url.PathUnescape(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %q: bad percent-encoding in value", k)
		}
		attrs[k] = val
	}
	return attrs, nil
}

// Verify checks a username and password. On success it returns a copy of
// the user's attributes (nil if none) and true. Digests are compared in
// constant time, and an unknown username is checked against a dummy hash so
// that its timing does not reveal whether the user exists.
func (pw *Passwords) Verify(username string, password []byte) (attrs map[string]string, ok bool) {
	if pw == nil {
		return nil, false
	}
	u := pw.users[username]
	if u == nil {
		if pw.dummy != nil {
			pw.dummy.verify(password)
		}
		return nil, false
	}
	if !u.hash.verify(password) {
		return nil, false
	}
	return maps.Clone(u.attrs), true
}

// Len returns the number of users.
func (pw *Passwords) Len() int {
	if pw == nil {
		return 0
	}
	return len(pw.users)
}
