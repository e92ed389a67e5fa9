package domain

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// External identities (issue 19): an account at an upstream identity
// provider (Google, Apple, Microsoft, GitHub or any OpenID provider), named
// by the provider's id in the configuration and the provider's subject for
// the person. Like a login ID it is claimed on its own subject
// (`idstream.external.<hash of provider:subject>`) at the version it was
// read at (none for a new one), so one external identity belongs to one
// user and of two racing claims exactly one is written. The user's own
// subject records it too (user.external_identity.linked.v1), so the user's
// state knows its ways in without reading other subjects.

// Event types of external identities.
const (
	TypeExternalIdentityClaimed  = "identity.external.linked.v1"
	TypeExternalIdentityReleased = "identity.external.unlinked.v1"
	TypeUserExternalLinked       = "user.external_identity.linked.v1"
	TypeUserExternalUnlinked     = "user.external_identity.unlinked.v1"
)

// MethodLoginID is the promotion or registration method (user.promoted,
// user.registered) of a login ID.
const MethodLoginID = "login_id"

// MethodExternal is the sign-in method (sessions) and the promotion or
// registration method (user.promoted, user.registered) of an upstream
// identity provider.
const MethodExternal = "external"

// Errors of external identities.
var (
	ErrExternalIdentityTaken = errors.New("the external identity belongs to another user")
	// ErrExternalIdentityNotLinked: the user has no such external identity.
	ErrExternalIdentityNotLinked = errors.New("the user has no such external identity")
	// ErrLastWayIn: unlinking would leave the user no way to sign in.
	ErrLastWayIn = errors.New("this is the account's last way to sign in")
)

// ExternalIdentityClaimed: an external identity now belongs to a user.
// Written on the identity's own subject; it carries no token and no email.
type ExternalIdentityClaimed struct {
	Provider  string    `json:"provider"`
	Subject   string    `json:"subject"`
	UserID    string    `json:"user_id"`
	ClaimedAt time.Time `json:"linked_at"`
}

// EventType implements Event.
func (ExternalIdentityClaimed) EventType() string { return TypeExternalIdentityClaimed }

// ExternalIdentityReleased: the external identity no longer belongs to
// anyone (the user unlinked it); it may be claimed again.
type ExternalIdentityReleased struct {
	Provider   string    `json:"provider"`
	Subject    string    `json:"subject"`
	UserID     string    `json:"user_id"`
	ReleasedAt time.Time `json:"unlinked_at"`
}

// EventType implements Event.
func (ExternalIdentityReleased) EventType() string { return TypeExternalIdentityReleased }

// UserExternalLinked: the user can sign in with the external identity.
// Email is the address the provider vouched for (email_verified), if it
// gave one; it is not a login ID and claims nothing.
type UserExternalLinked struct {
	UserID   string    `json:"user_id"`
	Provider string    `json:"provider"`
	Subject  string    `json:"subject"`
	Email    string    `json:"email,omitempty"`
	LinkedAt time.Time `json:"linked_at"`
}

// EventType implements Event.
func (UserExternalLinked) EventType() string { return TypeUserExternalLinked }

// UserExternalUnlinked: the user no longer signs in with the identity.
type UserExternalUnlinked struct {
	UserID     string    `json:"user_id"`
	Provider   string    `json:"provider"`
	Subject    string    `json:"subject"`
	UnlinkedAt time.Time `json:"unlinked_at"`
}

// EventType implements Event.
func (UserExternalUnlinked) EventType() string { return TypeUserExternalUnlinked }

// ExternalRef names an external identity.
type ExternalRef struct {
	Provider string `json:"provider"`
	Subject  string `json:"subject"`
	Email    string `json:"email,omitempty"`
}

// Key is the identity's key: provider:subject.
func (r ExternalRef) Key() string { return r.Provider + ":" + r.Subject }

// ExternalIdentity is the write-side state of one external identity.
type ExternalIdentity struct {
	claimed bool
	userID  string
}

// Claimed reports whether the identity belongs to a user.
func (x ExternalIdentity) Claimed() bool { return x.claimed }

// UserID is the owner.
func (x ExternalIdentity) UserID() string { return x.userID }

// EvolveExternalIdentity applies one event.
func EvolveExternalIdentity(x ExternalIdentity, ev Event) ExternalIdentity {
	switch e := ev.(type) {
	case ExternalIdentityClaimed:
		x = ExternalIdentity{claimed: true, userID: e.UserID}
	case ExternalIdentityReleased:
		x = ExternalIdentity{}
	}
	return x
}

// ExternalIdentities lists the user's external identities (a copy).
func (u User) ExternalIdentities() []ExternalRef { return slices.Clone(u.externals) }

// waysIn counts how the user can sign in: a password, and each external
// identity.
func (u User) waysIn() int {
	n := len(u.externals)
	if u.pwHash != "" {
		n++
	}
	return n
}

func foldExternal(u User, ev Event) User {
	switch e := ev.(type) {
	case UserExternalLinked:
		u.externals = append(slices.Clone(u.externals), ExternalRef{Provider: e.Provider, Subject: e.Subject, Email: e.Email})
	case UserExternalUnlinked:
		u.externals = slices.DeleteFunc(slices.Clone(u.externals), func(r ExternalRef) bool {
			return r.Provider == e.Provider && r.Subject == e.Subject
		})
	}
	return u
}

// ExternalLink is the outcome of a decision that links an external
// identity: the user's events and the claim for the identity's subject.
type ExternalLink struct {
	User  []Event
	Claim Event
}

