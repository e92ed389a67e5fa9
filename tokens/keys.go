package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/time/rate"

	"github.com/idstream/idstream/clock"
)

// Errors from access-token verification.
var (
	ErrInvalidAccessToken = errors.New("tokens: invalid access token")
	ErrExpiredAccessToken = errors.New("tokens: access token expired")
)

// AccessClaims are the claims of an access token.
type AccessClaims struct {
	jwt.Claims
	ClientID    string `json:"client_id"`
	SessionID   string `json:"sid"`
	IsAnonymous bool   `json:"is_anonymous"`
	// The claim name the Authgear SDKs read.
	AuthgearIsAnonymous bool `json:"https://authgear.com/claims/user/is_anonymous"`
	// Confirmation binds the token to a DPoP key (RFC 9449 §6.1); nil for a
	// bearer token.
	Confirmation *Confirmation `json:"cnf,omitempty"`
}

// Confirmation is an access token's cnf claim.
type Confirmation struct {
	// JKT is the DPoP key's SHA-256 thumbprint, base64url.
	JKT string `json:"jkt"`
}

// BoundKey is the DPoP key thumbprint the token is bound to, or "".
func (c AccessClaims) BoundKey() string {
	if c.Confirmation == nil {
		return ""
	}
	return c.Confirmation.JKT
}

// KeysConfig configures the key ring.
type KeysConfig struct {
	Issuer string
	// PublishRetiredFor keeps a retired key in JWKS this long, which must be
	// at least the longest access-token lifetime.
	PublishRetiredFor time.Duration
	// ReloadEvery bounds how stale a node's view of the keys can be.
	ReloadEvery time.Duration
}

type key struct {
	kid       string
	private   *ecdsa.PrivateKey
	createdAt time.Time
	retiredAt *time.Time
}

// Keys is the ring of signing keys, stored in PostgreSQL so that every node
// signs and verifies with the same keys and restarts keep them.
type Keys struct {
	pool  *pgxpool.Pool
	clock clock.Clock
	cfg   KeysConfig
	log   *slog.Logger

	mu       sync.RWMutex
	active   *key
	verify   map[string]*ecdsa.PublicKey
	jwks     jose.JSONWebKeySet
	loadedAt time.Time
	signer   jose.Signer
	// idSigner signs ID tokens (typ JWT) with the same key.
	idSigner jose.Signer
	// nonceKeys MAC DPoP nonces, derived from the ring's keys, the active
	// key's first (dpopnonce.go).
	nonceKeys [][]byte
	// missLimit bounds reloads caused by unknown key ids, which anyone can
	// send.
	missLimit *rate.Limiter
	// nonceMissLimit bounds reloads caused by DPoP nonces no loaded key
	// made, apart: anyone can send those too, and spending missLimit would
	// leave tokens of a new key refused until the next periodic reload.
	nonceMissLimit *rate.Limiter
	// loadStarted is when the installed ring's reload began: a slower
	// reload that began earlier does not replace it.
	loadStarted time.Time
}

const keysLock = 7230012

// NewKeys loads the ring, creating the first key when there is none.
func NewKeys(ctx context.Context, pool *pgxpool.Pool, clk clock.Clock, log *slog.Logger, cfg KeysConfig) (*Keys, error) {
	if pool == nil || clk == nil || log == nil {
		return nil, errors.New("tokens: pool, clock and logger are required")
	}
	if cfg.Issuer == "" || cfg.PublishRetiredFor <= 0 || cfg.ReloadEvery <= 0 {
		return nil, errors.New("tokens: issuer, retired-key publication and reload interval are required")
	}
	k := &Keys{pool: pool, clock: clk, cfg: cfg, log: log, missLimit: rate.NewLimiter(10, 10), nonceMissLimit: rate.NewLimiter(1, 2)}
	if err := k.ensureKey(ctx); err != nil {
		return nil, err
	}
	if err := k.Reload(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Keys) ensureKey(ctx context.Context) error {
	return pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keysLock); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM signing_keys WHERE retired_at IS NULL`).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		kid, err := insertKey(ctx, tx, k.clock.Now())
		if err == nil {
			k.log.Info("created the first access-token signing key", "kid", kid)
		}
		return err
	})
}

func insertKey(ctx context.Context, tx pgx.Tx, now time.Time) (string, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	kid := uuid.NewString()
	jwk := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: string(jose.ES256), Use: "sig"}
	raw, err := jwk.MarshalJSON()
	if err != nil {
		return "", err
	}
	_, err = tx.Exec(ctx, `INSERT INTO signing_keys (kid, alg, private_jwk, created_at) VALUES ($1, 'ES256', $2, $3)`, kid, raw, now)
	return kid, err
}

// Rotate makes a new key the signing key; the old one stays published until
// the tokens it signed have expired. Other nodes pick it up on their next
// reload, and verify its tokens at once (an unknown kid triggers a reload).
func (k *Keys) Rotate(ctx context.Context) (string, error) {
	var kid string
	err := pgx.BeginFunc(ctx, k.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keysLock); err != nil {
			return err
		}
		now := k.clock.Now()
		if _, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`, now); err != nil {
			return err
		}
		var err error
		kid, err = insertKey(ctx, tx, now.Add(time.Microsecond))
		return err
	})
	if err != nil {
		return "", fmt.Errorf("tokens: rotate: %w", err)
	}
	return kid, k.Reload(ctx)
}

