package mqttapi

import (
	"errors"
	"strconv"
)

// errSyntax is any malformed request payload.
var errSyntax = errors.New("syntax error")

// parseArray parses a RESP array of bulk strings (§3). The returned
// slices alias b.
func parseArray(b []byte) ([][]byte, error) {
	n, rest, err := parseHeader(b, '*')
	if err != nil || n <= 0 {
		return nil, errSyntax
	}
	if n > len(rest)/4+1 { // each bulk string needs at least "$0\r\n\r\n"
		return nil, errSyntax
	}
	args := make([][]byte, 0, n)
	for range n {
		var l int
		if l, rest, err = parseHeader(rest, '$'); err != nil || l < 0 || len(rest) < l+2 {
			return nil, errSyntax
		}
		if rest[l] != '\r' || rest[l+1] != '\n' {
			return nil, errSyntax
		}
		args = append(args, rest[:l:l])
		rest = rest[l+2:]
	}
	if len(rest) != 0 {
		return nil, errSyntax
	}
	return args, nil
}

// parseHeader parses "<kind><decimal>\r\n".
func parseHeader(b []byte, kind byte) (int, []byte, error) {
	if len(b) < 4 || b[0] != kind {
		return 0, nil, errSyntax
	}
	for i := 1; i+1 < len(b) && i < 22; i++ {
		if b[i] == '\r' {
			if b[i+1] != '\n' {
				break
			}
			n, err := strconv.Atoi(string(b[1:i]))
			if err != nil {
				break
			}
			return n, b[i+2:], nil
		}
	}
	return 0, nil, errSyntax
}

// Response payloads (§4).
var (
	respOK       = []byte("+OK\r\n")
	respSkipped  = []byte(":-1\r\n")
	respNil      = []byte("$-1\r\n")
	respZero     = []byte(":0\r\n")
	notifyDelete = []byte("*2\r\n$6\r\nNOTIFY\r\n$6\r\nDELETE\r\n")
)

func appendInt(dst []byte, n int) []byte {
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(n), 10)
	return append(dst, '\r', '\n')
}

func appendBulk(dst, v []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len(v)), 10)
	dst = append(dst, '\r', '\n')
	dst = append(dst, v...)
	return append(dst, '\r', '\n')
}

func errPayload(text string) []byte {
	return []byte("-ERR " + text + "\r\n")
}

// notifySet is the SET notification payload (§6).
func notifySet(v []byte) []byte {
	b := append([]byte(nil), "*4\r\n$6\r\nNOTIFY\r\n$3\r\nSET\r\n$5\r\nVALUE\r\n"...)
	return appendBulk(b, v)
}
