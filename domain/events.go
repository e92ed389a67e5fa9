// Package domain holds idstream's aggregates in decide/evolve form: commands
// are checked against state rebuilt from events, and the outcome is a list of
// new events. It imports neither NATS nor SQL, so every rule is testable as
// "given these events, when this command, then these events or this error".
package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// Event is something that happened to an aggregate. Its type name is a stable,
// versioned string that is written to the log; it is never derived from the Go
// type name, and a published type name is never renamed or reused.
type Event interface {
	EventType() string
}

// Stable event type names. Once an event of a type has been written, the name
// and the meaning of its fields stay as they are; a changed shape gets a new
// version and an upcaster from the old one.
const (
	TypeAnonymousUserCreated   = "user.anonymous.created.v1"
	TypeSessionStarted         = "session.started.v1"
	TypeSessionRefreshed       = "session.refreshed.v1"
	TypeSessionRevoked         = "session.revoked.v1"
	TypeSessionReauthenticated = "session.reauthenticated.v1"
	TypeAnonymousKeyRegistered = "user.anonymous_key.registered.v1"
	TypeAnonymousKeyClaimed    = "anonymous_key.claimed.v1"
	TypeUserPromoted           = "user.promoted.v2"
	TypeUserRegistered         = "user.registered.v1"
	TypePasswordSet            = "user.password.set.v1"
	TypeAnonymousKeyRemoved    = "user.anonymous_key.removed.v1"
	TypeAnonymousUserMerged    = "user.anonymous.merged.v1"
	TypeLoginIDClaimed         = "login_id.claimed.v1"
	TypeUserSignedIn           = "user.signed_in.v1"
	TypeAnonymousUserExpired   = "user.anonymous.expired.v1"
	TypeUserDisabled           = "user.disabled.v1"
	TypeUserEnabled            = "user.enabled.v1"
	TypeUserDeleted            = "user.deleted.v1"
	TypeLoginIDReleased        = "login_id.released.v1"
	// TypeLoginIDVerified and TypePasswordReset: see verification.go.
)

// Retired event type names: no longer written, but events of these types are
// in the log for good. DecodeEvent upcasts each to the current version of its
// event (see upcast.go).
const (
	// TypeUserPromotedV1 was written until user.promoted.v2 added the guest's
	// client and sign-in method.
	TypeUserPromotedV1 = "user.promoted.v1"
)

// AnonymousUserCreated: a guest got a real user with a stable sub.
type AnonymousUserCreated struct {
	UserID    string    `json:"user_id"`
	ClientID  string    `json:"client_id"`
	CreatedAt time.Time `json:"created_at"`
	// SessionID is the guest's first session, started in the same write.
	SessionID string `json:"session_id,omitempty"`
}

// EventType implements Event.
func (AnonymousUserCreated) EventType() string { return TypeAnonymousUserCreated }

// SessionStarted: a user signed in (or was created) and got a session. The
// session's timeouts are fixed here, so a later change of the client's settings
// applies to new sessions only.
type SessionStarted struct {
	SessionID   string      `json:"session_id"`
	UserID      string      `json:"user_id"`
	ClientID    string      `json:"client_id"`
	Kind        SessionKind `json:"kind"`
	Method      string      `json:"method"`
	TokenHash   string      `json:"token_hash"`
	IdleTimeout Seconds     `json:"idle_timeout_seconds"`
	Lifetime    Seconds     `json:"lifetime_seconds"`
	StartedAt   time.Time   `json:"started_at"`
	// KeyID is the anonymous key used to sign in (method anonymous_key).
	KeyID string `json:"key_id,omitempty"`
	// Device is what a mobile SDK said of the device and app, if anything.
	Device *Device `json:"device,omitempty"`
	// Scope is the scope the relying party was granted (the authorization
	// code flow); absent on the SDKs' own sessions, which are OpenID
	// sessions (LegacyScope).
	Scope *string `json:"scope,omitempty"`
	// AuthTime is when the user last authenticated, when that was before
	// the session started (a prompt=none authorization on an existing
	// session); absent: StartedAt.
	AuthTime *time.Time `json:"auth_time,omitempty"`
	// DPoPJKT is the thumbprint (RFC 7638, SHA-256, base64url) of the DPoP
	// key the session is bound to (RFC 9449): its refresh token works only
	// with a proof signed by that key, and its access tokens carry it as
	// cnf.jkt. Empty for an unbound session.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
}

// Device is what a mobile SDK says of the device and the app a session runs
// on (its device_info), summed up and bounded; an empty field is unknown.
type Device struct {
	Model      string `json:"model,omitempty"`
	OS         string `json:"os,omitempty"`
	AppVersion string `json:"app_version,omitempty"`
}

