package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/idstream/idstream/eventstore"
)

// Kinds of single-use codes.
const (
	CodePromotion     = "promotion"
	CodeAuthorization = "authz"
	CodeFlow          = "flow"
	// CodeChallenge is a key-pair challenge (purpose anonymous_request).
	CodeChallenge = "challenge"
)

// ErrCodeNotFound means the code is unknown, expired or spent;
// ErrCodeChanged that a conditional update or delete lost a race.
var (
	ErrCodeNotFound = eventstore.ErrNoValue
	ErrCodeChanged  = eventstore.ErrValueChanged
)

// CodeEntry is what a code stands for. Only a hash of the code is a key.
type CodeEntry struct {
	Kind      string    `json:"kind"`
	UserID    string    `json:"user_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	// Epoch is the user's CredentialEpoch when an authorization code was
	// issued: its exchange starts nothing at another.
	Epoch int `json:"epoch,omitempty"`
	// Authorization codes and hosted-page flows.
	RedirectURI   string `json:"redirect_uri,omitempty"`
	CodeChallenge string `json:"code_challenge,omitempty"`
	ResponseType  string `json:"response_type,omitempty"`
	State         string `json:"state,omitempty"`
	Scope         string `json:"scope,omitempty"`
	PromotionCode string `json:"promotion_code,omitempty"`
	CSRF          string `json:"csrf,omitempty"`
	Binding       string `json:"binding,omitempty"`
	// DPoPJKT is the authorize request's dpop_jkt: the code is then bound
	// to that DPoP key (RFC 9449 §10).
	DPoPJKT string `json:"dpop_jkt,omitempty"`
	// Used marks a spent authorization code; IssuedSession is what it gave,
	// revoked if the code is presented again.
	Used          bool   `json:"used,omitempty"`
	IssuedSession string `json:"issued_session,omitempty"`
	// Promotion is what an authorization code of a hosted promotion writes
	// when it is exchanged.
	Promotion *PendingPromotion `json:"promotion,omitempty"`
	// CodeLoginIDType and CodeLoginID: the login ID a hosted flow sent a
	// one-time code to (the code page names it).
	CodeLoginIDType string `json:"code_login_id_type,omitempty"`
	CodeLoginID     string `json:"code_login_id,omitempty"`
	// Method is the sign-in method of the session an authorization code
	// (or a hosted flow) gives; empty: password.
	Method string `json:"method,omitempty"`
	// OpenID Connect: the authorization request's nonce (echoed in the ID
	// token), response_mode, a login_hint to prefill sign-in with, the
	// subject an id_token_hint named (sign-in must be as that user), and
	// the code's auth_time when the user authenticated before the flow
	// (prompt=none on an existing session).
	Nonce        string    `json:"nonce,omitempty"`
	ResponseMode string    `json:"response_mode,omitempty"`
	LoginHint    string    `json:"login_hint,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	AuthTime     time.Time `json:"auth_time,omitzero"`
	// ReauthSession is the live session an id_token_hint named: the code
	// re-authenticates it instead of starting a new one.
	ReauthSession string `json:"reauth_session,omitempty"`
	// Upstream is an upstream authorization request's state (issue 19).
	Upstream *UpstreamState `json:"upstream,omitempty"`
	// ClaimedBy: the authorization request a promotion code was first
	// opened by (ClaimPromotionCode).
	ClaimedBy string `json:"claimed_by,omitempty"`
}

// Codes stores short-lived values under secret codes where every node sees
// them (eventstore.SecretValues): only a hash of a code is a key, and
// updates and deletes are conditional on the revision read.
type Codes interface {
	Put(ctx context.Context, code string, value []byte) error
	Get(ctx context.Context, code string) ([]byte, uint64, error)
	// Update replaces the value if it is still at revision rev.
	Update(ctx context.Context, code string, value []byte, rev uint64) error
	// Delete removes the value if it is still at revision rev.
	Delete(ctx context.Context, code string, rev uint64) error
}

// codeBook reads and writes CodeEntry values in Codes.
type codeBook struct{ store Codes }

