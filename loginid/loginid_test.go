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

func FuzzParse(f *testing.F) {
	for _, s := range []string{"alice@example.com", "+14155552671", "carol_99", " A@B.CO ", "+", "@", ""} {
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
