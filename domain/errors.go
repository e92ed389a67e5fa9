package domain

import "errors"

// Domain errors. The API layer maps each to an HTTP status and a stable
// machine-readable reason in one place (api/httpx/errors.go).
var (
	ErrUnknownEventType   = errors.New("unknown event type")
	ErrUserExists         = errors.New("user already exists")
	ErrUserNotFound       = errors.New("user not found")
	ErrSessionExists      = errors.New("session already exists")
	ErrSessionNotFound    = errors.New("session not found")
	ErrSessionRevoked     = errors.New("session revoked")
	ErrSessionExpired     = errors.New("session expired")
	ErrInvalidToken       = errors.New("invalid token")
	ErrRefreshTokenReused = errors.New("refresh token reused; session revoked")
	// ErrDPoPProofRequired: the session is bound to a DPoP key and the
	// request carried no proof.
	ErrDPoPProofRequired = errors.New("the token is bound to a DPoP key; a DPoP proof is required")
	// ErrDPoPKeyMismatch: the proof was signed by another key than the one
	// the session (or authorization code) is bound to.
	ErrDPoPKeyMismatch      = errors.New("the DPoP proof's key is not the key the token is bound to")
	ErrInvalidCommand       = errors.New("invalid command")
	ErrKeyTaken             = errors.New("the key is already registered to a user")
	ErrNotAnonymous         = errors.New("the user is not anonymous")
	ErrLoginIDTaken         = errors.New("the login ID belongs to another user")
	ErrUserRetired          = errors.New("the user was merged into another account")
	ErrUserExpired          = errors.New("the guest expired")
	ErrUserDisabled         = errors.New("the user is disabled")
	ErrStillActive          = errors.New("the guest is still active")
	ErrUnsupportedSessionOp = errors.New("operation not supported for this session kind")
	// ErrReasonTooLong: an operator's reason is longer than 500 characters.
	ErrReasonTooLong = errors.New("the reason is longer than 500 characters")
)
