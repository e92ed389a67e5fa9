package domain

import (
	"crypto/subtle"
	"fmt"
	"maps"
	"strings"
	"time"
)

// SessionKind says how a session's token reaches the server.
type SessionKind string

// Session kinds, as the Authgear SDK names them.
const (
	SessionKindCookie       SessionKind = "cookie"
	SessionKindRefreshToken SessionKind = "refresh_token"
)

// Valid reports whether k is a known kind.
func (k SessionKind) Valid() bool { return k == SessionKindCookie || k == SessionKindRefreshToken }

// Sign-in methods recorded in SessionStarted.
const (
	MethodAnonymous = "anonymous"
)

// Session is the write-side state of one session.
type Session struct {
	id        string
	exists    bool
	userID    string
	clientID  string
	kind      SessionKind
	method    string
	tokenHash string
	previous  map[string]struct{}
	// replaced is the token hash the latest rotation replaced.
	replaced    string
	generation  int
	startedAt   time.Time
	lastActive  time.Time
	idleTimeout time.Duration
	lifetime    time.Duration
	revoked     bool
	revokedAt   time.Time
	// scope is the granted scope; scopeSet false: not recorded (the SDKs'
	// sessions, LegacyScope).
	scope    string
	scopeSet bool
	authTime time.Time
	dpopJKT  string
}

// LegacyScope is the scope of a session that recorded none: the Authgear
// SDKs' sessions, which always ask for it.
const LegacyScope = "openid offline_access https://authgear.com/scopes/full-access"

// Method returns how the user signed in (MethodPassword, ...).
func (s Session) Method() string { return s.method }

// Scope returns the session's granted scope.
func (s Session) Scope() string {
	if !s.scopeSet {
		return LegacyScope
	}
	return s.scope
}

// HasScope reports whether the session was granted the scope value.
func (s Session) HasScope(v string) bool {
	for _, x := range strings.Fields(s.Scope()) {
		if x == v {
			return true
		}
	}
	return false
}

// AuthTime returns when the user last authenticated for this session.
func (s Session) AuthTime() time.Time {
	if !s.authTime.IsZero() {
		return s.authTime
	}
	return s.startedAt
}

// SessionID returns the session's id.
func (s Session) SessionID() string { return s.id }

// Exists reports whether the session has started.
func (s Session) Exists() bool { return s.exists }

// UserID returns the id of the session's user.
func (s Session) UserID() string { return s.userID }

// ClientID returns the client application the session belongs to.
func (s Session) ClientID() string { return s.clientID }

// Kind returns the session kind.
func (s Session) Kind() SessionKind { return s.kind }

// StartedAt is when the session started.
func (s Session) StartedAt() time.Time { return s.startedAt }

// LastActiveAt is the last activity recorded in the session's events.
func (s Session) LastActiveAt() time.Time { return s.lastActive }

// ExpiresAt is the end of the session's lifetime.
func (s Session) ExpiresAt() time.Time { return s.startedAt.Add(s.lifetime) }

// IdleTimeout is the session's idle timeout.
func (s Session) IdleTimeout() time.Duration { return s.idleTimeout }

// DPoPKey is the thumbprint of the DPoP key the session is bound to, or "".
func (s Session) DPoPKey() string { return s.dpopJKT }

// Revoked reports whether the session was revoked.
func (s Session) Revoked() bool { return s.revoked }

// Check reports whether the session is usable at now. activity is the latest
// activity known outside the log (coalesced records); zero when none.
func (s Session) Check(now, activity time.Time) error {
	if !s.exists {
		return ErrSessionNotFound
	}
	if s.revoked {
		return ErrSessionRevoked
	}
	if !now.Before(s.ExpiresAt()) {
		return ErrSessionExpired
	}
	last := s.lastActive
	if activity.After(last) {
		last = activity
	}
	if !now.Before(last.Add(s.idleTimeout)) {
		return ErrSessionExpired
	}
	return nil
}

