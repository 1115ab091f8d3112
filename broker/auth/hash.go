package auth

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

type hashKind uint8

const (
	bcryptHash   hashKind = iota + 1 // $2a$, $2b$, $2y$
	argon2idHash                     // $argon2id$v=19$m=..,t=..,p=..$salt$sum
	sha512Hash                       // mosquitto $6$salt$sum: SHA-512(password || salt)
	pbkdf2Hash                       // mosquitto $7$iter$salt$sum: PBKDF2-HMAC-SHA512
)

// Bounds on hash parameters, so that a password file cannot make one
// verification take minutes or gigabytes.
const (
	maxArgonMemory = 1 << 20 // KiB, 1 GiB
	maxArgonTime   = 100
	maxPBKDF2Iter  = 10_000_000
)

// passwordHash is one parsed password hash.
type passwordHash struct {
	kind    hashKind
	bcrypt  []byte // the whole bcrypt hash
	salt    []byte
	sum     []byte
	iter    uint32 // $7$ iterations, argon2 time
	memory  uint32 // argon2, KiB
	threads uint8  // argon2
}

var errUnknownHash = errors.New("unknown hash format (want bcrypt $2a$/$2b$/$2y$, $argon2id$, or mosquitto_passwd $6$/$7$; plaintext passwords are not accepted)")

func parseHash(s string) (*passwordHash, error) {
	switch {
	case strings.HasPrefix(s, "$2a$"), strings.HasPrefix(s, "$2b$"), strings.HasPrefix(s, "$2y$"):
		if _, err := bcrypt.Cost([]byte(s)); err != nil {
			return nil, fmt.Errorf("malformed bcrypt hash: %v", err)
		}
		return &passwordHash{kind: bcryptHash, bcrypt: []byte(s)}, nil
	case strings.HasPrefix(s, "$argon2id$"):
		return parseArgon2id(s)
	case strings.HasPrefix(s, "$6$"):
		f := strings.Split(s, "$") // "", "6", salt, sum
		if len(f) != 4 {
			return nil, errors.New("malformed $6$ hash: want $6$salt$hash")
		}
		return mosquittoHash(sha512Hash, 0, f[2], f[3])
	case strings.HasPrefix(s, "$7$"):
		f := strings.Split(s, "$") // "", "7", iterations, salt, sum
		if len(f) != 5 {
			return nil, errors.New("malformed $7$ hash: want $7$iterations$salt$hash")
		}
		iter, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil || iter == 0 || iter > maxPBKDF2Iter {
			return nil, fmt.Errorf("malformed $7$ hash: iterations %q not in 1..%d", f[2], maxPBKDF2Iter)
		}
		return mosquittoHash(pbkdf2Hash, uint32(iter), f[3], f[4])
	}
	return nil, errUnknownHash
}

// mosquittoHash decodes the base64 salt and SHA-512 digest of a
// mosquitto_passwd hash.
func mosquittoHash(kind hashKind, iter uint32, salt, sum string) (*passwordHash, error) {
	h := &passwordHash{kind: kind, iter: iter}
	var err error
	if h.salt, err = base64.StdEncoding.DecodeString(salt); err != nil || len(h.salt) == 0 {
		return nil, errors.New("malformed mosquitto hash: bad base64 salt")
	}
	if h.sum, err = base64.StdEncoding.DecodeString(sum); err != nil || len(h.sum) != sha512.Size {
		return nil, errors.New("malformed mosquitto hash: want a base64 SHA-512 digest")
	}
	return h, nil
}

// parseArgon2id parses a PHC string $argon2id$v=19$m=65536,t=3,p=4$salt$hash
// with unpadded base64 salt and hash.
func parseArgon2id(s string) (*passwordHash, error) {
	bad := func(why string) (*passwordHash, error) {
		return nil, errors.New("malformed argon2id hash: " + why)
	}
	f := strings.Split(s, "$") // "", "argon2id", "v=19", params, salt, sum
	if len(f) != 6 {
		return bad("want $argon2id$v=19$m=..,t=..,p=..$salt$hash")
	}
	if f[2] != "v=19" {
		return bad("want version v=19")
	}
	h := &passwordHash{kind: argon2idHash}
	var m, t, p uint64
	params := strings.Split(f[3], ",")
	if len(params) != 3 {
		return bad("want parameters m=..,t=..,p=..")
	}
	for i, dst := range []*uint64{&m, &t, &p} {
		v, ok := strings.CutPrefix(params[i], "mtp"[i:i+1]+"=")
		n, err := strconv.ParseUint(v, 10, 32)
		if !ok || err != nil {
			return bad("want parameters m=..,t=..,p=..")
		}
		*dst = n
	}
	if m < 8*p || m > maxArgonMemory || t == 0 || t > maxArgonTime || p == 0 || p > 255 {
		return bad(fmt.Sprintf("parameters out of range (m<=%d KiB, t<=%d, p<=255)", maxArgonMemory, maxArgonTime))
	}
	h.memory, h.iter, h.threads = uint32(m), uint32(t), uint8(p)
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(f[4]); err != nil || len(h.salt) < 8 {
		return bad("bad base64 salt")
	}
	if h.sum, err = base64.RawStdEncoding.DecodeString(f[5]); err != nil || len(h.sum) < 4 {
		return bad("bad base64 hash")
	}
	return h, nil
}

// verify reports whether password matches h, comparing in constant time.
func (h *passwordHash) verify(password []byte) bool {
	var sum []byte
	switch h.kind {
	case bcryptHash:
		return bcrypt.CompareHashAndPassword(h.bcrypt, password) == nil
	case argon2idHash:
		sum = argon2idKey(password, h.salt, h.iter, h.memory, h.threads, uint32(len(h.sum)))
	case sha512Hash:
		d := sha512.New()
		d.Write(password)
		d.Write(h.salt)
		sum = d.Sum(nil)
	case pbkdf2Hash:
		var err error
		if sum, err = pbkdf2.Key(sha512.New, string(password), h.salt, int(h.iter), len(h.sum)); err != nil {
			return false
		}
	default:
		return false
	}
	return subtle.ConstantTimeCompare(sum, h.sum) == 1
}

// dummy returns a hash with h's parameters and a random salt and digest,
// which no password matches in practice.
func (h *passwordHash) dummy() (*passwordHash, error) {
	d := *h
	if h.kind == bcryptHash {
		cost, _ := bcrypt.Cost(h.bcrypt)
		var err error
		if d.bcrypt, err = bcrypt.GenerateFromPassword([]byte(rand.Text()), cost); err != nil {
			return nil, err
		}
		return &d, nil
	}
	d.salt = make([]byte, len(h.salt))
	d.sum = make([]byte, len(h.sum))
	rand.Read(d.salt)
	rand.Read(d.sum)
	return &d, nil
}
