package tokens_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/tokens"
)

// FuzzParseAnonymousRequest feeds arbitrary input to the parser and, when it
// parses, to verification with an unrelated key: nothing may panic, and no
// input may verify with a key that did not sign it.
func FuzzParseAnonymousRequest(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	for _, withJWK := range []bool{true, false} {
		tok, err := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: key, Algorithm: jose.ES256, KeyID: "seed-key-0001",
			IncludeJWK: withJWK, Challenge: "c", Action: "auth", IssuedAt: now})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("eyJhbGciOiJub25lIiwidHlwIjoidm5kLmF1dGhnZWFyLmFub255bW91cy1yZXF1ZXN0In0.e30.")
	f.Add("..")
	f.Add("a.b.c")
	otherJWK := &jose.JSONWebKey{Key: &other.PublicKey}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := tokens.ParseAnonymousRequest(raw)
		if err != nil {
			return
		}
		if r.Verify(otherJWK) == nil {
			t.Fatalf("verified with a key that did not sign it: %q", raw)
		}
		if r.HeaderJWK != nil && r.Verify(r.HeaderJWK) == nil {
			// A self-signed token is fine, but its key must be acceptable.
			if err := tokens.CheckKey(r.HeaderJWK, r.Algorithm); err != nil {
				t.Fatalf("verified with an unacceptable key: %v", err)
			}
		}
		_ = r.CheckTime(now, time.Minute)
	})
}
