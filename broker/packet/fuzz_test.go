package packet

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// FuzzDecode decodes arbitrary bytes as a packet of every protocol
// version. It must never panic, and whatever decodes must re-encode to
// bytes that decode to an equal value, with Size matching Append.
func FuzzDecode(f *testing.F) {
	for _, tt := range packetTests {
		f.Add(tt.v, tt.raw)
	}
	f.Fuzz(func(t *testing.T, v byte, raw []byte) {
		v = V31 + v%3
		pkt, err := decodeAny(v, raw)
		if err != nil {
			return
		}
		enc, err := appendAny(nil, v, pkt)
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeAny(v, enc)
		if err != nil {
			t.Fatalf("re-decode of % x (from % x): %v", enc, raw, err)
		}
		if diff := cmp.Diff(pkt, again, cmpOpts); diff != "" {
			t.Fatalf("round trip mismatch (-first +second):\n%s", diff)
		}
		enc2, err := appendAny(nil, v, again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n% x\n% x", enc, enc2)
		}
	})
}
