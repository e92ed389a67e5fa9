package tokens_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/tokens"
)

var dpopNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// proof signs a DPoP proof as the Authgear SDKs do (header typ, alg, kid
// and the public jwk; payload iat, exp, jti, htm, htu), with edits.
func proof(t *testing.T, key crypto.Signer, alg jose.SignatureAlgorithm, claims map[string]any, header map[jose.HeaderKey]any) string {
	t.Helper()
	pub := jose.JSONWebKey{Key: key.Public(), KeyID: "6D2A5E0C-2B8F-4C53-9E6A-3F1D2C4B5A69", Algorithm: string(alg)}
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader("jwk", pub)
	for k, v := range header {
		opts = opts.WithHeader(k, v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := map[string]any{"iat": dpopNow.Unix(), "exp": dpopNow.Unix() + 300, "jti": "3b2d3a2e-5d0c-4a52-8b11-0f2f6f1e9b77",
		"htm": "POST", "htu": "https://id.example.com/oauth2/token"}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	raw, _ := json.Marshal(c)
	jws, err := s.Sign(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDPoPProof(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	check := tokens.DPoPCheck{Method: "POST", URL: "https://id.example.com/oauth2/token", Now: dpopNow}
	tp := func(k crypto.Signer) string {
		s, _ := tokens.Thumbprint(&jose.JSONWebKey{Key: k.Public()})
		return s
	}

	for _, c := range []struct {
		name string
		key  crypto.Signer
		alg  jose.SignatureAlgorithm
	}{{"RS256 (Android, Flutter, React Native)", rsaKey, jose.RS256}, {"ES256 (iOS Secure Enclave)", ecKey, jose.ES256}} {
		p, err := tokens.ParseDPoPProof(proof(t, c.key, c.alg, nil, nil), check)
		if err != nil || p.JKT != tp(c.key) || p.JTI == "" {
			t.Fatalf("%s: %+v %v", c.name, p, err)
		}
	}
	// The iOS SDK signs request.url.absoluteString (query included) and
	// iat + 60; other hosts' spellings of the same URL match.
	for _, htu := range []string{"https://id.example.com/oauth2/token?x=1", "HTTPS://ID.EXAMPLE.COM:443/oauth2/token", "https://id.example.com/oauth2/token#f"} {
		if _, err := tokens.ParseDPoPProof(proof(t, rsaKey, jose.RS256, map[string]any{"htu": htu, "exp": dpopNow.Unix() + 60}, nil), check); err != nil {
			t.Fatalf("htu %s: %v", htu, err)
		}
	}
	// A fractional iat (RFC 7519 NumericDate) and no exp are fine.
	if _, err := tokens.ParseDPoPProof(proof(t, rsaKey, jose.RS256, map[string]any{"iat": 1796126400.5, "exp": nil}, nil),
		tokens.DPoPCheck{Method: "POST", URL: check.URL, Now: time.Unix(1796126400, 0)}); err != nil {
		t.Fatalf("fractional iat: %v", err)
	}

	at := "eyJhbGciOiJFUzI1NiJ9.e30.sig"
	withAT := check
	withAT.AccessToken = at
	withAT.RequireATH = true
	good := proof(t, rsaKey, jose.RS256, map[string]any{"ath": tokens.AccessTokenHash(at)}, nil)
	if _, err := tokens.ParseDPoPProof(good, withAT); err != nil {
		t.Fatalf("ath: %v", err)
	}

	other := proof(t, ecKey, jose.ES256, nil, nil)
	parts := strings.Split(other, ".")
	forged := strings.Join([]string{strings.Split(good, ".")[0], parts[1], parts[2]}, ".")
	hdr := func(m map[string]any) string {
		raw, _ := json.Marshal(m)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	privJWK := jose.JSONWebKey{Key: rsaKey, Algorithm: "RS256"}
	cases := []struct {
		name   string
		proof  string
		check  tokens.DPoPCheck
		reason string
	}{
		{"not a JWS", "abc", check, tokens.DPoPMalformed},
		{"alg none", hdr(map[string]any{"alg": "none", "typ": "dpop+jwt"}) + ".e30.", check, tokens.DPoPAlgorithm},
		{"alg HS256", hdr(map[string]any{"alg": "HS256", "typ": "dpop+jwt"}) + ".e30.c2ln", check, tokens.DPoPAlgorithm},
		{"typ JWT", proof(t, rsaKey, jose.RS256, nil, map[jose.HeaderKey]any{"typ": "JWT"}), check, tokens.DPoPType},
		{"private key in the header", proof(t, rsaKey, jose.RS256, nil, map[jose.HeaderKey]any{"jwk": privJWK}), check, tokens.DPoPKey},
		{"RSA-1024", proof(t, small, jose.RS256, nil, nil), check, tokens.DPoPKey},
		{"bad signature", forged, check, tokens.DPoPSignature},
		{"wrong htm", proof(t, rsaKey, jose.RS256, map[string]any{"htm": "GET"}, nil), check, tokens.DPoPMethod},
		{"wrong htu", proof(t, rsaKey, jose.RS256, map[string]any{"htu": "https://id.example.com/oauth2/userinfo"}, nil), check, tokens.DPoPURL},
		{"htu of another host", proof(t, rsaKey, jose.RS256, map[string]any{"htu": "https://evil.example/oauth2/token"}, nil), check, tokens.DPoPURL},
		{"relative htu", proof(t, rsaKey, jose.RS256, map[string]any{"htu": "/oauth2/token"}, nil), check, tokens.DPoPURL},
		{"stale iat", proof(t, rsaKey, jose.RS256, map[string]any{"iat": dpopNow.Add(-6 * time.Minute).Unix(), "exp": nil}, nil), check, tokens.DPoPTime},
		{"future iat", proof(t, rsaKey, jose.RS256, map[string]any{"iat": dpopNow.Add(2 * time.Minute).Unix()}, nil), check, tokens.DPoPTime},
		{"no iat", proof(t, rsaKey, jose.RS256, map[string]any{"iat": nil}, nil), check, tokens.DPoPTime},
		{"iat a string", proof(t, rsaKey, jose.RS256, map[string]any{"iat": "1796126400"}, nil), check, tokens.DPoPTime},
		{"expired", proof(t, rsaKey, jose.RS256, map[string]any{"iat": dpopNow.Add(-4 * time.Minute).Unix(), "exp": dpopNow.Add(-2 * time.Minute).Unix()}, nil), check, tokens.DPoPTime},
		{"no jti", proof(t, rsaKey, jose.RS256, map[string]any{"jti": nil}, nil), check, tokens.DPoPMalformed},
		{"missing ath", proof(t, rsaKey, jose.RS256, nil, nil), withAT, tokens.DPoPATH},
		{"ath of another token", proof(t, rsaKey, jose.RS256, map[string]any{"ath": tokens.AccessTokenHash("other")}, nil), withAT, tokens.DPoPATH},
	}
	for _, c := range cases {
		_, err := tokens.ParseDPoPProof(c.proof, c.check)
		var de *tokens.DPoPError
		if !errors.As(err, &de) || de.Reason != c.reason {
			t.Errorf("%s: %v, want reason %s", c.name, err, c.reason)
		}
	}
	// An ath that is sent is checked even where it is not required (the
	// Authgear SDKs send none with their bearer tokens).
	lax := withAT
	lax.RequireATH = false
	if _, err := tokens.ParseDPoPProof(proof(t, rsaKey, jose.RS256, nil, nil), lax); err != nil {
		t.Fatalf("no ath where not required: %v", err)
	}
	if _, err := tokens.ParseDPoPProof(proof(t, rsaKey, jose.RS256, map[string]any{"ath": "x"}, nil), lax); err == nil {
		t.Fatal("a wrong ath where not required was taken")
	}
}

// BenchmarkParseDPoPProof is the server's cost of checking one proof (the
// jti spend, a KV create, is not included), by the SDKs' algorithms, beside
// the anonymous-request JWT a key-pair re-login verifies anyway.
func BenchmarkParseDPoPProof(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check := tokens.DPoPCheck{Method: "POST", URL: "https://id.example.com/oauth2/token", Now: dpopNow}
	for _, c := range []struct {
		name string
		key  crypto.Signer
		alg  jose.SignatureAlgorithm
	}{{"RS256", rsaKey, jose.RS256}, {"ES256", ecKey, jose.ES256}} {
		t := &testing.T{}
		p := proof(t, c.key, c.alg, nil, nil)
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				if _, err := tokens.ParseDPoPProof(p, check); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
