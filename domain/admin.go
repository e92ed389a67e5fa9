package domain

import (
	"fmt"
	"time"
)

// Reasons recorded when an operator ends a user's sessions.
const (
	RevokeReasonUserDisabled = "user_disabled"
	RevokeReasonUserDeleted  = "user_deleted"
)

// UserDisabled: an operator stopped the user from signing in. Every token of
// the user stops working at once (each use checks the user), and the user's
// sessions are revoked.
type UserDisabled struct {
	UserID     string    `json:"user_id"`
	Reason     string    `json:"reason,omitempty"`
	DisabledAt time.Time `json:"disabled_at"`
}

// EventType implements Event.
func (UserDisabled) EventType() string { return TypeUserDisabled }

// UserEnabled: a disabled user may sign in again (old sessions stay revoked).
type UserEnabled struct {
	UserID    string    `json:"user_id"`
	EnabledAt time.Time `json:"enabled_at"`
}

// EventType implements Event.
func (UserEnabled) EventType() string { return TypeUserEnabled }

// UserDeleted: an operator deleted the user. The sub is never reused; its
// login ID is released (LoginIDReleased on the login ID's subject, in the
// same write) and its device keys removed.
type UserDeleted struct {
	UserID    string    `json:"user_id"`
	Reason    string    `json:"reason,omitempty"`
	DeletedAt time.Time `json:"deleted_at"`
}

// EventType implements Event.
func (UserDeleted) EventType() string { return TypeUserDeleted }

// LoginIDReleased: a login ID no longer belongs to anyone and may be claimed
// again (written on the login ID's subject; the next claim expects it).
type LoginIDReleased struct {
	LoginIDType string    `json:"login_id_type"`
	LoginID     string    `json:"login_id"`
	UserID      string    `json:"user_id"`
	ReleasedAt  time.Time `json:"released_at"`
}

// EventType implements Event.
func (LoginIDReleased) EventType() string { return TypeLoginIDReleased }

// DecideDisable disables a user; disabling a disabled user changes nothing.
func DecideDisable(u User, reason string, now time.Time) ([]Event, error) {
	if err := u.adminTarget(now); err != nil {
		return nil, err
	}
	if len(reason) > 500 {
		return nil, ErrReasonTooLong
	}
	if u.disabled {
		return nil, nil
	}
	return []Event{UserDisabled{UserID: u.id, Reason: reason, DisabledAt: now.UTC()}}, nil
}

// DecideEnable lets a disabled user sign in again.
func DecideEnable(u User, now time.Time) ([]Event, error) {
	if err := u.adminTarget(now); err != nil {
		return nil, err
	}
	if !u.disabled {
		return nil, nil
	}
	return []Event{UserEnabled{UserID: u.id, EnabledAt: now.UTC()}}, nil
}

// Deletion is the outcome of deleting a user: the user's events and, when it
// held one, the release of its login ID (for the login ID's subject).
type Deletion struct {
	User    []Event
	Release Event
}

// DecideDelete deletes a user: keys removed, login ID released, user gone.
// The login ID state must be the one the user holds.
func DecideDelete(u User, l LoginID, reason string, now time.Time) (Deletion, error) {
	if err := u.adminTarget(now); err != nil {
		return Deletion{}, err
	}
	if len(reason) > 500 {
		return Deletion{}, ErrReasonTooLong
	}
	now = now.UTC()
	var d Deletion
	for _, kid := range u.keyIDs {
		d.User = append(d.User, AnonymousKeyRemoved{UserID: u.id, KeyID: kid, RemovedAt: now})
	}
	d.User = append(d.User, UserDeleted{UserID: u.id, Reason: reason, DeletedAt: now})
	if u.loginID != "" && l.claimed && l.userID == u.id {
		d.Release = LoginIDReleased{LoginIDType: u.loginType, LoginID: u.loginID, UserID: u.id, ReleasedAt: now}
	}
	return d, nil
}

// adminTarget: operators act on users that exist and are not deleted.
func (u User) adminTarget(now time.Time) error {
	if now.IsZero() {
		return fmt.Errorf("%w: time is required", ErrInvalidCommand)
	}
	if !u.exists || u.deleted {
		return ErrUserNotFound
	}
	return nil
}

// Disabled reports whether an operator disabled the user.
func (u User) Disabled() bool { return u.disabled }

// Deleted reports whether an operator deleted the user.
func (u User) Deleted() bool { return u.deleted }
