package domain

import (
	"fmt"
	"slices"
	"time"
)

// UserSignedIn: a user started a session after its creation (a device
// signing in with its key, a password sign-in, a promotion, a code
// exchange). It is written on the user's subject, with the user's expected
// version, in the same atomic append as the session's start: a sign-in and a
// promotion, disable, delete or expiry of the same user are strictly ordered
// (one of them sees the other), and the user's events list every session it
// has, so "every session of the user" is read from the log.
type UserSignedIn struct {
	UserID     string    `json:"user_id"`
	SessionID  string    `json:"session_id"`
	Method     string    `json:"method"`
	KeyID      string    `json:"key_id,omitempty"`
	SignedInAt time.Time `json:"signed_in_at"`
}

// EventType implements Event.
func (UserSignedIn) EventType() string { return TypeUserSignedIn }

// Expiry reasons.
const (
	ExpiryNoLiveSession = "no_live_session"
	ExpiryInactiveKey   = "inactive_key"
)

// AnonymousUserExpired: an idle guest was retired by the reaper. Its sub is
// never reused; its sessions and keys stop working.
type AnonymousUserExpired struct {
	UserID         string    `json:"user_id"`
	Reason         string    `json:"reason"`
	LastActivityAt time.Time `json:"last_activity_at"`
	ExpiredAt      time.Time `json:"expired_at"`
}

// EventType implements Event.
func (AnonymousUserExpired) EventType() string { return TypeAnonymousUserExpired }

// LifetimeRules say when guests expire.
type LifetimeRules struct {
	// WebGuestGrace: a guest without a key expires once it has had no live
	// session for this long.
	WebGuestGrace time.Duration
	// KeyGuestInactivity: a guest with a key expires this long after it was
	// last active: its last sign-in, or the last use (a refresh, a cookie
	// request) of any of its sessions; 0 means never.
	KeyGuestInactivity time.Duration
}

// SessionActivity is a session with the activity known outside the log.
type SessionActivity struct {
	Session  Session
	Activity time.Time
}

// LiveUntil is when a session stops being usable: revocation, lifetime or
// idle timeout, whichever comes first. Liveness is monotonic: a session that
// is dead never comes back, so a decision that it is dead cannot be undone by
// a concurrent refresh.
func (s Session) LiveUntil(activity time.Time) time.Time {
	if s.revoked {
		return s.revokedAt
	}
	last := s.lastActive
	if activity.After(last) {
		last = activity
	}
	end := last.Add(s.idleTimeout)
	if exp := s.ExpiresAt(); exp.Before(end) {
		end = exp
	}
	return end
}

// SessionIDs are the sessions the user's events list (a guest's first
// session and every later sign-in), a copy: states are values, shared
// between readers.
func (u User) SessionIDs() []string { return slices.Clone(u.sessionIDs) }

// Expired reports whether the guest expired.
func (u User) Expired() bool { return u.expired }

// LastSignIn is the guest's last sign-in (its creation at first).
func (u User) LastSignIn() time.Time { return u.lastSignIn }

// Expiry is the outcome of DecideExpire.
type Expiry struct {
	Events []Event
	// Sessions to revoke (live ones of a key guest expired for inactivity).
	Revoke []string
	// NotBefore is, when the guest is still active, the earliest time it
	// could expire; zero if never.
	NotBefore time.Time
}

// DecideExpire applies the lifetime rules to a guest. sessions must be all of
// the guest's sessions, read from the log. A promoted, merged, deleted or
// already expired user yields no events (expiry is idempotent; nothing
// follows a deletion on the user's subject).
func DecideExpire(u User, sessions []SessionActivity, rules LifetimeRules, now time.Time) (Expiry, error) {
	if !u.exists {
		return Expiry{}, ErrUserNotFound
	}
	if !u.anonymous || u.expired || u.mergedTo != "" || u.deleted {
		return Expiry{}, nil
	}
	expire := func(reason string, last time.Time) Expiry {
		x := Expiry{Events: []Event{AnonymousUserExpired{UserID: u.id, Reason: reason, LastActivityAt: last.UTC(), ExpiredAt: now.UTC()}}}
		for _, s := range sessions {
			if s.Session.Check(now, s.Activity) == nil {
				x.Revoke = append(x.Revoke, s.Session.id)
			}
		}
		return x
	}
	deadSince, lastActive := u.createdAt, u.createdAt
	for _, s := range sessions {
		until := s.Session.LiveUntil(s.Activity)
		if until.After(deadSince) {
			deadSince = until
		}
		if a := maxTime(s.Session.lastActive, s.Activity); a.After(lastActive) {
			lastActive = a
		}
	}
	if len(u.keyIDs) > 0 {
		if rules.KeyGuestInactivity <= 0 {
			return Expiry{}, fmt.Errorf("%w: key guests never expire", ErrStillActive)
		}
		// A device that signed in once and has refreshed its session since
		// is in use: activity is the later of the two.
		last := maxTime(u.lastSignIn, lastActive)
		due := last.Add(rules.KeyGuestInactivity)
		if now.Before(due) {
			return Expiry{NotBefore: due}, ErrStillActive
		}
		return expire(ExpiryInactiveKey, last), nil
	}
	// A web guest is reachable only through its sessions.
	due := deadSince.Add(rules.WebGuestGrace)
	if now.Before(due) {
		return Expiry{NotBefore: due}, ErrStillActive
	}
	return expire(ExpiryNoLiveSession, lastActive), nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