// EventType implements Event.
func (SessionStarted) EventType() string { return TypeSessionStarted }

// SessionRefreshed: the session's refresh token was rotated. Only hashes of
// tokens are ever recorded.
type SessionRefreshed struct {
	SessionID    string    `json:"session_id"`
	UserID       string    `json:"user_id"`
	PreviousHash string    `json:"previous_token_hash"`
	TokenHash    string    `json:"token_hash"`
	Generation   int       `json:"generation"`
	RefreshedAt  time.Time `json:"refreshed_at"`
	// Reissued: a retry presented the token the previous rotation replaced
	// within the client's reuse interval; the previous token (the lost
	// answer's) was never received, and is not given that grace itself.
	Reissued bool `json:"reissued,omitempty"`
}

// EventType implements Event.
func (SessionRefreshed) EventType() string { return TypeSessionRefreshed }

// Revocation reasons recorded in SessionRevoked.
const (
	RevokeReasonLogout       = "logout"
	RevokeReasonRevoked      = "revoked"
	RevokeReasonTokenReuse   = "refresh_token_reuse"
	RevokeReasonAdminRevoked = "admin"
	RevokeReasonPromoted     = "promoted"
	RevokeReasonMerged       = "merged"
	RevokeReasonCodeReuse    = "authorization_code_reuse"
	RevokeReasonUserExpired  = "user_expired"
)

// SessionRevoked: the session ended before its time; its tokens stop working.
type SessionRevoked struct {
	SessionID string    `json:"session_id"`
	UserID    string    `json:"user_id"`
	Reason    string    `json:"reason"`
	RevokedAt time.Time `json:"revoked_at"`
}

// EventType implements Event.
func (SessionRevoked) EventType() string { return TypeSessionRevoked }

// SessionReauthenticated: the user proved who they are again for a live
// session (an OpenID re-authentication: an authorization with the session's
// ID token as id_token_hint, exchanged by the session's client). The
// session's auth_time is now ReauthenticatedAt; its refresh token is
// unchanged.
type SessionReauthenticated struct {
	SessionID         string    `json:"session_id"`
	UserID            string    `json:"user_id"`
	Method            string    `json:"method"`
	ReauthenticatedAt time.Time `json:"reauthenticated_at"`
}

// EventType implements Event.
func (SessionReauthenticated) EventType() string { return TypeSessionReauthenticated }

// AnonymousKeyRegistered: a device's public key became a way to sign in to a
// guest (recorded on the user).
type AnonymousKeyRegistered struct {
	UserID       string          `json:"user_id"`
	KeyID        string          `json:"key_id"`
	Algorithm    string          `json:"alg"`
	JWK          json.RawMessage `json:"jwk"`
	Thumbprint   string          `json:"thumbprint"`
	RegisteredAt time.Time       `json:"registered_at"`
}

// EventType implements Event.
func (AnonymousKeyRegistered) EventType() string { return TypeAnonymousKeyRegistered }

// AnonymousKeyClaimed: a key id (or a key thumbprint) now belongs to a user.
// It is written on the key's own subject with expected sequence 0, which makes
// "one key, one user" a write-side invariant. The key itself is kept here so
// that a sign-in reads one subject to verify a signature.
type AnonymousKeyClaimed struct {
	KeyID      string          `json:"key_id"`
	UserID     string          `json:"user_id"`
	Algorithm  string          `json:"alg"`
	JWK        json.RawMessage `json:"jwk"`
	Thumbprint string          `json:"thumbprint"`
	ClaimedAt  time.Time       `json:"claimed_at"`
}

// EventType implements Event.
func (AnonymousKeyClaimed) EventType() string { return TypeAnonymousKeyClaimed }

// Seconds is a duration recorded as whole seconds in events, so the JSON stays
// readable by consumers in any language.
type Seconds int64

// Duration converts to a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) * time.Second }

// SecondsOf converts a duration, rounding down to whole seconds.
func SecondsOf(d time.Duration) Seconds { return Seconds(d / time.Second) }

// UnmarshalYAML reads a duration as configuration files write it ("30m",
// "720h"), through the YAML decoder's older Unmarshaler interface, so this
// package imports no YAML library.
func (s *Seconds) UnmarshalYAML(unmarshal func(any) error) error {
	var text string
	if err := unmarshal(&text); err != nil {
		return err
	}
	d, err := time.ParseDuration(text)
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. 30m, 720h): %w", text, err)
	}
	*s = SecondsOf(d)
	return nil
}

