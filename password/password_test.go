package password_test

import (
	"crypto/rand"
	"errors"
	"strings"
	"testing"

	"github.com/idstream/idstream/password"
)

var cheap = password.Params{MemoryKiB: 1024, Iterations: 1, Parallelism: 1}

func TestHashAndVerify(t *testing.T) {
	h, err := password.Hash(rand.Reader, "correct horse battery", cheap)
	if err != nil || !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") || strings.Contains(h, "correct") {
		t.Fatalf("hash %q %v", h, err)
	}
	if ok, rehash, err := password.Verify(h, "correct horse battery", cheap); !ok || rehash || err != nil {
		t.Fatalf("verify: %v %v %v", ok, rehash, err)
	}
	if ok, _, _ := password.Verify(h, "correct horse batterY", cheap); ok {
		t.Fatal("wrong password verified")
	}
	// Changed parameters: the next successful sign-in rehashes.
	if ok, rehash, _ := password.Verify(h, "correct horse battery", password.DefaultParams); !ok || !rehash {
		t.Fatal("parameter change not noticed")
	}
	h2, _ := password.Hash(rand.Reader, "correct horse battery", cheap)
	if h2 == h {
		t.Fatal("same salt twice")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=x$AA$AA", "plain"} {
		if _, _, err := password.Verify(bad, "x", cheap); !errors.Is(err, password.ErrBadHash) {
			t.Errorf("bad hash %q: %v", bad, err)
		}
	}
}

func TestPolicy(t *testing.T) {
	p := password.DefaultPolicy
	for pw, want := range map[string]error{
		"xk3!":                    password.ErrTooShort,
		"Password1":               password.ErrTooCommon,
		"QWERTYUIOP":              password.ErrTooCommon,
		strings.Repeat("x", 257):  password.ErrTooLong,
		"a\xffbcdefghij":          password.ErrNotUnicode,
		"long enough and unusual": nil,
		"ünïcødé-ok":              nil,
	} {
		if err := p.Check(pw); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", pw, err, want)
		}
		if err := p.Check(pw); err != nil && strings.Contains(err.Error(), pw) {
			t.Errorf("the error repeats the password")
		}
	}
}

// BenchmarkArgon2idDefault is the cost of one hash with the default
// parameters (report it per machine).
func BenchmarkArgon2idDefault(b *testing.B) {
	for b.Loop() {
		if _, err := password.Hash(rand.Reader, "correct horse battery", password.DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}
