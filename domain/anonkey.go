package domain

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// MethodAnonymousKey is the sign-in method of a key-pair guest.
const MethodAnonymousKey = "anonymous_key"

// AnonymousKey is the write-side state of one key claim: a key id or a key
// thumbprint, each on its own subject.
type AnonymousKey struct {
	claimed    bool
	keyID      string
	userID     string
	alg        string
	jwk        json.RawMessage
	thumbprint string
}

// Claimed reports whether the key belongs to a user.
func (k AnonymousKey) Claimed() bool { return k.claimed }

// UserID is the user the key belongs to.
func (k AnonymousKey) UserID() string { return k.userID }

// KeyID is the claimed key id.
func (k AnonymousKey) KeyID() string { return k.keyID }

// Algorithm is the signature algorithm registered with the key.
func (k AnonymousKey) Algorithm() string { return k.alg }

// JWK is the registered public key (a copy).
func (k AnonymousKey) JWK() json.RawMessage { return slices.Clone(k.jwk) }

// Thumbprint is the registered key's RFC 7638 thumbprint.
func (k AnonymousKey) Thumbprint() string { return k.thumbprint }

// EvolveAnonymousKey applies one event.
func EvolveAnonymousKey(k AnonymousKey, ev Event) AnonymousKey {
	if e, ok := ev.(AnonymousKeyClaimed); ok {
		k = AnonymousKey{claimed: true, keyID: e.KeyID, userID: e.UserID, alg: e.Algorithm, jwk: e.JWK, thumbprint: e.Thumbprint}
	}
	return k
}

// RegisterAnonymousKey creates a key-pair guest: the user, its key, and the
// two claims (key id and thumbprint) that keep the key unique.
type RegisterAnonymousKey struct {
	UserID     string
	ClientID   string
	KeyID      string
	Algorithm  string
	JWK        json.RawMessage
	Thumbprint string
	SessionID  string
	Now        time.Time
}

// DecideRegisterAnonymousKey checks that neither the key id nor the
// thumbprint is claimed, and returns the user's events and the two claims.
func DecideRegisterAnonymousKey(u User, byKeyID, byThumbprint AnonymousKey, c RegisterAnonymousKey) (user []Event, keyClaim, thumbprintClaim Event, err error) {
	if c.KeyID == "" || c.Algorithm == "" || len(c.JWK) == 0 || c.Thumbprint == "" {
		return nil, nil, nil, fmt.Errorf("%w: key id, algorithm, key and thumbprint are required", ErrInvalidCommand)
	}
	if byKeyID.claimed || byThumbprint.claimed {
		return nil, nil, nil, ErrKeyTaken
	}
	created, err := DecideCreateAnonymousUser(u, CreateAnonymousUser{UserID: c.UserID, ClientID: c.ClientID, SessionID: c.SessionID, Now: c.Now})
	if err != nil {
		return nil, nil, nil, err
	}
	now := c.Now.UTC()
	registered := AnonymousKeyRegistered{UserID: c.UserID, KeyID: c.KeyID, Algorithm: c.Algorithm, JWK: c.JWK, Thumbprint: c.Thumbprint, RegisteredAt: now}
	claim := AnonymousKeyClaimed{KeyID: c.KeyID, UserID: c.UserID, Algorithm: c.Algorithm, JWK: c.JWK, Thumbprint: c.Thumbprint, ClaimedAt: now}
	return append(created, registered), claim, claim, nil
}
