package loginid_test

import (
	"errors"
	"testing"

	"github.com/idstream/idstream/loginid"
)

func TestParse(t *testing.T) {
	ok := []struct {
		t    loginid.Type
		raw  string
		want loginid.ID
	}{
		{loginid.Email, "  Alice@Example.COM ", loginid.ID{Type: loginid.Email, Value: "alice@example.com"}},
		{"", "bob.smith+news@mail.example.org", loginid.ID{Type: loginid.Email, Value: "bob.smith+news@mail.example.org"}},
		{loginid.Phone, "+44 20 7946 0958", loginid.ID{Type: loginid.Phone, Value: "+442079460958"}},
		{"", "+1 (415) 555-2671", loginid.ID{Type: loginid.Phone, Value: "+14155552671"}},
		{"", "Carol_99", loginid.ID{Type: loginid.Username, Value: "carol_99"}},
	}
	for _, tc := range ok {
		got, err := loginid.Parse(tc.t, tc.raw)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q, %q) = %v, %v; want %v", tc.t, tc.raw, got, err, tc.want)
		}
	}
	bad := []struct {
		t   loginid.Type
		raw string
		err error
	}{
		{loginid.Email, "no-at-sign", loginid.ErrInvalidEmail},
		{loginid.Email, "a@b", loginid.ErrInvalidEmail},
		{loginid.Email, "Alice <alice@example.com>", loginid.ErrInvalidEmail},
		{loginid.Email, "a@@example.com", loginid.ErrInvalidEmail},
		{loginid.Email, "a@example..com", loginid.ErrInvalidEmail},
		{loginid.Phone, "020 7946 0958", loginid.ErrInvalidPhone},
		{loginid.Phone, "+1 555", loginid.ErrInvalidPhone},
		{loginid.Phone, "+999 1234567", loginid.ErrInvalidPhone},
		{loginid.Username, "ab", loginid.ErrInvalidUsername},
		{loginid.Username, "_leading", loginid.ErrInvalidUsername},
		{loginid.Username, "has space", loginid.ErrInvalidUsername},
		{loginid.Username, "Admin", loginid.ErrReservedName},
		{"fax", "x", loginid.ErrUnknownType},
	}
	for _, tc := range bad {
		if _, err := loginid.Parse(tc.t, tc.raw); !errors.Is(err, tc.err) {
			t.Errorf("Parse(%q, %q) = %v, want %v", tc.t, tc.raw, err, tc.err)
		}
	}
	a, _ := loginid.Parse("", "USER@example.com")
	b, _ := loginid.Parse("", "user@EXAMPLE.com")
	if a.Key() != b.Key() {
		t.Fatal("case variants of one email have different keys")
	}
}

