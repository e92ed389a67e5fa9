package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
)

// ErrInvalidIDToken: an ID token (an id_token_hint) that this issuer did
// not sign, or that is malformed.
var ErrInvalidIDToken = errors.New("tokens: invalid ID token")

// UserClaims are the claims about the user that an ID token and userinfo
// carry by the same rule (the scopes email, phone and profile).
type UserClaims struct {
	Email               string `json:"email,omitempty"`
	EmailVerified       *bool  `json:"email_verified,omitempty"`
	PhoneNumber         string `json:"phone_number,omitempty"`
	PhoneNumberVerified *bool  `json:"phone_number_verified,omitempty"`
	PreferredUsername   string `json:"preferred_username,omitempty"`
	// The Authgear SDKs' claims.
	IsAnonymous       bool `json:"https://authgear.com/claims/user/is_anonymous"`
	IsVerified        bool `json:"https://authgear.com/claims/user/is_verified"`
	CanReauthenticate bool `json:"https://authgear.com/claims/user/can_reauthenticate"`
}

// IDClaims are the claims of an ID token (OpenID Connect Core §2).
type IDClaims struct {
	jwt.Claims
	AuthTime  *jwt.NumericDate `json:"auth_time,omitempty"`
	Nonce     string           `json:"nonce,omitempty"`
	SessionID string           `json:"sid,omitempty"`
	AtHash    string           `json:"at_hash,omitempty"`
	AMR       []string         `json:"amr,omitempty"`
	AZP       string           `json:"azp,omitempty"`
	UserClaims
}

// AtHash is the at_hash of an access token for ES256 (the left half of its
// SHA-256, base64url; OpenID Connect Core §3.1.3.6).
func AtHash(accessToken string) string {
	sum := sha256.Sum256([]byte(accessToken))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// SignIDToken signs an ID token with the access-token key ring (typ JWT, so
// that it is never taken for an access token, whose typ is at+jwt).
func (k *Keys) SignIDToken(ctx context.Context, c IDClaims) (string, error) {
	k.maybeReload(ctx)
	k.mu.RLock()
	signer := k.idSigner
	k.mu.RUnlock()
	c.Issuer = k.cfg.Issuer
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return "", err
	}
	return lowSCompact(compact)
}

// VerifyIDTokenHint checks an ID token this issuer signed, as an
// id_token_hint: the signature (a key still published), issuer and typ;
// its expiry is not checked (OpenID Connect RP-Initiated Logout §2: an
// expired ID token is a valid hint), but it must have been issued no more
// than maxAge ago.
func (k *Keys) VerifyIDTokenHint(ctx context.Context, raw string, maxAge time.Duration) (IDClaims, error) {
	var c IDClaims
	if err := k.verifySigned(ctx, raw, 8192, "JWT", ErrInvalidIDToken, &c); err != nil {
		return c, err
	}
	if c.Issuer != k.cfg.Issuer || c.Subject == "" || len(c.Audience) != 1 || c.IssuedAt == nil ||
		k.clock.Now().Sub(c.IssuedAt.Time()) > maxAge {
		return c, ErrInvalidIDToken
	}
	return c, nil
}
