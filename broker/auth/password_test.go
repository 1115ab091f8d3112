package auth

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"edgebroker/broker/testenv"
)

// mosquittoPasswd runs the real mosquitto_passwd with args, skipping the
// test if it is not installed (failing instead under CI).
func mosquittoPasswd(t *testing.T, args ...string) {
	t.Helper()
	bin := testenv.NeedTool(t, "mosquitto_passwd")
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd %q: %v\n%s", args, err, out)
	}
}

func parseFile(t *testing.T, file string) *Passwords {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := ParsePasswordFile(data)
	if err != nil {
		t.Fatalf("ParsePasswordFile:\n%s\n%v", data, err)
	}
	return pw
}

func checkVerify(t *testing.T, pw *Passwords, user, pass string, want bool, wantAttrs map[string]string) {
	t.Helper()
	attrs, ok := pw.Verify(user, []byte(pass))
	if ok != want || !reflect.DeepEqual(attrs, wantAttrs) {
		t.Errorf("Verify(%q, %q): got %v, %v; want %v, %v", user, pass, attrs, ok, wantAttrs, want)
	}
}

func TestMosquittoPasswd(t *testing.T) {
	for _, tt := range []struct{ alg, prefix string }{
		{"sha512-pbkdf2", "$7$"},
		{"sha512", "$6$"},
	} {
		t.Run(tt.alg, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "passwd")
			mosquittoPasswd(t, "-H", tt.alg, "-c", "-b", file, "alice", "s3cret")
			mosquittoPasswd(t, "-H", tt.alg, "-b", file, "bob", "pässwörd:with colon")
			data, _ := os.ReadFile(file)
			if !strings.Contains(string(data), "alice:"+tt.prefix) {
				t.Fatalf("mosquitto_passwd wrote %q, want %s hashes", data, tt.prefix)
			}
			pw := parseFile(t, file)
			checkVerify(t, pw, "alice", "s3cret", true, nil)
			checkVerify(t, pw, "alice", "s3cret ", false, nil)
			checkVerify(t, pw, "alice", "", false, nil)
			checkVerify(t, pw, "bob", "pässwörd:with colon", true, nil)
			checkVerify(t, pw, "bob", "s3cret", false, nil)
			checkVerify(t, pw, "carol", "s3cret", false, nil)
			if got, want := pw.Len(), 2; got != want {
				t.Errorf("Len: got %d, want %d", got, want)
			}
		})
	}
}

// TestMosquittoPasswdKeepsAttributes checks the documented claim that the
// attribute field survives mosquitto_passwd rewriting the file for another
// user.
func TestMosquittoPasswdKeepsAttributes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "passwd")
	mosquittoPasswd(t, "-c", "-b", file, "alice", "a")
	data, _ := os.ReadFile(file)
	data = []byte(strings.TrimRight(string(data), "\n") + ":building=17,organization=contoso,note=a%2Cb\n")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mosquittoPasswd(t, "-b", file, "bob", "b")
	pw := parseFile(t, file)
	checkVerify(t, pw, "alice", "a", true, attrs("building", "17", "organization", "contoso", "note", "a,b"))
	checkVerify(t, pw, "bob", "b", true, nil)
}

