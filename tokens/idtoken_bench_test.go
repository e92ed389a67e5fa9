package tokens_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// BenchmarkTokenResponseSigning: what an OpenID token response costs to
// sign compared with the access token alone (issue 18 adds the ID token to
// every openid session's answer).
func BenchmarkTokenResponseSigning(b *testing.B) {
	_, pool := testenv.Database(b)
	ctx := context.Background()
	clk := clock.NewFake(time.Now())
	keys, err := tokens.NewKeys(ctx, pool, clk, slog.New(slog.DiscardHandler), tokens.KeysConfig{
		Issuer: "https://id.example", PublishRetiredFor: time.Hour, ReloadEvery: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	now := clk.Now()
	claims := jwt.Claims{Subject: uuid.NewString(), Audience: jwt.Audience{"app"}, IssuedAt: jwt.NewNumericDate(now),
		Expiry: jwt.NewNumericDate(now.Add(30 * time.Minute)), ID: uuid.NewString()}
	sid := uuid.NewString()
	sign := func(b *testing.B, withID bool) {
		for b.Loop() {
			at, err := keys.Sign(ctx, tokens.AccessClaims{Claims: claims, SessionID: sid, ClientID: "app"})
			if err != nil {
				b.Fatal(err)
			}
			if withID {
				if _, err := keys.SignIDToken(ctx, tokens.IDClaims{Claims: claims, SessionID: sid, AtHash: tokens.AtHash(at),
					AuthTime: jwt.NewNumericDate(now), AMR: []string{"pwd"}, AZP: "app"}); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.Run("access-token", func(b *testing.B) { sign(b, false) })
	b.Run("access-and-id-token", func(b *testing.B) { sign(b, true) })
}
