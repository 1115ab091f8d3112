package bundle

import (
	"crypto/ed25519"
	"slices"
	"strings"
	"testing"
)

// TestParsePublicKeys reads key files as the -trust flag gets them: PEM
// blocks (text between them ignored), or base64 one-liners with blank lines
// and # comments; a bad line is named by its number, and a file without a
// key is an error.
func TestParsePublicKeys(t *testing.T) {
	k1, k2 := pub(testKey(1)), pub(testKey(2))
	good := []struct {
		name, data string
		want       []ed25519.PublicKey
	}{
		{"one PEM block", string(MarshalPublicKey(k1)), []ed25519.PublicKey{k1}},
		{"two PEM blocks with text around", "site keys\n" + string(MarshalPublicKey(k1)) + "between\n" + string(MarshalPublicKey(k2)) + "after\n", []ed25519.PublicKey{k1, k2}},
		{"base64 lines", "# site\n\n  " + PublicKeyString(k2) + "  \n# spare\n" + PublicKeyString(k1), []ed25519.PublicKey{k2, k1}},
		{"CRLF lines", PublicKeyString(k1) + "\r\n" + PublicKeyString(k2) + "\r\n", []ed25519.PublicKey{k1, k2}},
	}
	for _, tt := range good {
		got, err := ParsePublicKeys([]byte(tt.data))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !slices.EqualFunc(got, tt.want, func(a, b ed25519.PublicKey) bool { return a.Equal(b) }) {
			t.Errorf("%s: got keys %v, want %v", tt.name, TrustSet(got).IDs(), TrustSet(tt.want).IDs())
		}
	}

	priv, err := MarshalPrivateKey(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		name, data, want string
	}{
		{"empty", "", "no public key in the file"},
		{"only comments", "# nothing\n\n", "no public key in the file"},
		{"bad second line", PublicKeyString(k1) + "\n# ok\nnot base64!\n", "line 3: bundle: public key: neither PEM nor base64"},
		{"short key", "AAAA\n", "line 1: bundle: public key: 3 bytes, want 32"},
		{"private key PEM", string(MarshalPublicKey(k1)) + string(priv), "PEM block is PRIVATE KEY, want PUBLIC KEY"},
		{"PEM marker without a block", "-----BEGIN nothing", "no public key in the file"},
	}
	for _, tt := range bad {
		keys, err := ParsePublicKeys([]byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %d keys, error %v; want error containing %q", tt.name, len(keys), err, tt.want)
		}
	}
}
