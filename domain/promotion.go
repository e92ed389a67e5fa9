package domain

import (
	"fmt"
	"time"
)

// Sign-in methods of regular users.
const (
	MethodPassword  = "password"
	MethodPromotion = "promotion"
)

// UserPromoted: a guest became a regular user with a login ID. The sub does
// not change; analytics join activity before and after on it. Written as
// user.promoted.v2; a stored user.promoted.v1 decodes to it too, with
// ClientID empty and GuestMethod GuestMethodUnknown (see upcast.go).
type UserPromoted struct {
	UserID string `json:"user_id"`
	// ClientID is the client application the guest was created by, so
	// conversions per application need no join with the guest's creation.
	ClientID string `json:"client_id"`
	// GuestMethod is how the guest signed in until now: MethodAnonymous (a
	// web guest, its session only) or MethodAnonymousKey (a device key pair).
	GuestMethod string `json:"guest_method"`
	// Method is what the guest became a user with: MethodLoginID (a
	// login ID, with a password or codes) or MethodExternal (an external
	// identity of Provider; no login ID). Absent in events written before
	// issue 19: MethodLoginID.
	Method         string    `json:"method,omitempty"`
	Provider       string    `json:"provider,omitempty"`
	LoginIDType    string    `json:"login_id_type,omitempty"`
	LoginID        string    `json:"login_id,omitempty"`
	GuestCreatedAt time.Time `json:"guest_created_at"`
	PromotedAt     time.Time `json:"promoted_at"`
}

// GuestMethodUnknown is the GuestMethod of a promotion recorded before
// user.promoted.v2; it is never written.
const GuestMethodUnknown = "unknown"

// guestMethod is how a guest signs in: a guest with a device key is a
// key-pair guest (the same rule as the lifetime rules use).
func (u User) guestMethod() string {
	if len(u.keyIDs) > 0 {
		return MethodAnonymousKey
	}
	return MethodAnonymous
}

// EventType implements Event.
func (UserPromoted) EventType() string { return TypeUserPromoted }

// UserRegistered: a regular user signed up directly (never a guest).
type UserRegistered struct {
	UserID   string `json:"user_id"`
	ClientID string `json:"client_id"`
	// Method and Provider: as in UserPromoted.
	Method       string    `json:"method,omitempty"`
	Provider     string    `json:"provider,omitempty"`
	LoginIDType  string    `json:"login_id_type,omitempty"`
	LoginID      string    `json:"login_id,omitempty"`
	RegisteredAt time.Time `json:"registered_at"`
}

// EventType implements Event.
func (UserRegistered) EventType() string { return TypeUserRegistered }

// PasswordSet: the user's password hash (argon2id, PHC string). Hashes live
// in the log: it is the source of truth for credentials.
type PasswordSet struct {
	UserID       string    `json:"user_id"`
	PasswordHash string    `json:"password_hash"`
	Reason       string    `json:"reason"`
	SetAt        time.Time `json:"set_at"`
}

// EventType implements Event.
func (PasswordSet) EventType() string { return TypePasswordSet }

// AnonymousKeyRemoved: a promoted guest's device key no longer signs in.
type AnonymousKeyRemoved struct {
	UserID    string    `json:"user_id"`
	KeyID     string    `json:"key_id"`
	RemovedAt time.Time `json:"removed_at"`
}

// EventType implements Event.
func (AnonymousKeyRemoved) EventType() string { return TypeAnonymousKeyRemoved }

// AnonymousUserMerged: a guest signed in to an existing account instead of
// promoting (conflict policy "login"); the guest is retired and linked to the
// account, so analytics can join both subs.
type AnonymousUserMerged struct {
	GuestID    string    `json:"guest_id"`
	IntoUserID string    `json:"into_user_id"`
	MergedAt   time.Time `json:"merged_at"`
}

// EventType implements Event.
func (AnonymousUserMerged) EventType() string { return TypeAnonymousUserMerged }

// LoginIDClaimed: a login ID now belongs to a user. Written on the login
// ID's own subject with expected sequence 0 (a write-side invariant).
type LoginIDClaimed struct {
	LoginIDType string    `json:"login_id_type"`
	LoginID     string    `json:"login_id"`
	UserID      string    `json:"user_id"`
	ClaimedAt   time.Time `json:"claimed_at"`
}

// EventType implements Event.
func (LoginIDClaimed) EventType() string { return TypeLoginIDClaimed }

// LoginID is the write-side state of one login ID.
type LoginID struct {
	claimed bool
	userID  string
}

// Claimed reports whether the login ID belongs to a user.
func (l LoginID) Claimed() bool { return l.claimed }

// UserID is the owner.
func (l LoginID) UserID() string { return l.userID }

// EvolveLoginID applies one event.
func EvolveLoginID(l LoginID, ev Event) LoginID {
	switch e := ev.(type) {
	case LoginIDClaimed:
		l = LoginID{claimed: true, userID: e.UserID}
	case LoginIDReleased:
		l = LoginID{}
	}
	return l
}

// Promote turns a guest into a regular user.
type Promote struct {
	LoginIDType  string
	LoginID      string
	PasswordHash string
	// Passwordless: the user signs in with codes sent to the login ID
	// (PasswordHash empty).
	Passwordless bool
	// Verified: a code sent to the login ID came back in this promotion,
	// so its verification is part of the same write.
	Verified bool
	Now      time.Time
}