// TestEmailLooksLikeWhatItIs: an address that shows as another person's
// (characters that show as nothing) is refused, and one whose domain mail
// routes to another domain's mailbox is that domain's login ID: one mailbox,
// one login ID.
func TestEmailLooksLikeWhatItIs(t *testing.T) {
	for _, raw := range []string{
		"victim\u200b@example.com",     // zero-width space
		"vic\u00adtim@example.com",     // soft hyphen
		"victim\u2060@example.com",     // word joiner
		"victim@exam\u00adple.com",     // soft hyphen in the domain
		"victim@exa\u200bmple.com",     // zero-width space in the domain
		"victim@example\ufe0f.com",     // variation selector
		"victim\U000E0041@example.com", // tag character
		"victim\u200d@example.com",     // zero-width joiner
		"\ufeffvictim@example.com",     // byte order mark
		"victim\u2800@example.com",     // Braille blank
		"victim\u3164@example.com",     // Hangul filler
		"victim\U0001D159@example.com", // musical null notehead
		"victim\U00016FE4@example.com", // Khitan filler
		"victim@foo_bar.com",           // no mail goes to it (STD3)
		"victim@-example.com",          // nor to this
		"victim@xn--zz.example",        // not punycode
		"u@xn--xn--\u00e9-.example",    // an ACE label once decoded
		"u@-\u00e9.example",            // a hyphen at a label's start
		"u@xn--.example",               // an empty label once decoded
	} {
		if id, err := loginid.Parse(loginid.Email, raw); !errors.Is(err, loginid.ErrInvalidEmail) {
			t.Errorf("Parse(%+q) = %+q, %v; want ErrInvalidEmail", raw, id.Value, err)
		}
	}
	plain, _ := loginid.Parse(loginid.Email, "victim@mail.example.com")
	for _, raw := range []string{"victim@mail.example\u3002com", "victim@mail.example\uff0ecom", "Victim@MAIL.example.com"} {
		id, err := loginid.Parse(loginid.Email, raw)
		if err != nil || id != plain || id.Key() != plain.Key() {
			t.Errorf("Parse(%+q) = %+q, %v; want %q, the mailbox mail to it reaches", raw, id.Value, err, plain.Value)
		}
	}
	uni, err := loginid.Parse(loginid.Email, "J\u00fcrgen@B\u00dcCHER.example")
	if err != nil || uni.Value != "j\u00fcrgen@b\u00fccher.example" {
		t.Errorf("an internationalised domain: %+q %v", uni.Value, err)
	}
	// A domain written in ASCII is kept as written (login IDs made before
	// the mapping keep their keys), punycode included.
	puny, err := loginid.Parse(loginid.Email, "j\u00fcrgen@XN--BCHER-KVA.example")
	if err != nil || puny.Value != "j\u00fcrgen@xn--bcher-kva.example" {
		t.Errorf("a punycode domain: %+q %v", puny.Value, err)
	}
	if got := uni.Revealing(); got != "jU+00FCrgen@xn--bcher-kva.example" {
		t.Errorf("Revealing() = %q", got)
	}
	if got := plain.Revealing(); got != "victim@mail.example.com" {
		t.Errorf("Revealing() of plain ASCII = %q", got)
	}
	// A Cyrillic "с" looks like a Latin "c": Revealing tells them apart.
	look, err := loginid.Parse(loginid.Email, "vi\u0441tim@example.com")
	if err != nil || look.Revealing() != "viU+0441tim@example.com" {
		t.Errorf("a look-alike: %+q %v, revealing %q", look.Value, err, look.Revealing())
	}
}

// TestEmailKeysKept: what earlier login IDs were stored as is what they
// are still parsed to (their claims' keys unchanged), for everything but
// the refused (characters that show as nothing, domains mail cannot reach)
// and non-ASCII domains IDNA maps elsewhere (an ideographic full stop).
func TestEmailKeysKept(t *testing.T) {
	for raw, stored := range map[string]string{
		"Alice@Example.COM":               "alice@example.com",
		"bob.smith+news@mail.example.org": "bob.smith+news@mail.example.org",
		"j\u00fcrgen@b\u00fccher.example": "j\u00fcrgen@b\u00fccher.example",
		"ada@xn--bcher-kva.example":       "ada@xn--bcher-kva.example",
		"ADA@XN--BCHER-KVA.EXAMPLE":       "ada@xn--bcher-kva.example",
		"\uff41da@example.com":            "ada@example.com", // fullwidth, NFKC as before
		"o'hara@example.co.uk":            "o'hara@example.co.uk",
		"user@sub-domain.example-host.io": "user@sub-domain.example-host.io",
		"\u00e9lise@caf\u00e9.example":    "\u00e9lise@caf\u00e9.example",
		"x@1.2.3.example":                 "x@1.2.3.example",
		"a@ab--cd.example.com":            "a@ab--cd.example.com",
		"a@r3---sn-abc.googlevideo.com":   "a@r3---sn-abc.googlevideo.com",
		"\u6771\u4eac@\u4f8b\u3048.jp":    "\u6771\u4eac@\u4f8b\u3048.jp",
	} {
		id, err := loginid.Parse(loginid.Email, raw)
		if err != nil || id.Value != stored {
			t.Errorf("Parse(%+q) = %+q, %v; stored before as %+q", raw, id.Value, err, stored)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"alice@example.com", "+14155552671", "carol_99", " A@B.CO ", "+", "@", "",
		"j\u00fcrgen@b\u00fccher.example", "a@xn--bcher-kva.example", "u@xn--xn--\u00e9-.example", "a@mail.example\u3002com", "a@ab--cd.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, typ := range []loginid.Type{"", loginid.Email, loginid.Phone, loginid.Username} {
			id, err := loginid.Parse(typ, raw)
			if err != nil {
				continue
			}
			// Normalising is idempotent.
			again, err := loginid.Parse(id.Type, id.Value)
			if err != nil || again != id {
				t.Fatalf("Parse(%q) = %v, re-parse gives %v, %v", raw, id, again, err)
			}
		}
	})
}