// Reload reads the ring from PostgreSQL.
func (k *Keys) Reload(ctx context.Context) error {
	started := time.Now()
	now := k.clock.Now()
	rows, err := k.pool.Query(ctx, `SELECT kid, private_jwk, created_at, retired_at FROM signing_keys
		WHERE retired_at IS NULL OR retired_at > $1 ORDER BY created_at`, now.Add(-k.cfg.PublishRetiredFor))
	if err != nil {
		return fmt.Errorf("tokens: load keys: %w", err)
	}
	var ring []*key
	for rows.Next() {
		var kk key
		var raw []byte
		if err := rows.Scan(&kk.kid, &raw, &kk.createdAt, &kk.retiredAt); err != nil {
			return err
		}
		var jwk jose.JSONWebKey
		if err := json.Unmarshal(raw, &jwk); err != nil {
			return fmt.Errorf("tokens: key %s: %w", kk.kid, err)
		}
		priv, ok := jwk.Key.(*ecdsa.PrivateKey)
		if !ok {
			return fmt.Errorf("tokens: key %s is not an EC private key", kk.kid)
		}
		kk.private = priv
		ring = append(ring, &kk)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var active *key
	verify := map[string]*ecdsa.PublicKey{}
	var set jose.JSONWebKeySet
	for _, kk := range ring {
		if kk.retiredAt == nil {
			active = kk
		}
		verify[kk.kid] = &kk.private.PublicKey
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: &kk.private.PublicKey, KeyID: kk.kid, Algorithm: string(jose.ES256), Use: "sig"})
	}
	if active == nil {
		return errors.New("tokens: no active signing key")
	}
	nonceKeys := make([][]byte, 0, len(ring))
	for _, kk := range append([]*key{active}, ring...) {
		if kk == active && len(nonceKeys) > 0 {
			continue
		}
		nk, err := nonceKey(kk)
		if err != nil {
			return fmt.Errorf("tokens: key %s: %w", kk.kid, err)
		}
		nonceKeys = append(nonceKeys, nk)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: active.private},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), active.kid))
	if err != nil {
		return err
	}
	idSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: active.private},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), active.kid))
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if started.Before(k.loadStarted) {
		return nil // a reload that began later has installed a newer ring
	}
	// loadedAt paces reloads, an operational matter: real time, not the
	// (possibly fake) clock that decides token validity.
	k.active, k.verify, k.jwks, k.signer, k.idSigner, k.nonceKeys, k.loadedAt = active, verify, set, signer, idSigner, nonceKeys, time.Now()
	k.loadStarted = started
	return nil
}

// JWKS returns the published public keys.
func (k *Keys) JWKS(ctx context.Context) jose.JSONWebKeySet {
	k.maybeReload(ctx)
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.jwks
}

func (k *Keys) maybeReload(ctx context.Context) {
	k.mu.RLock()
	stale := time.Since(k.loadedAt) > k.cfg.ReloadEvery
	k.mu.RUnlock()
	if stale {
		if err := k.Reload(ctx); err != nil {
			k.log.Warn("reloading signing keys failed; using the loaded ones", "error", err)
		}
	}
}

// Sign issues an access token.
func (k *Keys) Sign(ctx context.Context, c AccessClaims) (string, error) {
	k.maybeReload(ctx)
	k.mu.RLock()
	signer := k.signer
	k.mu.RUnlock()
	c.Issuer = k.cfg.Issuer
	c.AuthgearIsAnonymous = c.IsAnonymous
	// encoding/json is faster than the JOSE library's own encoder; the
	// library still does the signing and serialisation.
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

// verifySigned checks a JWT the key ring signed: at most maxLen bytes,
// low-S, ES256, one header of type typ (an ID token and an access token,
// signed by the same keys, are never taken for each other), a key of the
// ring; its claims go into claims. Any refusal is invalid; a key ring that
// cannot be read is its own error.
func (k *Keys) verifySigned(ctx context.Context, raw string, maxLen int, typ string, invalid error, claims any) error {
	if len(raw) > maxLen || compactHighS(raw) {
		return invalid
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil || len(tok.Headers) != 1 || tok.Headers[0].ExtraHeaders[jose.HeaderType] != typ {
		return invalid
	}
	pub, err := k.keyOf(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return err
	}
	if pub == nil {
		return invalid
	}
	if err := tok.Claims(pub, claims); err != nil {
		return invalid
	}
	return nil
}

// Verify checks an access token's signature (which must be low-S),
// issuer and times.
func (k *Keys) Verify(ctx context.Context, raw string) (AccessClaims, error) {
	var c AccessClaims
	if err := k.verifySigned(ctx, raw, 4096, "at+jwt", ErrInvalidAccessToken, &c); err != nil {
		return c, err
	}
	err := c.Claims.ValidateWithLeeway(jwt.Expected{Issuer: k.cfg.Issuer, Time: k.clock.Now()}, 30*time.Second)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return c, ErrExpiredAccessToken
	case err != nil:
		return c, ErrInvalidAccessToken
	case c.Subject == "" || c.SessionID == "":
		return c, ErrInvalidAccessToken
	}
	return c, nil
}

// keyOf returns the public key of a kid, reloading the ring (rate
// limited) for an unknown one; nil when there is none.
func (k *Keys) keyOf(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	pub := k.publicKey(kid)
	if pub == nil {
		// Maybe another node rotated a moment ago.
		if _, err := uuid.Parse(kid); err == nil && k.missLimit.Allow() {
			if err := k.Reload(ctx); err != nil {
				return nil, fmt.Errorf("tokens: reload keys: %w", err)
			}
			pub = k.publicKey(kid)
		}
	}
	return pub, nil
}

func (k *Keys) publicKey(kid string) *ecdsa.PublicKey {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.verify[kid]
}