// Promotion is the outcome of a promotion: the user's events and the claim
// for the login ID's subject.
type Promotion struct {
	User  []Event
	Claim Event
}

// DecidePromote: only a live guest can be promoted, and only to a login ID
// nobody holds. Device keys stop signing in.
func DecidePromote(u User, l LoginID, c Promote) (Promotion, error) {
	if c.LoginIDType == "" || c.LoginID == "" || (c.PasswordHash == "") != c.Passwordless || c.Now.IsZero() {
		return Promotion{}, fmt.Errorf("%w: login ID, password hash (or passwordless) and time are required", ErrInvalidCommand)
	}
	method, err := codeProof("promotion", c.LoginIDType, c.Passwordless, c.Verified)
	if err != nil {
		return Promotion{}, err
	}
	if err := u.CanSignIn(); err != nil {
		return Promotion{}, err
	}
	if !u.anonymous {
		return Promotion{}, ErrNotAnonymous
	}
	if l.claimed {
		return Promotion{}, ErrLoginIDTaken
	}
	now := c.Now.UTC()
	evs := []Event{
		UserPromoted{UserID: u.id, ClientID: u.clientID, GuestMethod: u.guestMethod(), Method: MethodLoginID, LoginIDType: c.LoginIDType, LoginID: c.LoginID,
			GuestCreatedAt: u.createdAt, PromotedAt: now},
	}
	if c.PasswordHash != "" {
		evs = append(evs, PasswordSet{UserID: u.id, PasswordHash: c.PasswordHash, Reason: "promotion", SetAt: now})
	}
	if c.Verified {
		evs = append(evs, LoginIDVerified{UserID: u.id, LoginIDType: c.LoginIDType, LoginID: c.LoginID, Method: method, VerifiedAt: now})
	}
	for _, kid := range u.keyIDs {
		evs = append(evs, AnonymousKeyRemoved{UserID: u.id, KeyID: kid, RemovedAt: now})
	}
	return Promotion{User: evs, Claim: LoginIDClaimed{LoginIDType: c.LoginIDType, LoginID: c.LoginID, UserID: u.id, ClaimedAt: now}}, nil
}

// codeProof is the rule of an account made with a code: without a password
// (passwordless) the login ID must have been proved by it (verified); a
// verified one is by the code's method (email_code, sms_code; no other
// type takes codes). Empty: not verified.
func codeProof(kind, loginIDType string, passwordless, verified bool) (string, error) {
	if passwordless && !verified {
		return "", fmt.Errorf("%w: a passwordless %s proves its login ID", ErrInvalidCommand, kind)
	}
	if !verified {
		return "", nil
	}
	return CodeMethod(loginIDType)
}

// Register creates a regular user directly.
type Register struct {
	UserID       string
	ClientID     string
	LoginIDType  string
	LoginID      string
	PasswordHash string
	// Passwordless and Verified as in Promote: a sign-up completed by the
	// code sent to the login ID records its verification in the same
	// write, and without a password it must have been proved so.
	Passwordless bool
	Verified     bool
	Now          time.Time
}

// DecideRegister: a new user with a login ID nobody holds.
func DecideRegister(u User, l LoginID, c Register) (Promotion, error) {
	if c.UserID == "" || c.ClientID == "" || c.LoginID == "" || (c.PasswordHash == "") != c.Passwordless || c.Now.IsZero() {
		return Promotion{}, fmt.Errorf("%w: user id, client, login ID, password hash (or passwordless) and time are required", ErrInvalidCommand)
	}
	method, err := codeProof("sign-up", c.LoginIDType, c.Passwordless, c.Verified)
	if err != nil {
		return Promotion{}, err
	}
	if u.exists {
		return Promotion{}, ErrUserExists
	}
	if l.claimed {
		return Promotion{}, ErrLoginIDTaken
	}
	now := c.Now.UTC()
	evs := []Event{UserRegistered{UserID: c.UserID, ClientID: c.ClientID, Method: MethodLoginID, LoginIDType: c.LoginIDType, LoginID: c.LoginID, RegisteredAt: now}}
	if c.PasswordHash != "" {
		evs = append(evs, PasswordSet{UserID: c.UserID, PasswordHash: c.PasswordHash, Reason: "registration", SetAt: now})
	}
	if c.Verified {
		evs = append(evs, LoginIDVerified{UserID: c.UserID, LoginIDType: c.LoginIDType, LoginID: c.LoginID, Method: method, VerifiedAt: now})
	}
	return Promotion{User: evs, Claim: LoginIDClaimed{LoginIDType: c.LoginIDType, LoginID: c.LoginID, UserID: c.UserID, ClaimedAt: now}}, nil
}

// DecideMerge retires a guest into an existing account.
func DecideMerge(guest User, into string, now time.Time) ([]Event, error) {
	if err := guest.CanSignIn(); err != nil {
		return nil, err
	}
	if !guest.anonymous {
		return nil, ErrNotAnonymous
	}
	if into == "" || into == guest.id {
		return nil, fmt.Errorf("%w: a guest merges into another user", ErrInvalidCommand)
	}
	return []Event{AnonymousUserMerged{GuestID: guest.id, IntoUserID: into, MergedAt: now.UTC()}}, nil
}
