package domain

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Event types of verification and recovery.
const (
	// TypeLoginIDVerified: the user proved a login ID (a code sent to it
	// came back). Written on the user's subject: whether a user is verified
	// is a fact of the user aggregate, read where tokens and user info are.
	TypeLoginIDVerified = "login_id.verified.v1"
	// TypePasswordReset: the user chose a new password with a code sent to
	// a login ID; every session of the user ends with it.
	TypePasswordReset = "user.password.reset.v1"
	// TypePasswordRemoved: a sign-in by a code sent to the login ID of a
	// user none of whose login IDs was verified removed the password:
	// whoever chose it never proved they hold the login ID, so it may be
	// somebody else's, set to wait for the owner (a pre-account takeover).
	// Every session the user had started ends with it.
	TypePasswordRemoved = "user.password.removed.v1"
)

// Sign-in (and verification) methods by one-time code.
const (
	MethodEmailCode = "email_code"
	MethodSMSCode   = "sms_code"
)

// RevokeReasonPasswordReset ends the sessions of a user whose password was
// reset.
const RevokeReasonPasswordReset = "password_reset"

// PasswordReasonReset is the reason of the PasswordSet a reset writes.
const PasswordReasonReset = "reset"

// RevokeReasonPasswordRemoved ends the sessions of a user whose unproven
// password was removed (PasswordRemoved).
const RevokeReasonPasswordRemoved = "password_removed"

// PasswordRemovedUnproven is the reason of a PasswordRemoved: the password
// was chosen before any login ID of the user was proved.
const PasswordRemovedUnproven = "unproven"

// Errors of verification and recovery.
var (
	// ErrNotUsersLoginID: the login ID is not (or no longer) the user's.
	ErrNotUsersLoginID = errors.New("the login ID is not the user's")
	// ErrNoCodeChannel: the login ID cannot receive codes (a username).
	ErrNoCodeChannel = errors.New("this kind of login ID cannot receive codes")
)

// LoginIDVerified: the user proved they hold a login ID.
type LoginIDVerified struct {
	UserID      string `json:"user_id"`
	LoginIDType string `json:"login_id_type"`
	LoginID     string `json:"login_id"`
	// Method is how: MethodEmailCode or MethodSMSCode.
	Method     string    `json:"method"`
	VerifiedAt time.Time `json:"verified_at"`
}

// EventType implements Event.
func (LoginIDVerified) EventType() string { return TypeLoginIDVerified }

// PasswordReset: the user set a new password with a code sent to the login
// ID; the new hash follows in a PasswordSet (reason "reset"), and every
// session the user had started ends with this event.
type PasswordReset struct {
	UserID      string    `json:"user_id"`
	LoginIDType string    `json:"login_id_type"`
	LoginID     string    `json:"login_id"`
	ResetAt     time.Time `json:"reset_at"`
}

// EventType implements Event.
func (PasswordReset) EventType() string { return TypePasswordReset }

// PasswordRemoved: the user's password no longer signs in (see
// TypePasswordRemoved); every session the user had started ends with it.
type PasswordRemoved struct {
	UserID string `json:"user_id"`
	// Reason is PasswordRemovedUnproven.
	Reason    string    `json:"reason"`
	RemovedAt time.Time `json:"removed_at"`
}

// EventType implements Event.
func (PasswordRemoved) EventType() string { return TypePasswordRemoved }

// CodeMethod is the verification method of a login ID type: email by email
// code, phone by SMS code; a username has none.
func CodeMethod(loginIDType string) (string, error) {
	switch loginIDType {
	case "email":
		return MethodEmailCode, nil
	case "phone":
		return MethodSMSCode, nil
	}
	return "", ErrNoCodeChannel
}

func loginKey(typ, value string) string { return typ + ":" + value }

// LoginIDState is one login ID of a user and whether it is proved.
type LoginIDState struct {
	Type, Value string
	Verified    bool
}

// LoginIDs lists the user's login IDs with their verified state.
func (u User) LoginIDs() []LoginIDState {
	if u.loginID == "" {
		return nil
	}
	return []LoginIDState{{Type: u.loginType, Value: u.loginID, Verified: u.LoginIDVerified(u.loginType, u.loginID)}}
}

// LoginIDVerified reports whether the user holds that login ID and proved
// it. A login ID that changed starts unverified: proofs are of values.
func (u User) LoginIDVerified(typ, value string) bool {
	if value == "" || u.loginType != typ || u.loginID != value {
		return false
	}
	return slices.Contains(u.verified, loginKey(typ, value))
}

