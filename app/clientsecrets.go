package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
)

// Errors of client authentication and secret management.
var (
	// ErrInvalidClient: client authentication failed (RFC 6749 §5.2
	// invalid_client): an unknown client, a wrong or expired secret, or a
	// method other than the client's token_endpoint_auth_method.
	ErrInvalidClient = errors.New("client authentication failed")
	// ErrNoSuchClientSecret: the client has no secret with the id.
	ErrNoSuchClientSecret = errors.New("the client has no such secret")
	// ErrInvalidOverlap: a rotation's overlap window out of bounds.
	ErrInvalidOverlap = errors.New("the overlap must be between 0 and 30 days")
	// ErrConfidentialClient: the SDKs' anonymous grants (guest sign-up, the
	// key-pair grant) are for public clients; a confidential client's
	// sessions start only with its own authentication.
	ErrConfidentialClient = errors.New("a confidential client cannot use the anonymous grants")
)

// publicClient looks up a client for the SDKs' unauthenticated grants.
func (s *Sessions) publicClient(id string) (domain.ClientSettings, error) {
	cl, err := s.client(id)
	if err == nil && cl.Confidential() {
		return domain.ClientSettings{}, ErrConfidentialClient
	}
	return cl, err
}

// MaxSecretOverlap bounds how long a rotated-away secret keeps working.
const MaxSecretOverlap = 30 * 24 * time.Hour

// ClientSecret is one secret of a confidential client: only its hash is
// kept, and it stops working at ExpiresAt (nil: until rotated or revoked).
type ClientSecret struct {
	SecretID  string
	ClientID  string
	Hash      []byte
	CreatedAt time.Time
	CreatedBy string
	ExpiresAt *time.Time
}

// Live reports whether the secret still works at now.
func (c ClientSecret) Live(now time.Time) bool { return c.ExpiresAt == nil || now.Before(*c.ExpiresAt) }

// ClientSecrets is where the secrets' hashes are kept (PostgreSQL, never
// the event log: they are credentials, like the signing keys).
type ClientSecrets interface {
	List(ctx context.Context, clientID string) ([]ClientSecret, error)
	// Rotate adds s and makes the client's other secrets expire at
	// retireAt at the latest, atomically.
	Rotate(ctx context.Context, s ClientSecret, retireAt time.Time) error
	// Expire makes a secret expire at the time at the latest; false when
	// the client has no such secret.
	Expire(ctx context.Context, clientID, secretID string, at time.Time) (bool, error)
}

// hashClientSecret is the stored form of a secret: SHA-256 over a label,
// the client id and the secret. A secret is 256 bits from the CSPRNG, so
// guessing it from the hash is as hard as guessing it outright; a slow
// password hash (argon2id) defends low-entropy secrets against guessing,
// which these are not, and would cost every token request tens of
// milliseconds and megabytes, a lever for anyone who can send requests.
// Binding the client id keeps one client's hash from matching for another.
func hashClientSecret(clientID, secret string) []byte {
	h := sha256.New()
	_, _ = io.WriteString(h, "idstream client secret v1\x00"+clientID+"\x00"+secret)
	return h.Sum(nil)
}

// RotateClientSecret issues a new secret for a client; the client's older
// secrets keep working for overlap (0: they stop now), so that its servers
// can be moved to the new one. The secret is returned once and never
// stored or logged.
func (s *Admin) RotateClientSecret(ctx context.Context, clientID string, overlap time.Duration, meta Meta) (string, ClientSecret, error) {
	if _, err := s.client(clientID); err != nil {
		return "", ClientSecret{}, err
	}
	if overlap < 0 || overlap > MaxSecretOverlap {
		return "", ClientSecret{}, ErrInvalidOverlap
	}
	raw := make([]byte, 32)
	if _, err := io.ReadFull(s.random, raw); err != nil {
		return "", ClientSecret{}, err
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	now := s.clock.Now()
	cs := ClientSecret{SecretID: uuid.NewString(), ClientID: clientID, Hash: hashClientSecret(clientID, secret),
		CreatedAt: now.UTC(), CreatedBy: meta.Actor}
	if cs.CreatedBy == "" {
		cs.CreatedBy = "admin-api"
	}
	if err := s.secrets.Rotate(ctx, cs, now.Add(overlap)); err != nil {
		return "", ClientSecret{}, fmt.Errorf("rotate client secret: %w", err)
	}
	s.log.Info("client secret rotated", "client_id", clientID, "secret_id", cs.SecretID, "overlap", overlap.String(),
		"actor", cs.CreatedBy, "correlation_id", meta.CorrelationID)
	cs.Hash = nil
	return secret, cs, nil
}

// ClientSecrets lists a client's secrets (without their hashes), newest
// first.
func (s *Admin) ClientSecrets(ctx context.Context, clientID string) ([]ClientSecret, error) {
	if _, err := s.client(clientID); err != nil {
		return nil, err
	}
	list, err := s.secrets.List(ctx, clientID)
	for i := range list {
		list[i].Hash = nil
	}
	return list, err
}

// RevokeClientSecret makes a secret stop working now.
func (s *Admin) RevokeClientSecret(ctx context.Context, clientID, secretID string, meta Meta) error {
	if _, err := s.client(clientID); err != nil {
		return err
	}
	ok, err := s.secrets.Expire(ctx, clientID, secretID, s.clock.Now())
	if err != nil {
		return err
	}
	if !ok {
		return ErrNoSuchClientSecret
	}
	s.log.Info("client secret revoked", "client_id", clientID, "secret_id", secretID, "actor", meta.Actor,
		"correlation_id", meta.CorrelationID)
	return nil
}

// AuthenticateClient checks a token-endpoint request's client
// authentication: method is what the request used (domain.AuthMethodNone
// when it presented no secret), which must be the client's
// token_endpoint_auth_method; a confidential client's secret must match
// one of its live secrets (compared in constant time, all of them).
func (s *Sessions) AuthenticateClient(ctx context.Context, clientID, method, secret string) (domain.ClientSettings, error) {
	cl, ok := s.Settings().Client(clientID)
	if !ok && method == domain.AuthMethodNone {
		return domain.ClientSettings{}, ErrUnknownClient
	}
	if !ok || cl.AuthMethod() != method {
		return domain.ClientSettings{}, ErrInvalidClient
	}
	if !cl.Confidential() {
		return cl, nil
	}
	list, err := s.secrets.List(ctx, clientID)
	if err != nil {
		return domain.ClientSettings{}, err
	}
	want := hashClientSecret(clientID, secret)
	now, match := s.clock.Now(), 0
	for _, cs := range list {
		if cs.Live(now) {
			match |= subtle.ConstantTimeCompare(cs.Hash, want)
		}
	}
	if secret == "" || match != 1 {
		return domain.ClientSettings{}, ErrInvalidClient
	}
	return cl, nil
}
