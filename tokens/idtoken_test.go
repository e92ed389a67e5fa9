package tokens_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// TestIDTokensAreNotAccessTokens: ID tokens and access tokens come from one
// key ring, told apart by typ: neither verifies as the other; an ID token
// hint verifies past its expiry but not past the hint's maximum age, and
// not from another issuer's ring.
func TestIDTokensAreNotAccessTokens(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	keys, err := tokens.NewKeys(ctx, pool, clk, slog.New(slog.DiscardHandler), tokens.KeysConfig{
		Issuer: "https://id.example", PublishRetiredFor: time.Hour, ReloadEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now, sub, sid := clk.Now(), uuid.NewString(), uuid.NewString()
	claims := jwt.Claims{Subject: sub, Audience: jwt.Audience{"app"}, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(time.Minute))}
	at, err := keys.Sign(ctx, tokens.AccessClaims{Claims: claims, SessionID: sid, ClientID: "app"})
	if err != nil {
		t.Fatal(err)
	}
	idt, err := keys.SignIDToken(ctx, tokens.IDClaims{Claims: claims, SessionID: sid, AtHash: tokens.AtHash(at)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Verify(ctx, idt); !errors.Is(err, tokens.ErrInvalidAccessToken) {
		t.Fatalf("an ID token verified as an access token: %v", err)
	}
	if _, err := keys.VerifyIDTokenHint(ctx, at, time.Hour); !errors.Is(err, tokens.ErrInvalidIDToken) {
		t.Fatalf("an access token verified as an ID token: %v", err)
	}
	clk.Advance(10 * time.Minute) // expired, still a hint
	c, err := keys.VerifyIDTokenHint(ctx, idt, time.Hour)
	if err != nil || c.Subject != sub || c.SessionID != sid || c.Issuer != "https://id.example" {
		t.Fatalf("hint: %+v %v", c, err)
	}
	if _, err := keys.VerifyIDTokenHint(ctx, idt, 5*time.Minute); !errors.Is(err, tokens.ErrInvalidIDToken) {
		t.Fatalf("a hint older than the maximum age: %v", err)
	}
	_, pool2 := testenv.Database(t)
	other, err := tokens.NewKeys(ctx, pool2, clk, slog.New(slog.DiscardHandler), tokens.KeysConfig{
		Issuer: "https://id.example", PublishRetiredFor: time.Hour, ReloadEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.VerifyIDTokenHint(ctx, idt, time.Hour); !errors.Is(err, tokens.ErrInvalidIDToken) {
		t.Fatalf("another ring's ID token: %v", err)
	}
}
