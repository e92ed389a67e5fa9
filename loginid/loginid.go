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
	"golang.org/x/net/idna"
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

// normaliseEmail NFKC-normalises and lower-cases the whole address, maps
// a non-ASCII domain as mail to it is routed (IDNA, RFC 5891 lookup: the
// domain codes are delivered to is the one whose uniqueness is enforced;
// one that mail cannot be routed to is refused), then
// validates the result: uniqueness is case-insensitive (mail providers treat
// local parts that way in practice, and two accounts differing only in case
// help no one), and validating the normalised form keeps Parse idempotent.
// Characters that show as nothing (format characters such as a zero-width
// space or a soft hyphen, variation selectors, other default-ignorable code
// points) are refused anywhere: an address written with them looks like
// another person's.
func normaliseEmail(raw string) (string, error) {
	if raw == "" || len(raw) > 254 || !utf8.ValidString(raw) {
		return "", ErrInvalidEmail
	}
	v := norm.NFKC.String(strings.ToLower(norm.NFKC.String(raw)))
	for _, r := range v {
		if unicode.IsSpace(r) || unicode.IsControl(r) || invisible(r) {
			return "", ErrInvalidEmail
		}
	}
	at := strings.LastIndexByte(v, '@')
	if at <= 0 || at == len(v)-1 {
		return "", ErrInvalidEmail
	}
	domain := v[at+1:]
	ascii, err := DomainToASCII(domain)
	if err != nil {
		return "", ErrInvalidEmail
	}
	if !isASCII(domain) {
		// As mail routes it (an ideographic full stop is a dot); a domain
		// already in ASCII (punycode included) is kept as written, as
		// login IDs were before this mapping, so that theirs still sign in.
		if domain, err = domains.ToUnicode(ascii); err != nil {
			return "", ErrInvalidEmail
		}
	}
	local := v[:at]
	v = local + "@" + domain
	if len(v) > 254 || len(local)+1+len(ascii) > 254 {
		return "", ErrInvalidEmail
	}
	addr, err := mail.ParseAddress(v)
	if err != nil || addr.Address != v || addr.Name != "" {
		return "", ErrInvalidEmail
	}
	if !strings.Contains(domain, ".") || strings.HasPrefix(domain, ".") ||
		strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") {
		return "", ErrInvalidEmail
	}
	return v, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// domains maps and checks email domains as mail to them is routed: IDNA
// for lookup (RFC 5891; STD3 characters, bidi and joiner rules, punycode
// checked), except the UTS 46 hyphen rule, which refuses hostnames mail
// reaches (ab--cd.example.com); DomainToASCII checks the hostname rule
// instead (no label begins or ends with a hyphen).
var domains = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.CheckJoiners(true), idna.CheckHyphens(false))

// DomainToASCII is an email domain as SMTP routes it (punycode), or an
// error if no mail can be routed to it. Delivery and login IDs share it, so
// that a login ID is one that codes can be sent to.
func DomainToASCII(d string) (string, error) {
	a, err := domains.ToASCII(d)
	if err != nil {
		return "", err
	}
	u, err := domains.ToUnicode(a)
	if err != nil {
		return "", err
	}
	// Every label, in both forms: not empty, no hyphen at either end, and
	// no ACE prefix left once decoded (xn--xn--… is not a name).
	for _, form := range []string{a, u} {
		for _, label := range strings.Split(form, ".") {
			if label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
				return "", errors.New("idna: an empty label, or one that begins or ends with a hyphen")
			}
		}
	}
	for _, label := range strings.Split(u, ".") {
		if strings.HasPrefix(label, "xn--") {
			return "", errors.New("idna: a label that is an ACE label once decoded")
		}
	}
	return a, nil
}

// invisible reports whether r shows as nothing: a format character
// (general category Cf), a variation selector, another default-ignorable
// code point, or one of the letters and symbols drawn blank (the Braille
// blank, the Hangul fillers, the musical null notehead, the Khitan filler).
func invisible(r rune) bool {
	switch r {
	case 0x2800, 0x115F, 0x1160, 0x3164, 0xFFA0, 0x1D159, 0x16FE4:
		return true
	}
	return unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Variation_Selector, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// Revealing is the ID as a person can tell it from a look-alike: as it is
// when it is plain ASCII; otherwise an email's domain in its ASCII form
// (punycode) and every other non-ASCII character as U+XXXX. For pages that
// ask a person to recognise an account as theirs.
func (id ID) Revealing() string {
	v := id.Value
	if isASCII(v) {
		return v
	}
	tail := ""
	if id.Type == Email {
		at := strings.LastIndexByte(v, '@')
		if d, err := DomainToASCII(v[at+1:]); at > 0 && err == nil {
			v, tail = v[:at], "@"+d
		}
	}
	var b strings.Builder
	for _, r := range v {
		if r < utf8.RuneSelf {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, "U+%04X", r)
		}
	}
	return b.String() + tail
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
