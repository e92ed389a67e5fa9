package password_test

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"

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

// TestPolicyNormalises: the policy checks what a person sees, after NFKC
// (NIST SP 800-63B 5.1.1.2): invisible characters and whitespace-only or
// mark-only passwords are refused, and full-width letters are the letters.
func TestPolicyNormalises(t *testing.T) {
	p := password.DefaultPolicy
	for _, tc := range []struct {
		name, pw string
		want     error
	}{
		{"eight spaces", "        ", password.ErrOnlyWhitespace},
		{"eight ideographic spaces", strings.Repeat("\u3000", 8), password.ErrOnlyWhitespace},
		{"eight no-break spaces", strings.Repeat("\u00a0", 8), password.ErrOnlyWhitespace},
		{"eight zero-width spaces", strings.Repeat("\u200b", 8), password.ErrControlCharacter},
		{"a zero-width joiner inside", "violet\u200dtangerine", password.ErrControlCharacter},
		{"a bidi override inside", "violet\u202etangerine", password.ErrControlCharacter},
		{"eight combining marks", strings.Repeat("\u0301", 8), password.ErrTooShort},
		{"one letter and seven marks", "a" + strings.Repeat("\u0308", 7), password.ErrTooShort},
		{"eight NUL bytes", strings.Repeat("\x00", 8), password.ErrControlCharacter},
		{"a tab inside", "violet\ttangerine", password.ErrControlCharacter},
		{"a newline inside", "violet\ntangerine", password.ErrControlCharacter},
		{"full-width password", "ｐａｓｓｗｏｒｄ", password.ErrTooCommon},
		{"full-width password123", "ｐａｓｓｗｏｒｄ１２３", password.ErrTooCommon},
		{"thousands of marks on short text", "abcdefgh" + strings.Repeat("\u0301", 1100), password.ErrTooLong},
		// Accepted: spaces among other characters, composed and decomposed
		// accents (each counted once), passphrases in any script.
		{"spaces inside", "  violet tangerine  ", nil},
		{"decomposed accents", "e\u0301le\u0301ve\u0301", password.ErrTooShort}, // 8 runes, 5 letters
		{"decomposed accents, long enough", "e\u0301le\u0301phant", nil},
		{"Devanagari", "नमस्ते दुनिया", nil},
		{"emoji", "🦊🦊🦊🦊🦊🦊🦊🦊", nil},
	} {
		if err := p.Check(tc.pw); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestNormalizeLength(t *testing.T) {
	for pw, want := range map[string]int{"éléphant": 8, "e\u0301le\u0301phant": 8, "ｐａｓｓ": 4, "नमस्ते": 4, "a\u0308\u0308\u0308": 1} {
		if got := password.Length(password.Normalize(pw)); got != want {
			t.Errorf("Length(%q) = %d, want %d", pw, got, want)
		}
	}
	if password.Normalize("ｐａｓｓｗｏｒｄ１２３") != "password123" || password.Normalize("e\u0301") != "é" {
		t.Fatal("not NFKC")
	}
}

// TestHashAndVerifyNormalise: a password verifies however it was typed (the
// hash is of the NFKC form), and a hash made from the raw form before
// passwords were normalised still verifies, asking for a rehash.
func TestHashAndVerifyNormalise(t *testing.T) {
	h, err := password.Hash(rand.Reader, "ｃｏｒｒｅｃｔ ｈｏｒｓｅ", cheap)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"correct horse", "ｃｏｒｒｅｃｔ ｈｏｒｓｅ", "correct\u00a0horse", "ｃｏｒｒｅｃｔ\u3000ｈｏｒｓｅ"} {
		if ok, rehash, err := password.Verify(h, pw, cheap); !ok || rehash || err != nil {
			t.Errorf("%q: %v %v %v", pw, ok, rehash, err)
		}
	}
	if ok, _, _ := password.Verify(h, "correct horsf", cheap); ok {
		t.Fatal("wrong password verified")
	}

	// A legacy hash of the raw, unnormalised password.
	raw := "cafe\u0301 ｌａｔｔｅ"
	legacy := legacyHash(t, raw)
	ok, rehash, err := password.Verify(legacy, raw, cheap)
	if !ok || !rehash || err != nil {
		t.Fatalf("legacy hash: %v %v %v, want ok and rehash", ok, rehash, err)
	}
	fresh, _ := password.Hash(rand.Reader, raw, cheap)
	for _, pw := range []string{raw, "café latte"} {
		if ok, rehash, _ := password.Verify(fresh, pw, cheap); !ok || rehash {
			t.Errorf("rehashed, %q: %v %v", pw, ok, rehash)
		}
	}
	// Only the raw form itself verifies against a legacy hash.
	if ok, _, _ := password.Verify(legacy, "café latte", cheap); ok {
		t.Error("a legacy hash verified another spelling")
	}
	if ok, rehash, _ := password.Verify(legacyHash(t, "plain ascii"), "plain ascii", cheap); !ok || rehash {
		t.Errorf("an ASCII password's hash is already normalised: %v %v", ok, rehash)
	}
}

// legacyHash hashes pw as Hash did before normalisation: argon2id of the
// bytes as typed.
func legacyHash(t *testing.T, pw string) string {
	t.Helper()
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	key := argon2.IDKey([]byte(pw), salt, cheap.Iterations, cheap.MemoryKiB, cheap.Parallelism, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", cheap.MemoryKiB, cheap.Iterations, cheap.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key))
}
