package tokens_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"log/slog"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

var p256N = elliptic.P256().Params().N

// flipS turns a compact ES256 JWS's signature (r, s) into (r, n-s): the
// other signature ECDSA accepts for the same message and key.
func flipS(t *testing.T, compact string) string {
	t.Helper()
	i := strings.LastIndexByte(compact, '.')
	sig, err := base64.RawURLEncoding.DecodeString(compact[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %d bytes, %v", len(sig), err)
	}
	s := new(big.Int).Sub(p256N, new(big.Int).SetBytes(sig[32:]))
	s.FillBytes(sig[32:])
	return compact[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

func isLowS(t *testing.T, compact string) bool {
	t.Helper()
	sig, _ := base64.RawURLEncoding.DecodeString(compact[strings.LastIndexByte(compact, '.')+1:])
	return len(sig) == 64 && new(big.Int).SetBytes(sig[32:]).Cmp(new(big.Int).Rsh(p256N, 1)) <= 0
}

// TestAccessTokensLowS: every access token the ring signs is low-S and
// verifies; the same token with s replaced by n-s (still a valid ECDSA
// signature, as the JOSE library confirms) is refused.
func TestAccessTokensLowS(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	keys, err := tokens.NewKeys(ctx, pool, clk, slog.New(slog.DiscardHandler), tokens.KeysConfig{
		Issuer: "https://id.example", PublishRetiredFor: time.Hour, ReloadEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	jwks := keys.JWKS(ctx)
	for i := range 300 {
		now := clk.Now()
		at, err := keys.Sign(ctx, tokens.AccessClaims{Claims: jwt.Claims{Subject: uuid.NewString(), IssuedAt: jwt.NewNumericDate(now),
			Expiry: jwt.NewNumericDate(now.Add(time.Minute))}, SessionID: uuid.NewString(), ClientID: "app"})
		if err != nil {
			t.Fatal(err)
		}
		if !isLowS(t, at) {
			t.Fatalf("token %d is not low-S", i)
		}
		if _, err := keys.Verify(ctx, at); err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		flipped := flipS(t, at)
		if i < 20 {
			// The flipped token really is a valid signature.
			tok, err := jwt.ParseSigned(flipped, []jose.SignatureAlgorithm{jose.ES256})
			var c tokens.AccessClaims
			if err != nil || tok.Claims(&jwks.Keys[0], &c) != nil {
				t.Fatalf("flipped token %d does not verify with the JOSE library: %v", i, err)
			}
		}
		if _, err := keys.Verify(ctx, flipped); !errors.Is(err, tokens.ErrInvalidAccessToken) {
			t.Fatalf("token %d with s flipped: %v, want ErrInvalidAccessToken", i, err)
		}
	}
}

// TestAnonymousRequestEitherS: device libraries do not normalise ES256
// signatures, so a request and its (r, n-s) twin both verify; RS256 and
// EdDSA verify too.
func TestAnonymousRequestEitherS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub := &jose.JSONWebKey{Key: &key.PublicKey}
	now := time.Unix(1_800_000_000, 0)
	for i := range 50 {
		raw, err := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: key, Algorithm: jose.ES256, KeyID: "device-key-0001",
			IncludeJWK: i%2 == 0, Challenge: "c", Action: "auth", IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		for _, form := range []string{raw, flipS(t, raw)} {
			r, err := tokens.ParseAnonymousRequest(form)
			if err != nil || r.Verify(pub) != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, d := range []struct {
		alg         jose.SignatureAlgorithm
		key, pubKey any
	}{{jose.RS256, rsaKey, &rsaKey.PublicKey}, {jose.EdDSA, edKey, edKey.Public()}} {
		raw, err := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: d.key, Algorithm: d.alg, KeyID: "device-key-0002",
			Challenge: "c", Action: "auth", IssuedAt: now})
		if err != nil {
			t.Fatal(err)
		}
		r, err := tokens.ParseAnonymousRequest(raw)
		if err != nil || r.Verify(&jose.JSONWebKey{Key: d.pubKey, Algorithm: string(d.alg)}) != nil {
			t.Fatalf("%s: %v", d.alg, err)
		}
	}
}
