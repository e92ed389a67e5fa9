package domain

import (
	"fmt"
	"slices"
	"time"
)

// User is the write-side state of one user, rebuilt from its events. Fields
// are unexported: it changes only through Evolve, and commands read it only
// through Decide functions and accessors.
type User struct {
	id        string
	exists    bool
	anonymous bool
	clientID  string
	createdAt time.Time
	keyIDs    []string
	loginType string
	loginID   string
	pwHash    string
	// verified are the login IDs the user proved ("type:value"): a proof is
	// of a value, so a changed login ID starts unverified.
	verified []string
	promoted time.Time
	mergedTo string
	// Every session the user ever started (user.signed_in.v1, and a guest's
	// first session in its creation), so that a promotion, a disable or a
	// delete ends them all from the log; lastSignIn serves the lifetime
	// rules of guests.
	sessionIDs []string
	// endedBefore: the sessions listed before this index were ended by a
	// promotion or a disable (whatever their own subjects say yet).
	endedBefore int
	// credentials counts the resets and removals of the password: a code
	// issued for the user at another count (an authorization code, a link
	// started) stands for a sign-in that no longer holds.
	credentials int
	lastSignIn  time.Time
	expired     bool
	// externals are the user's external identities (issue 19).
	externals []ExternalRef
	// Set by operators.
	disabled bool
	deleted  bool
}

// LoginID returns the user's login ID type and value, if any.
func (u User) LoginID() (string, string) { return u.loginType, u.loginID }

// PasswordHash returns the user's password hash, if any.
func (u User) PasswordHash() string { return u.pwHash }

// MergedInto is the account a retired guest was merged into.
func (u User) MergedInto() string { return u.mergedTo }

// AnonymousKeyIDs lists the key ids registered to the user (a copy).
func (u User) AnonymousKeyIDs() []string { return slices.Clone(u.keyIDs) }

// UserID returns the user's id (its sub).
func (u User) UserID() string { return u.id }

// ClientID is the client application the user was created by.
func (u User) ClientID() string { return u.clientID }

// Exists reports whether the user has been created.
func (u User) Exists() bool { return u.exists }

// IsAnonymous reports whether the user is a guest.
func (u User) IsAnonymous() bool { return u.anonymous }

// CreatedAt is when the user was created.
func (u User) CreatedAt() time.Time { return u.createdAt }

// CanSignIn reports whether new sessions may start for the user.
func (u User) CanSignIn() error {
	if !u.exists || u.deleted {
		return ErrUserNotFound
	}
	if u.disabled {
		return ErrUserDisabled
	}
	if u.mergedTo != "" {
		return ErrUserRetired
	}
	if u.expired {
		return ErrUserExpired
	}
	return nil
}

// SessionEnded reports whether the user's own events ended the session: a
// promotion or a disable ends every session the user had started until
// then, in the one event, so no session of the guest (or of the disabled
// user) works again, however many there are and whether or not each
// session's own revocation is written yet.
func (u User) SessionEnded(sessionID string) bool {
	i := slices.Index(u.sessionIDs, sessionID)
	return i >= 0 && i < u.endedBefore
}

// CredentialEpoch counts the password's resets and removals
// (PasswordReset, PasswordRemoved). What was issued on the strength of a
// sign-in (an authorization code, a link to an identity provider) records
// it, and is refused at another: the sign-in it stood for no longer holds.
func (u User) CredentialEpoch() int { return u.credentials }

// LiveSessionIDs are the sessions the user started after its last
// promotion or disable (a copy).
func (u User) LiveSessionIDs() []string { return slices.Clone(u.sessionIDs[u.endedBefore:]) }

// EvolveUser applies one event to the state. Events of other aggregates are
// ignored, so a caller may fold a mixed list.
func EvolveUser(u User, ev Event) User { return FoldUser(u, ev) }