func checkRef(r ExternalRef, now time.Time) error {
	if r.Provider == "" || r.Subject == "" || now.IsZero() {
		return fmt.Errorf("%w: provider, subject and time are required", ErrInvalidCommand)
	}
	return nil
}

func linkEvents(userID string, r ExternalRef, now time.Time) (Event, Event) {
	return UserExternalLinked{UserID: userID, Provider: r.Provider, Subject: r.Subject, Email: r.Email, LinkedAt: now},
		ExternalIdentityClaimed{Provider: r.Provider, Subject: r.Subject, UserID: userID, ClaimedAt: now}
}

// DecidePromoteExternal: a live guest becomes a regular user who signs in
// with an external identity nobody holds; its sub stays, its device keys
// stop signing in (as DecidePromote).
func DecidePromoteExternal(u User, x ExternalIdentity, r ExternalRef, now time.Time) (ExternalLink, error) {
	if err := checkRef(r, now); err != nil {
		return ExternalLink{}, err
	}
	if err := u.CanSignIn(); err != nil {
		return ExternalLink{}, err
	}
	if !u.anonymous {
		return ExternalLink{}, ErrNotAnonymous
	}
	if x.claimed {
		return ExternalLink{}, ErrExternalIdentityTaken
	}
	now = now.UTC()
	linked, claim := linkEvents(u.id, r, now)
	evs := []Event{UserPromoted{UserID: u.id, ClientID: u.clientID, GuestMethod: u.guestMethod(), Method: MethodExternal,
		Provider: r.Provider, GuestCreatedAt: u.createdAt, PromotedAt: now}, linked}
	for _, kid := range u.keyIDs {
		evs = append(evs, AnonymousKeyRemoved{UserID: u.id, KeyID: kid, RemovedAt: now})
	}
	return ExternalLink{User: evs, Claim: claim}, nil
}

// DecideRegisterExternal: a new regular user who signs in with an external
// identity nobody holds.
func DecideRegisterExternal(u User, x ExternalIdentity, userID, clientID string, r ExternalRef, now time.Time) (ExternalLink, error) {
	if err := checkRef(r, now); err != nil {
		return ExternalLink{}, err
	}
	if userID == "" || clientID == "" {
		return ExternalLink{}, fmt.Errorf("%w: user id and client are required", ErrInvalidCommand)
	}
	if u.exists {
		return ExternalLink{}, ErrUserExists
	}
	if x.claimed {
		return ExternalLink{}, ErrExternalIdentityTaken
	}
	now = now.UTC()
	linked, claim := linkEvents(userID, r, now)
	return ExternalLink{User: []Event{UserRegistered{UserID: userID, ClientID: clientID, Method: MethodExternal, Provider: r.Provider,
		RegisteredAt: now}, linked}, Claim: claim}, nil
}

// DecideLinkExternal: a regular user adds an external identity nobody
// holds (one it holds already is no change: no events).
func DecideLinkExternal(u User, x ExternalIdentity, r ExternalRef, now time.Time) (ExternalLink, error) {
	if err := checkRef(r, now); err != nil {
		return ExternalLink{}, err
	}
	if err := u.CanSignIn(); err != nil {
		return ExternalLink{}, err
	}
	if u.anonymous {
		return ExternalLink{}, ErrAnonymousCannotLink
	}
	if x.claimed && x.userID == u.id {
		return ExternalLink{}, nil
	}
	if x.claimed {
		return ExternalLink{}, ErrExternalIdentityTaken
	}
	linked, claim := linkEvents(u.id, r, now.UTC())
	return ExternalLink{User: []Event{linked}, Claim: claim}, nil
}

// ErrAnonymousCannotLink: a guest links an identity by promotion, not by
// linking.
var ErrAnonymousCannotLink = errors.New("a guest links an external identity by promotion")

// DecideUnlinkExternal: a regular user removes one of its external
// identities, never its last way in.
func DecideUnlinkExternal(u User, x ExternalIdentity, r ExternalRef, now time.Time) (ExternalLink, error) {
	if err := checkRef(r, now); err != nil {
		return ExternalLink{}, err
	}
	if err := u.CanSignIn(); err != nil {
		return ExternalLink{}, err
	}
	if !slices.ContainsFunc(u.externals, func(e ExternalRef) bool { return e.Provider == r.Provider && e.Subject == r.Subject }) ||
		!x.claimed || x.userID != u.id {
		return ExternalLink{}, ErrExternalIdentityNotLinked
	}
	if u.waysIn() < 2 {
		return ExternalLink{}, ErrLastWayIn
	}
	now = now.UTC()
	return ExternalLink{
		User:  []Event{UserExternalUnlinked{UserID: u.id, Provider: r.Provider, Subject: r.Subject, UnlinkedAt: now}},
		Claim: ExternalIdentityReleased{Provider: r.Provider, Subject: r.Subject, UserID: u.id, ReleasedAt: now},
	}, nil
}

// ReleaseLost is the release of an external identity its user loses
// without unlinking it: the user was deleted (written with
// user.deleted.v1), or the identity went with an unproven password at a
// sign-in by code (DecideCodeSignIn); the identity may sign up anew. nil
// if the user does not hold it.
func ReleaseLost(u User, x ExternalIdentity, r ExternalRef, now time.Time) Event {
	if !x.claimed || x.userID != u.id {
		return nil
	}
	return ExternalIdentityReleased{Provider: r.Provider, Subject: r.Subject, UserID: u.id, ReleasedAt: now.UTC()}
}