// EventTypes lists every event type the domain can emit, in catalogue order.
func EventTypes() []string {
	return []string{TypeAnonymousUserCreated, TypeAnonymousKeyRegistered, TypeAnonymousKeyClaimed,
		TypeUserPromoted, TypeUserRegistered, TypePasswordSet, TypeAnonymousKeyRemoved, TypeAnonymousUserMerged,
		TypeLoginIDClaimed, TypeUserSignedIn, TypeAnonymousUserExpired, TypeUserDisabled, TypeUserEnabled, TypeUserDeleted,
		TypeLoginIDReleased, TypeLoginIDVerified, TypePasswordReset, TypePasswordRemoved, TypeExternalIdentityClaimed, TypeExternalIdentityReleased,
		TypeUserExternalLinked, TypeUserExternalUnlinked, TypeSessionStarted, TypeSessionRefreshed, TypeSessionRevoked, TypeSessionReauthenticated,
		TypeSettingsChanged}
}

// RetiredEventTypes lists the event types that are no longer written but are
// still read: DecodeEvent turns each into the current version of its event.
func RetiredEventTypes() []string {
	return []string{TypeUserPromotedV1}
}

// DecodeEvent turns a stored payload of the named type into its event. Old
// versions of a type are upcast here, so the rest of the code only sees the
// current shape.
func DecodeEvent(eventType string, data []byte) (Event, error) {
	return decodeEvent(eventType, data, unmarshalPayload)
}

// decodeEvent is DecodeEvent with the JSON decoder to use (the tests compare
// unmarshalPayload's results with encoding/json's).
func decodeEvent(eventType string, data []byte, u unmarshaler) (Event, error) {
	var ev Event
	switch eventType {
	case TypeAnonymousUserCreated:
		ev = decodeAs[AnonymousUserCreated](data, u)
	case TypeSessionStarted:
		ev = decodeAs[SessionStarted](data, u)
	case TypeSessionRefreshed:
		ev = decodeAs[SessionRefreshed](data, u)
	case TypeSessionRevoked:
		ev = decodeAs[SessionRevoked](data, u)
	case TypeSessionReauthenticated:
		ev = decodeAs[SessionReauthenticated](data, u)
	case TypeAnonymousKeyRegistered:
		ev = decodeAs[AnonymousKeyRegistered](data, u)
	case TypeAnonymousKeyClaimed:
		ev = decodeAs[AnonymousKeyClaimed](data, u)
	case TypeUserPromoted:
		ev = decodeAs[UserPromoted](data, u)
	case TypeUserPromotedV1:
		ev = upcastFrom(data, u, userPromotedV1.upcast)
	case TypeUserRegistered:
		ev = decodeAs[UserRegistered](data, u)
	case TypePasswordSet:
		ev = decodeAs[PasswordSet](data, u)
	case TypeAnonymousKeyRemoved:
		ev = decodeAs[AnonymousKeyRemoved](data, u)
	case TypeAnonymousUserMerged:
		ev = decodeAs[AnonymousUserMerged](data, u)
	case TypeLoginIDClaimed:
		ev = decodeAs[LoginIDClaimed](data, u)
	case TypeUserSignedIn:
		ev = decodeAs[UserSignedIn](data, u)
	case TypeAnonymousUserExpired:
		ev = decodeAs[AnonymousUserExpired](data, u)
	case TypeUserDisabled:
		ev = decodeAs[UserDisabled](data, u)
	case TypeUserEnabled:
		ev = decodeAs[UserEnabled](data, u)
	case TypeUserDeleted:
		ev = decodeAs[UserDeleted](data, u)
	case TypeLoginIDReleased:
		ev = decodeAs[LoginIDReleased](data, u)
	case TypeSettingsChanged:
		ev = decodeAs[SettingsChanged](data, u)
	case TypeLoginIDVerified:
		ev = decodeAs[LoginIDVerified](data, u)
	case TypePasswordReset:
		ev = decodeAs[PasswordReset](data, u)
	case TypePasswordRemoved:
		ev = decodeAs[PasswordRemoved](data, u)
	case TypeExternalIdentityClaimed:
		ev = decodeAs[ExternalIdentityClaimed](data, u)
	case TypeExternalIdentityReleased:
		ev = decodeAs[ExternalIdentityReleased](data, u)
	case TypeUserExternalLinked:
		ev = decodeAs[UserExternalLinked](data, u)
	case TypeUserExternalUnlinked:
		ev = decodeAs[UserExternalUnlinked](data, u)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnknownEventType, eventType)
	}
	if e, ok := ev.(decodeError); ok {
		return nil, fmt.Errorf("decode %s: %w", eventType, e.err)
	}
	return ev, nil
}

type decodeError struct{ err error }

func (decodeError) EventType() string { return "" }

func decodeAs[T Event](data []byte, u unmarshaler) Event {
	var v T
	if err := u(data, &v); err != nil {
		return decodeError{err}
	}
	return v
}
