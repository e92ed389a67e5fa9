// Package password hashes passwords with argon2id and checks them against
// a policy. Hashes are PHC strings that record their parameters, so a change
// of parameters is noticed (and the password rehashed) at the next sign-in.
package password

import (
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/text/unicode/norm"
)

// Params are argon2id's cost parameters.
type Params struct {
	MemoryKiB   uint32 `yaml:"memory_kib"`
	Iterations  uint32 `yaml:"iterations"`
	Parallelism uint8  `yaml:"parallelism"`
}

// DefaultParams are OWASP's recommended minimum for argon2id (19 MiB, two
// passes, one lane): this service hashes many passwords at once, each on one
// core, and a hash must stay well under a request's time budget. Raise them
// in configuration where hardware allows; existing hashes are upgraded at
// the next sign-in.
var DefaultParams = Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Errors of the policy and of stored hashes.
var (
	ErrTooShort   = errors.New("password is too short")
	ErrTooLong    = errors.New("password is too long")
	ErrTooCommon  = errors.New("password is too common")
	ErrBadHash    = errors.New("password: unreadable stored hash")
	ErrNotUnicode = errors.New("password is not valid text")
	// ErrControlCharacter: control and format characters (NUL, tab, zero-
	// width space, bidi marks…) are invisible and typed differently from
	// device to device.
	ErrControlCharacter = errors.New("password has an invisible control or format character")
	ErrOnlyWhitespace   = errors.New("password is only spaces")
)

// Policy says which passwords are accepted.
type Policy struct {
	MinLength int `yaml:"min_length"`
	MaxLength int `yaml:"max_length"`
}

// DefaultPolicy: at least 8 characters, at most 256, not a common password.
var DefaultPolicy = Policy{MinLength: 8, MaxLength: 256}

//go:embed common.txt
var commonList string

var common = func() map[string]bool {
	m := map[string]bool{}
	for _, l := range strings.Split(commonList, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			m[strings.ToLower(l)] = true
		}
	}
	return m
}()

// Normalize is the form of a password that is checked, hashed and
// verified: Unicode NFKC (NIST SP 800-63B 5.1.1.2), so that the same
// password typed on keyboards and input methods that produce different code
// points (composed or decomposed accents, full-width letters, a no-break
// space) is the same password. Hash and Verify apply it themselves.
func Normalize(pw string) string { return norm.NFKC.String(pw) }

// Length is the number of characters a person sees in an already
// normalised password: runes, not counting combining marks (which belong to
// the character before them). It approximates grapheme clusters.
func Length(normalized string) int {
	n := 0
	for _, r := range normalized {
		if !unicode.Is(unicode.M, r) {
			n++
		}
	}
	return n
}

// Check applies the policy to the normalised password. The error never
// contains the password.
func (p Policy) Check(pw string) error {
	if !utf8.ValidString(pw) {
		return ErrNotUnicode
	}
	v := Normalize(pw)
	allSpace := true
	for _, r := range v {
		if unicode.In(r, unicode.Cc, unicode.Cf) {
			return ErrControlCharacter
		}
		allSpace = allSpace && unicode.IsSpace(r)
	}
	n := Length(v)
	switch {
	case v != "" && allSpace:
		return ErrOnlyWhitespace
	case n < p.MinLength:
		return fmt.Errorf("%w: at least %d characters", ErrTooShort, p.MinLength)
	// Runes bound the work too: combining marks are not counted as
	// characters, but a thousand of them on one letter are no password.
	case n > p.MaxLength || utf8.RuneCountInString(v) > 4*p.MaxLength:
		return fmt.Errorf("%w: at most %d characters", ErrTooLong, p.MaxLength)
	case common[strings.ToLower(v)]:
		return ErrTooCommon
	}
	return nil
}

// Hash returns the PHC string of pw's normalised form.
func Hash(random io.Reader, pw string, p Params) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := io.ReadFull(random, salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(Normalize(pw)), salt, p.Iterations, p.MemoryKiB, p.Parallelism, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

func parse(hash string) (Params, []byte, []byte, error) {
	var p Params
	var version int
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, ErrBadHash
	}
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, ErrBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil ||
		p.MemoryKiB == 0 || p.Iterations == 0 || p.Parallelism == 0 || p.MemoryKiB > 4<<20 || p.Iterations > 64 {
		return p, nil, nil, ErrBadHash
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return p, nil, nil, ErrBadHash
	}
	return p, salt, key, nil
}

// Verify reports whether pw matches the hash, comparing in constant time,
// and whether the hash should be replaced: because want differs from the
// parameters it was made with, or because it was made from the password as
// typed rather than its normalised form (hashes made before passwords were
// normalised), which is tried when the normalised form does not match and
// differs from it. The caller stores Hash(pw) when rehash is true.
func Verify(hash, pw string, want Params) (ok, rehash bool, err error) {
	p, salt, key, err := parse(hash)
	if err != nil {
		return false, false, err
	}
	match := func(s string) bool {
		got := argon2.IDKey([]byte(s), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(key)))
		return subtle.ConstantTimeCompare(got, key) == 1
	}
	v := Normalize(pw)
	if match(v) {
		return true, p != want, nil
	}
	if v != pw && match(pw) {
		return true, true, nil
	}
	return false, false, nil
}