func TestBcrypt(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("hunter2"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	h := string(hash)
	file := "# bcrypt users\r\n\r\n" +
		"a:" + h + "\r\n" +
		"b:" + strings.Replace(h, "$2a$", "$2b$", 1) + ":role=admin\n" +
		"  # indented comment\n" +
		"y:" + strings.Replace(h, "$2a$", "$2y$", 1) + ":\n"
	pw, err := ParsePasswordFile([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b", "y"} {
		var want map[string]string
		if u == "b" {
			want = attrs("role", "admin")
		}
		checkVerify(t, pw, u, "hunter2", true, want)
		checkVerify(t, pw, u, "hunter3", false, nil)
	}
	// An unknown user is checked against a dummy bcrypt hash of the same cost.
	if pw.dummy == nil || pw.dummy.kind != bcryptHash {
		t.Fatalf("dummy: got %+v, want a bcrypt hash", pw.dummy)
	}
	if cost, _ := bcrypt.Cost(pw.dummy.bcrypt); cost != bcrypt.MinCost {
		t.Errorf("dummy cost: got %d, want %d", cost, bcrypt.MinCost)
	}
	checkVerify(t, pw, "nobody", "hunter2", false, nil)
}

func TestVerifyReturnsCopy(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("p"), bcrypt.MinCost)
	pw, err := ParsePasswordFile([]byte("u:" + string(hash) + ":k=v\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := pw.Verify("u", []byte("p"))
	a["k"] = "changed"
	checkVerify(t, pw, "u", "p", true, attrs("k", "v"))
}

func TestDummyMatchesFirstEntry(t *testing.T) {
	const sha = "$6$GiPhJ73a/CmjV8q7$OesqMyN0Zmq3xmhahXYBN5wekOhbbPz2nJ2l8rCnTeinP8L36DWmE1ukc0Nssob1bgc88pjpjrdwoUnzKq1Stw=="
	const pbkdf = "$7$101$YqmjeASKM1FvwSBZ$8nGouoHYtT/lRJ4TvSycfbdiQ9SsADzlSy2BTj+EbBIMwsLFB4P8QKUq4Khv9gsKr3jPbi80TMERRBzJKcmG3g=="
	pw, err := ParsePasswordFile([]byte("alice:" + pbkdf + "\nbob:" + sha + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	d, first := pw.dummy, pw.users["alice"].hash
	if d.kind != pbkdf2Hash || d.iter != first.iter || len(d.salt) != len(first.salt) || string(d.sum) == string(first.sum) {
		t.Errorf("dummy: got %+v, want parameters of %+v with another digest", d, first)
	}
	// Hashes from mosquitto_passwd 2.0.11, kept for machines without it.
	checkVerify(t, pw, "alice", "secret", true, nil)
	checkVerify(t, pw, "bob", "pw2", true, nil)
	checkVerify(t, pw, "bob", "pw3", false, nil)
}

func TestParsePasswordFileErrors(t *testing.T) {
	const sha = "$6$GiPhJ73a/CmjV8q7$OesqMyN0Zmq3xmhahXYBN5wekOhbbPz2nJ2l8rCnTeinP8L36DWmE1ukc0Nssob1bgc88pjpjrdwoUnzKq1Stw=="
	tests := []struct{ file, want string }{
		{"# c\nalice\n", "line 2: want \"username:hash\""},
		{":" + sha, "line 1: empty username"},
		{"alice:plaintext", "line 1: unknown hash format"},
		{"alice:" + sha + "\n\nalice:" + sha, `line 3: duplicate user "alice"`},
		{"a:$6$c2FsdA==$AAAA", "line 1: malformed mosquitto hash: want a base64 SHA-512 digest"},
		{"a:$6$!!$" + sha[20:], "line 1: malformed mosquitto hash: bad base64 salt"},
		{"a:$6$x$y$z", "line 1: malformed $6$ hash"},
		{"a:$7$0$c2FsdA==$AAAA", `line 1: malformed $7$ hash: iterations "0" not in 1..10000000`},
		{"a:$7$abc$c2FsdA==$AAAA", `line 1: malformed $7$ hash: iterations "abc"`},
		{"a:$7$101$c2FsdA==", "line 1: malformed $7$ hash: want $7$iterations$salt$hash"},
		{"a:$2a$10$short", "line 1: malformed bcrypt hash"},
		{"a:$1$md5$crypt", "line 1: unknown hash format"},
		{"a:" + sha + ":building", `line 1: attribute "building": want name=value`},
		{"a:" + sha + ":=x", `line 1: attribute "=x": want name=value`},
		{"a:" + sha + ":a b=x", `line 1: attribute "a b=x": want name=value`},
		{"a:" + sha + ":k=1,k=2", `line 1: attribute "k" given twice`},
		{"a:" + sha + ":k=%zz", `line 1: attribute "k": bad percent-encoding in value`},
	}
	for _, tt := range tests {
		_, err := ParsePasswordFile([]byte(tt.file))
		if err == nil || !strings.HasPrefix(err.Error(), "auth: password file "+tt.want) {
			t.Errorf("ParsePasswordFile(%q): got %v, want prefix %q", tt.file, err, "auth: password file "+tt.want)
		}
	}
}

func TestEmptyPasswordFile(t *testing.T) {
	pw, err := ParsePasswordFile([]byte("# nobody yet\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	checkVerify(t, pw, "alice", "x", false, nil)
	var nilPW *Passwords
	checkVerify(t, nilPW, "alice", "x", false, nil)
}

func TestPasswordFileLongLine(t *testing.T) {
	_, err := ParsePasswordFile([]byte("# ok\n" + strings.Repeat("x", 70<<10) + "\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "auth: password file line 2: ") {
		t.Errorf("got %v, want an error naming line 2", err)
	}
}

// TestUnknownUserTiming checks, loosely, that an unknown username costs a
// hash computation like a known one, so timing does not reveal which users
// exist. Without the dummy hash the ratio would be about 1:10000.
func TestUnknownUserTiming(t *testing.T) {
	file := "alice:$7$4000$YqmjeASKM1FvwSBZ$8nGouoHYtT/lRJ4TvSycfbdiQ9SsADzlSy2BTj+EbBIMwsLFB4P8QKUq4Khv9gsKr3jPbi80TMERRBzJKcmG3g==\n"
	pw, err := ParsePasswordFile([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	fastest := func(user string) time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			pw.Verify(user, []byte("guess"))
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := fastest("alice"), fastest("mallory")
	if unknown < known/3 {
		t.Errorf("unknown user took %v, known user %v: existence leaks by timing", unknown, known)
	}
}