func (b codeBook) Put(ctx context.Context, code string, e CodeEntry) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return b.store.Put(ctx, code, raw)
}

func (b codeBook) Get(ctx context.Context, code string) (CodeEntry, uint64, error) {
	raw, rev, err := b.store.Get(ctx, code)
	if err != nil {
		return CodeEntry{}, 0, err
	}
	var e CodeEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return CodeEntry{}, 0, ErrCodeNotFound
	}
	return e, rev, nil
}

func (b codeBook) Update(ctx context.Context, code string, e CodeEntry, rev uint64) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return b.store.Update(ctx, code, raw, rev)
}

func (b codeBook) Delete(ctx context.Context, code string, rev uint64) error {
	return b.store.Delete(ctx, code, rev)
}

// codeEntry reads a code's entry when valid accepts it; an unknown code,
// or one valid refuses, is missing.
func (s *core) codeEntry(ctx context.Context, code string, missing error, valid func(CodeEntry) bool) (CodeEntry, uint64, error) {
	e, rev, err := s.codes.Get(ctx, code)
	if errors.Is(err, ErrCodeNotFound) || (err == nil && !valid(e)) {
		return CodeEntry{}, 0, missing
	}
	if err != nil {
		return CodeEntry{}, 0, err
	}
	return e, rev, nil
}

// takeCode spends a code valid accepts: a delete conditioned on the
// revision read, so of two concurrent uses (on any nodes) exactly one gets
// it; the other, like an unknown or refused code, gets missing.
func (s *core) takeCode(ctx context.Context, code string, missing error, valid func(CodeEntry) bool) (CodeEntry, error) {
	e, rev, err := s.codeEntry(ctx, code, missing, valid)
	if err != nil {
		return CodeEntry{}, err
	}
	if err := s.codes.Delete(ctx, code, rev); err != nil {
		if errors.Is(err, ErrCodeChanged) {
			return CodeEntry{}, missing
		}
		return CodeEntry{}, err
	}
	return e, nil
}

// codeKey is a code's hash, as the store keys it.
func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// NewCode makes a random code of 256 bits.
func (s *core) NewCode() (string, error) { return s.newCode() }

// Now is the service's clock.
func (s *core) Now() time.Time { return s.clock.Now() }

// PutCode stores a code entry (hosted-page flows).
func (s *core) PutCode(ctx context.Context, code string, e CodeEntry) error {
	return s.codes.Put(ctx, code, e)
}

// Flow returns a live hosted-page flow.
func (s *core) Flow(ctx context.Context, id string) (CodeEntry, error) {
	e, _, err := s.codes.Get(ctx, id)
	if err == nil && (e.Kind != CodeFlow || !s.clock.Now().Before(e.ExpiresAt)) {
		err = ErrCodeNotFound
	}
	return e, err
}

// SetFlowCodeLoginID records in a live hosted-page flow the login ID a
// one-time code was sent to (a conditional update: a flow changed
// meanwhile is ErrFlowChanged).
func (s *core) SetFlowCodeLoginID(ctx context.Context, flowID, typ, value string) error {
	e, rev, err := s.codes.Get(ctx, flowID)
	if err == nil && (e.Kind != CodeFlow || !s.clock.Now().Before(e.ExpiresAt)) {
		err = ErrCodeNotFound
	}
	if err != nil {
		return err
	}
	e.CodeLoginIDType, e.CodeLoginID = typ, value
	if err := s.codes.Update(ctx, flowID, e, rev); errors.Is(err, ErrCodeChanged) {
		return ErrFlowChanged
	} else if err != nil {
		return err
	}
	return nil
}

// DeleteCode removes a code entry whatever its revision.
func (s *core) DeleteCode(ctx context.Context, code string) {
	if _, rev, err := s.codes.Get(ctx, code); err == nil {
		_ = s.codes.Delete(ctx, code, rev)
	}
}

// newCode makes a random code of 256 bits.
func (s *core) newCode() (string, error) {
	var raw [32]byte
	if _, err := io.ReadFull(s.random, raw[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}