// MatchesToken reports, in constant time, whether hash is the current token's.
func (s Session) MatchesToken(hash string) bool {
	return s.exists && subtle.ConstantTimeCompare([]byte(s.tokenHash), []byte(hash)) == 1
}

// EvolveSession applies one event to the state.
func EvolveSession(s Session, ev Event) Session { return FoldSession(s, ev) }

// FoldSession applies events in order, as EvolveSession one at a time. States
// are values that may be shared, so the set of previous token hashes, which
// grows at every refresh, is copied before it is written; FoldSession copies
// it once per call, so rebuilding a session refreshed n times costs O(n),
// not O(n²).
func FoldSession(s Session, evs ...Event) Session {
	owned := false // s.previous is this call's own copy
	for _, ev := range evs {
		switch e := ev.(type) {
		case SessionStarted:
			s.id = e.SessionID
			s.exists = true
			s.userID = e.UserID
			s.clientID = e.ClientID
			s.kind = e.Kind
			s.method = e.Method
			s.tokenHash = e.TokenHash
			s.startedAt = e.StartedAt
			s.lastActive = e.StartedAt
			s.idleTimeout = e.IdleTimeout.Duration()
			s.lifetime = e.Lifetime.Duration()
			if e.Scope != nil {
				s.scope, s.scopeSet = *e.Scope, true
			}
			if e.AuthTime != nil {
				s.authTime = *e.AuthTime
			}
			s.dpopJKT = e.DPoPJKT
		case SessionRefreshed:
			if !owned {
				s.previous = maps.Clone(s.previous)
				if s.previous == nil {
					s.previous = make(map[string]struct{})
				}
				owned = true
			}
			s.previous[e.PreviousHash] = struct{}{}
			s.replaced = e.PreviousHash
			if e.Reissued {
				s.replaced = ""
			}
			s.tokenHash = e.TokenHash
			s.generation = e.Generation
			s.lastActive = e.RefreshedAt
		case SessionRevoked:
			s.revoked = true
			s.revokedAt = e.RevokedAt
		case SessionReauthenticated:
			s.authTime = e.ReauthenticatedAt
		}
	}
	return s
}

// StartSession is the command that starts a session for a user.
type StartSession struct {
	SessionID   string
	ClientID    string
	Kind        SessionKind
	Method      string
	TokenHash   string
	IdleTimeout time.Duration
	Lifetime    time.Duration
	Now         time.Time
	// KeyID is the anonymous key signed in with (method anonymous_key).
	KeyID string
	// Device is what the SDK said of the device, if anything.
	Device *Device
	// Scope is the scope granted to a relying party (nil: the SDKs'
	// sessions); AuthTime when the user authenticated, if before Now.
	Scope    *string
	AuthTime time.Time
	// DPoPJKT binds the session to a DPoP key (its thumbprint); "" unbound.
	DPoPJKT string
}

// DecideStartSession checks the command against the user and the (new) session.
func DecideStartSession(u User, s Session, c StartSession) ([]Event, error) {
	switch {
	case c.SessionID == "" || c.ClientID == "" || c.TokenHash == "" || c.Method == "" || c.Now.IsZero():
		return nil, fmt.Errorf("%w: session id, client id, token hash, method and time are required", ErrInvalidCommand)
	case !c.Kind.Valid():
		return nil, fmt.Errorf("%w: unknown session kind %q", ErrInvalidCommand, c.Kind)
	case c.DPoPJKT != "" && !validThumbprint(c.DPoPJKT):
		return nil, fmt.Errorf("%w: a DPoP key thumbprint is 43 base64url characters", ErrInvalidCommand)
	case c.IdleTimeout <= 0 || c.Lifetime <= 0 || c.Lifetime < c.IdleTimeout:
		return nil, fmt.Errorf("%w: lifetime must be positive and not shorter than the idle timeout", ErrInvalidCommand)
	}
	if err := u.CanSignIn(); err != nil {
		return nil, err
	}
	if s.exists {
		return nil, ErrSessionExists
	}
	return []Event{SessionStarted{
		SessionID:   c.SessionID,
		UserID:      u.id,
		ClientID:    c.ClientID,
		Kind:        c.Kind,
		Method:      c.Method,
		TokenHash:   c.TokenHash,
		IdleTimeout: SecondsOf(c.IdleTimeout),
		Lifetime:    SecondsOf(c.Lifetime),
		StartedAt:   c.Now.UTC(),
		KeyID:       c.KeyID,
		Device:      c.Device,
		Scope:       c.Scope,
		AuthTime:    authTimeOf(c.AuthTime, c.Now),
		DPoPJKT:     c.DPoPJKT,
	}}, nil
}