// IsVerified is Authgear's is_verified: the user has proved at least one of
// its login IDs.
func (u User) IsVerified() bool {
	for _, l := range u.LoginIDs() {
		if l.Verified {
			return true
		}
	}
	return false
}

// holds checks that the login ID is the user's own.
func (u User) holds(typ, value string) error {
	if value == "" || u.loginType != typ || u.loginID != value {
		return ErrNotUsersLoginID
	}
	return nil
}

// DecideVerifyLoginID records that the user proved a login ID it holds; a
// login ID proved already changes nothing.
func DecideVerifyLoginID(u User, typ, value string, now time.Time) ([]Event, error) {
	if now.IsZero() {
		return nil, fmt.Errorf("%w: time is required", ErrInvalidCommand)
	}
	if err := u.CanSignIn(); err != nil {
		return nil, err
	}
	if err := u.holds(typ, value); err != nil {
		return nil, err
	}
	method, err := CodeMethod(typ)
	if err != nil {
		return nil, err
	}
	if u.LoginIDVerified(typ, value) {
		return nil, nil
	}
	return []Event{LoginIDVerified{UserID: u.id, LoginIDType: typ, LoginID: value, Method: method, VerifiedAt: now.UTC()}}, nil
}

// ResetPassword sets a new password with a code sent to a login ID.
type ResetPassword struct {
	LoginIDType, LoginID string
	PasswordHash         string
	Now                  time.Time
}

// DecideResetPassword: a user who can sign in, holding the login ID the
// code went to, gets the new password; the code proved the login ID, so it
// is verified in the same write if it was not, and if it is the user's
// first proof, the identities at upstream providers linked before it are
// unlinked (the caller releases them). The caller ends the
// sessions (the reset's own event ends them in the user's state).
func DecideResetPassword(u User, c ResetPassword) ([]Event, error) {
	if c.PasswordHash == "" || c.Now.IsZero() {
		return nil, fmt.Errorf("%w: password hash and time are required", ErrInvalidCommand)
	}
	if err := u.CanSignIn(); err != nil {
		return nil, err
	}
	if err := u.holds(c.LoginIDType, c.LoginID); err != nil {
		return nil, err
	}
	now := c.Now.UTC()
	evs := []Event{
		PasswordReset{UserID: u.id, LoginIDType: c.LoginIDType, LoginID: c.LoginID, ResetAt: now},
		PasswordSet{UserID: u.id, PasswordHash: c.PasswordHash, Reason: PasswordReasonReset, SetAt: now},
	}
	v, err := DecideVerifyLoginID(u, c.LoginIDType, c.LoginID, now)
	if err != nil {
		return nil, err
	}
	// The first proof of a login ID: identities linked by whoever held
	// the old password go with it (DecideCodeSignIn).
	return append(append(evs, v...), unprovenLinks(u, now)...), nil
}

// DecideCodeSignIn: a user signs in with a code sent to its login ID; the
// code proved it, so the answer is the verification to record with the
// session's start (none when it was verified already). When this is the
// first login ID of the user ever proved and the user has a password, the
// password goes too (PasswordRemoved): it was chosen by somebody who never
// proved they hold the login ID (anyone may sign up with another person's
// address where verification is optional), and it must not keep working
// once the holder signs in; so must the external identities linked while
// it was the way in (UserExternalUnlinked for each). The caller ends the
// user's sessions and releases those identities (ReleaseLost) with it.
// The holder sets a password of their own with a reset.
func DecideCodeSignIn(u User, typ, value string, now time.Time) ([]Event, error) {
	evs, err := DecideVerifyLoginID(u, typ, value, now)
	if err != nil || len(evs) == 0 {
		return evs, err
	}
	if !u.IsVerified() && u.PasswordHash() != "" {
		evs = append(evs, PasswordRemoved{UserID: u.id, Reason: PasswordRemovedUnproven, RemovedAt: now.UTC()})
		evs = append(evs, unprovenLinks(u, now)...)
	}
	return evs, nil
}

// unprovenLinks unlinks the identities at upstream providers of a user
// none of whose login IDs was proved, as the first proof comes (a sign-in
// by code, a reset): whoever held the account's password linked them, and
// that may not be the login ID's holder. The caller releases each
// (ReleaseLost).
func unprovenLinks(u User, now time.Time) []Event {
	if u.IsVerified() {
		return nil
	}
	var evs []Event
	for _, r := range u.externals {
		evs = append(evs, UserExternalUnlinked{UserID: u.id, Provider: r.Provider, Subject: r.Subject, UnlinkedAt: now.UTC()})
	}
	return evs
}
