package auth

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// phc formats an argon2id hash as a PHC string.
func phc(password string, m, t uint32, p uint8) string {
	salt := make([]byte, 16)
	rand.Read(salt)
	sum := argon2.IDKey([]byte(password), salt, t, m, p, 32)
	b64 := base64.RawStdEncoding.EncodeToString
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, b64(salt), b64(sum))
}

func TestArgon2id(t *testing.T) {
	h := phc("correct horse", 64, 2, 1)
	pw, err := ParsePasswordFile([]byte("u:" + h + ":tier=gold\n"))
	if err != nil {
		t.Fatal(err)
	}
	checkVerify(t, pw, "u", "correct horse", true, attrs("tier", "gold"))
	checkVerify(t, pw, "u", "correct horse battery", false, nil)
	checkVerify(t, pw, "v", "correct horse", false, nil)
	if d := pw.dummy; d.kind != argon2idHash || d.memory != 64 || d.iter != 2 || d.threads != 1 {
		t.Errorf("dummy: got %+v, want argon2id m=64,t=2,p=1", d)
	}
}

func TestArgon2idErrors(t *testing.T) {
	good := phc("x", 64, 1, 1)
	f := strings.Split(good, "$")
	tests := []struct{ hash, want string }{
		{strings.Replace(good, "v=19", "v=16", 1), "want version v=19"},
		{strings.Replace(good, "m=64,t=1,p=1", "t=1,m=64,p=1", 1), "want parameters m=..,t=..,p=.."},
		{strings.Replace(good, "m=64", "m=4194304", 1), "parameters out of range"},
		{strings.Replace(good, "t=1", "t=0", 1), "parameters out of range"},
		{strings.Join(f[:5], "$"), "want $argon2id$v=19$m=..,t=..,p=..$salt$hash"},
		{strings.Replace(good, f[4], "!!", 1), "bad base64 salt"},
	}
	for _, tt := range tests {
		_, err := ParsePasswordFile([]byte("# x\nu:" + tt.hash))
		want := "auth: password file line 2: malformed argon2id hash: " + tt.want
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("hash %q: got %v, want %q", tt.hash, err, want)
		}
	}
}

// TestArgon2idReference checks the known answer of the reference C
// implementation: echo -n password | argon2 somesalt -id -t 2 -m 16 -p 4 -l 32 -e
func TestArgon2idReference(t *testing.T) {
	const ref = "$argon2id$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$GpZ3sK/oH9p7VIiV56G/64Zo/8GaUw434IimaPqxwCo"
	pw, err := ParsePasswordFile([]byte("u:" + ref))
	if err != nil {
		t.Fatal(err)
	}
	checkVerify(t, pw, "u", "password", true, nil)
	checkVerify(t, pw, "u", "passwore", false, nil)
}