// validThumbprint reports whether t looks like a SHA-256 JWK thumbprint:
// 43 characters of unpadded base64url.
func validThumbprint(t string) bool {
	if len(t) != 43 {
		return false
	}
	for _, r := range t {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// RefreshSession rotates a refresh-token session's token.
type RefreshSession struct {
	ClientID      string
	PresentedHash string
	NewHash       string
	Now           time.Time
	// ReuseInterval is the client's refresh token reuse interval (0: off).
	ReuseInterval time.Duration
	// Retry is set when the command decides again after losing a race
	// with another refresh: the interval never applies then, so of
	// concurrent uses of one token exactly one wins.
	Retry bool
	// DPoPJKT is the thumbprint of the key of the DPoP proof presented with
	// the request (verified by the caller), or "" without a proof.
	DPoPJKT string
}

// DecideRefreshSession rotates the token when the presented one is current.
// Presenting a token that was already rotated away is reuse (RFC 9700 §4.14):
// the whole session is revoked. In that one case the result holds both the
// revocation event, which must be recorded, and ErrRefreshTokenReused.
func DecideRefreshSession(s Session, c RefreshSession) ([]Event, error) {
	if c.PresentedHash == "" || c.NewHash == "" || c.Now.IsZero() {
		return nil, fmt.Errorf("%w: token hashes and time are required", ErrInvalidCommand)
	}
	if !s.exists {
		return nil, ErrInvalidToken
	}
	if s.kind != SessionKindRefreshToken {
		return nil, ErrUnsupportedSessionOp
	}
	if c.ClientID != s.clientID {
		return nil, ErrInvalidToken
	}
	if s.revoked {
		return nil, ErrSessionRevoked
	}
	// A bound session's token is worth nothing without its key: refused
	// before any reuse check, so a stolen token replayed without the key
	// neither rotates nor revokes the session.
	if s.dpopJKT != "" {
		if c.DPoPJKT == "" {
			return nil, ErrDPoPProofRequired
		}
		if subtle.ConstantTimeCompare([]byte(c.DPoPJKT), []byte(s.dpopJKT)) != 1 {
			return nil, ErrDPoPKeyMismatch
		}
	}
	if !s.MatchesToken(c.PresentedHash) {
		if c.ReuseInterval > 0 && !c.Retry && s.replaced != "" && subtle.ConstantTimeCompare([]byte(s.replaced), []byte(c.PresentedHash)) == 1 &&
			c.Now.Before(s.lastActive.Add(c.ReuseInterval)) {
			// The token the latest rotation replaced, within the interval:
			// a client that lost the answer retries. It rotates again; the
			// token of the lost answer is rotated away (and reuse if ever
			// presented).
			if err := s.Check(c.Now, time.Time{}); err != nil {
				return nil, err
			}
			return []Event{SessionRefreshed{SessionID: s.id, UserID: s.userID, PreviousHash: s.tokenHash, TokenHash: c.NewHash,
				Generation: s.generation + 1, RefreshedAt: c.Now.UTC(), Reissued: true}}, nil
		}
		if _, reused := s.previous[c.PresentedHash]; reused {
			return []Event{SessionRevoked{SessionID: s.id, UserID: s.userID, Reason: RevokeReasonTokenReuse, RevokedAt: c.Now.UTC()}}, ErrRefreshTokenReused
		}
		return nil, ErrInvalidToken
	}
	if err := s.Check(c.Now, time.Time{}); err != nil {
		return nil, err
	}
	return []Event{SessionRefreshed{
		SessionID:    s.id,
		UserID:       s.userID,
		PreviousHash: s.tokenHash,
		TokenHash:    c.NewHash,
		Generation:   s.generation + 1,
		RefreshedAt:  c.Now.UTC(),
	}}, nil
}

// RevokeSession ends a session.
type RevokeSession struct {
	Reason string
	Now    time.Time
}

// DecideRevokeSession revokes a live session; revoking an ended or unknown one
// changes nothing, so revocation is idempotent.
func DecideRevokeSession(s Session, c RevokeSession) ([]Event, error) {
	if c.Reason == "" || c.Now.IsZero() {
		return nil, fmt.Errorf("%w: reason and time are required", ErrInvalidCommand)
	}
	if !s.exists || s.revoked {
		return nil, nil
	}
	return []Event{SessionRevoked{SessionID: s.id, UserID: s.userID, Reason: c.Reason, RevokedAt: c.Now.UTC()}}, nil
}

// ReauthenticateSession records that the session's user proved who they
// are again.
type ReauthenticateSession struct {
	UserID string
	Method string
	Now    time.Time
}

// DecideReauthenticateSession checks that the session is live and the
// user's.
func DecideReauthenticateSession(s Session, c ReauthenticateSession) ([]Event, error) {
	switch {
	case c.UserID == "" || c.Method == "" || c.Now.IsZero():
		return nil, fmt.Errorf("%w: user, method and time are required", ErrInvalidCommand)
	case !s.exists:
		return nil, ErrSessionNotFound
	case s.userID != c.UserID:
		return nil, ErrInvalidToken
	}
	if err := s.Check(c.Now, time.Time{}); err != nil {
		return nil, err
	}
	return []Event{SessionReauthenticated{SessionID: s.id, UserID: s.userID, Method: c.Method, ReauthenticatedAt: c.Now.UTC()}}, nil
}

// SignedIn is the record, on the user's subject, of a session the user
// starts after its creation (see UserSignedIn).
func SignedIn(started SessionStarted) UserSignedIn {
	return UserSignedIn{UserID: started.UserID, SessionID: started.SessionID, Method: started.Method, KeyID: started.KeyID,
		SignedInAt: started.StartedAt}
}

// DecideEndSessions ends every session of u that may still be used: the
// sessions given must be those u's events list (SessionIDs), read from the
// log, so none a read model has not seen yet is missed. A session already
// revoked or past its lifetime needs nothing; one idle for longer than its
// timeout is revoked too (a cookie session's last activity is kept outside
// the log, so only revocation is sure to end it).
func DecideEndSessions(u User, sessions []Session, reason string, now time.Time) ([]Event, error) {
	if reason == "" || now.IsZero() {
		return nil, fmt.Errorf("%w: reason and time are required", ErrInvalidCommand)
	}
	var out []Event
	for _, s := range sessions {
		if !s.exists || s.userID != u.id || s.revoked || !now.Before(s.ExpiresAt()) {
			continue
		}
		out = append(out, SessionRevoked{SessionID: s.id, UserID: s.userID, Reason: reason, RevokedAt: now.UTC()})
	}
	return out, nil
}

// authTimeOf is the auth_time to record: only one before the start.
func authTimeOf(at, now time.Time) *time.Time {
	if at.IsZero() || !at.Before(now) {
		return nil
	}
	t := at.UTC()
	return &t
}