// FoldUser applies events in order, as EvolveUser one at a time. States are
// values that may be shared, so the lists of sessions and keys are copied
// before they are written; FoldUser copies each once per call, so rebuilding
// a guest that signed in n times costs O(n), not O(n²).
func FoldUser(u User, evs ...Event) User {
	ownSessions, ownKeys := false, false // the lists are this call's own copies
	for _, ev := range evs {
		switch e := ev.(type) {
		case AnonymousUserCreated:
			u.id = e.UserID
			u.exists = true
			u.anonymous = true
			u.clientID = e.ClientID
			u.createdAt = e.CreatedAt
			u.lastSignIn = e.CreatedAt
			if e.SessionID != "" {
				u.sessionIDs, ownSessions = []string{e.SessionID}, true
			}
		case UserSignedIn:
			if !ownSessions {
				u.sessionIDs, ownSessions = slices.Clone(u.sessionIDs), true
			}
			u.sessionIDs = append(u.sessionIDs, e.SessionID)
			u.lastSignIn = e.SignedInAt
		case AnonymousUserExpired:
			u.expired = true
		case AnonymousKeyRegistered:
			if !ownKeys {
				u.keyIDs, ownKeys = slices.Clone(u.keyIDs), true
			}
			u.keyIDs = append(u.keyIDs, e.KeyID)
		case AnonymousKeyRemoved:
			var keep []string
			for _, k := range u.keyIDs {
				if k != e.KeyID {
					keep = append(keep, k)
				}
			}
			u.keyIDs, ownKeys = keep, true
		case UserPromoted:
			u.endedBefore = len(u.sessionIDs)
			u.anonymous = false
			if u.loginType != e.LoginIDType || u.loginID != e.LoginID {
				u.verified = nil // a changed login ID starts unverified
			}
			u.loginType, u.loginID = e.LoginIDType, e.LoginID
			u.promoted = e.PromotedAt
		case UserRegistered:
			u.id, u.exists, u.anonymous, u.clientID, u.createdAt = e.UserID, true, false, e.ClientID, e.RegisteredAt
			u.loginType, u.loginID = e.LoginIDType, e.LoginID
		case PasswordSet:
			u.pwHash = e.PasswordHash
		case LoginIDVerified:
			if k := loginKey(e.LoginIDType, e.LoginID); !slices.Contains(u.verified, k) {
				u.verified = append(slices.Clone(u.verified), k)
			}
		case PasswordReset:
			u.endedBefore = len(u.sessionIDs)
			u.credentials++
		case PasswordRemoved:
			u.pwHash = ""
			u.endedBefore = len(u.sessionIDs)
			u.credentials++
		case AnonymousUserMerged:
			u.mergedTo = e.IntoUserID
		case UserDisabled:
			u.endedBefore = len(u.sessionIDs)
			u.disabled = true
		case UserEnabled:
			u.disabled = false
		case UserExternalLinked, UserExternalUnlinked:
			u = foldExternal(u, ev)
		case UserDeleted:
			u.deleted = true
			u.loginType, u.loginID, u.pwHash, u.verified = "", "", "", nil
			u.externals = nil
		}
	}
	return u
}

// CreateAnonymousUser is the command that creates a guest.
type CreateAnonymousUser struct {
	UserID   string
	ClientID string
	// SessionID is the first session, started in the same write.
	SessionID string
	Now       time.Time
}

// DecideCreateAnonymousUser checks the command against the state. The
// caller names the first session in the event (SessionID) when it starts one
// in the same write.
func DecideCreateAnonymousUser(u User, c CreateAnonymousUser) ([]Event, error) {
	if c.UserID == "" || c.ClientID == "" || c.Now.IsZero() {
		return nil, fmt.Errorf("%w: user id, client id and time are required", ErrInvalidCommand)
	}
	if u.exists {
		return nil, ErrUserExists
	}
	return []Event{AnonymousUserCreated{UserID: c.UserID, ClientID: c.ClientID, CreatedAt: c.Now.UTC(), SessionID: c.SessionID}}, nil
}
