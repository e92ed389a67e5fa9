// Package loginid parses and normalises login IDs (email addresses, phone
// numbers, usernames) so that each person's ID has one canonical form: the
// form whose uniqueness the write side enforces.
package loginid

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/unicode/norm"
)

// Type is a kind of login ID.
type Type string

// Login ID types.
const (
	Email    Type = "email"
	Phone    Type = "phone"
	Username Type = "username"
)

// Errors, each with its own API code.
var (
	ErrInvalidEmail    = errors.New("not a valid email address")
	ErrInvalidPhone    = errors.New("not a valid phone number in international form (+<country code><number>)")
	ErrInvalidUsername = errors.New("a username has 3 to 32 characters: lower-case letters, digits, '.', '_' or '-', starting with a letter or digit")
	ErrReservedName    = errors.New("this username is reserved")
	ErrTypeDisabled    = errors.New("this kind of login ID is not enabled")
	ErrUnknownType     = errors.New("unknown login ID type")
)

// ID is a normalised login ID.
type ID struct {
	Type  Type
	Value string
}

// Key is the ID's uniqueness key: a hash of type and value, safe in a subject.
func (id ID) Key() string {
	sum := sha256.Sum256([]byte(string(id.Type) + ":" + id.Value))
	return hex.EncodeToString(sum[:])
}

// Parse normalises raw as a login ID of type t. An empty t guesses: a value
// with '@' is an email, one starting with '+' a phone number, anything else a
// username.
func Parse(t Type, raw string) (ID, error) {
	raw = strings.TrimSpace(raw)
	if t == "" {
		switch {
		case strings.Contains(raw, "@"):
			t = Email
		case strings.HasPrefix(raw, "+"):
			t = Phone
		default:
			t = Username
		}
	}
	switch t {
	case Email:
		v, err := normaliseEmail(raw)
		return ID{Email, v}, err
	case Phone:
		v, err := normalisePhone(raw)
		return ID{Phone, v}, err
	case Username:
		v, err := normaliseUsername(raw)
		return ID{Username, v}, err
	}
	return ID{}, fmt.Errorf("%w: %q", ErrUnknownType, t)
}

// normaliseEmail NFKC-normalises and lower-cases the whole address, then
// validates the result: uniqueness is case-insensitive (mail providers treat
// local parts that way in practice, and two accounts differing only in case
// help no one), and validating the normalised form keeps Parse idempotent.
func normaliseEmail(raw string) (string, error) {
	if raw == "" || len(raw) > 254 || !utf8.ValidString(raw) {
		return "", ErrInvalidEmail
	}
	v := norm.NFKC.String(strings.ToLower(norm.NFKC.String(raw)))
	if len(v) > 254 {
		return "", ErrInvalidEmail
	}
	for _, r := range v {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return "", ErrInvalidEmail
		}
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || addr.Name != "" {
		return "", ErrInvalidEmail
	}
	at := strings.LastIndexByte(v, '@')
	local, domain := v[:at], v[at+1:]
	if local == "" || domain == "" || !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") ||
		strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", ErrInvalidEmail
	}
	return v, nil
}

// normalisePhone accepts an international number and returns E.164.
func normalisePhone(raw string) (string, error) {
	if !strings.HasPrefix(raw, "+") || len(raw) > 32 {
		return "", ErrInvalidPhone
	}
	num, err := phonenumbers.Parse(raw, "")
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", ErrInvalidPhone
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

var reserved = map[string]bool{
	"admin": true, "administrator": true, "root": true, "system": true, "support": true, "help": true,
	"security": true, "idstream": true, "anonymous": true, "guest": true, "null": true, "undefined": true,
	"me": true, "self": true, "api": true, "www": true, "mail": true, "postmaster": true, "abuse": true,
	"webmaster": true, "hostmaster": true, "noreply": true, "no-reply": true, "staff": true, "moderator": true,
	"official": true, "operator": true, "portal": true, "login": true, "signup": true, "signin": true, "logout": true,
}

func normaliseUsername(raw string) (string, error) {
	v := strings.ToLower(raw)
	if len(v) < 3 || len(v) > 32 {
		return "", ErrInvalidUsername
	}
	for i, r := range v {
		ok := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || (i > 0 && (r == '.' || r == '_' || r == '-'))
		if !ok {
			return "", ErrInvalidUsername
		}
	}
	if reserved[v] {
		return "", ErrReservedName
	}
	return v, nil
}
