package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/idstream/idstream/domain"
)

// TestExternalIdentities: promotion, registration, linking and unlinking
// with external identities, decided on the user's and the identity's
// states.
func TestExternalIdentities(t *testing.T) {
	at := t0.Add(time.Hour)
	google := domain.ExternalRef{Provider: "google", Subject: "g-1", Email: "ada@example.com"}
	github := domain.ExternalRef{Provider: "github", Subject: "42"}
	guest := domain.FoldUser(domain.User{}, domain.AnonymousUserCreated{UserID: "u1", ClientID: "c1", CreatedAt: t0, SessionID: "s1"},
		domain.AnonymousKeyRegistered{UserID: "u1", KeyID: "k1", Algorithm: "ES256", RegisteredAt: t0})
	free := domain.ExternalIdentity{}
	held := func(user string) domain.ExternalIdentity {
		return domain.EvolveExternalIdentity(free, domain.ExternalIdentityClaimed{Provider: "google", Subject: "g-1", UserID: user, ClaimedAt: t0})
	}

	p, err := domain.DecidePromoteExternal(guest, free, google, at)
	if err != nil {
		t.Fatal(err)
	}
	prom, ok := p.User[0].(domain.UserPromoted)
	if !ok || prom.Method != domain.MethodExternal || prom.Provider != "google" || prom.LoginID != "" || prom.GuestMethod != domain.MethodAnonymousKey {
		t.Fatalf("promotion: %+v", p.User)
	}
	if _, ok := p.User[2].(domain.AnonymousKeyRemoved); !ok || len(p.User) != 3 {
		t.Fatalf("the device key is not removed: %+v", p.User)
	}
	if c := p.Claim.(domain.ExternalIdentityClaimed); c.UserID != "u1" || c.Provider != "google" || c.Subject != "g-1" {
		t.Fatalf("claim: %+v", c)
	}
	user := domain.FoldUser(guest, p.User...)
	if user.IsAnonymous() || len(user.ExternalIdentities()) != 1 || !user.SessionEnded("s1") {
		t.Fatalf("promoted user: anonymous %v, identities %v, guest session ended %v", user.IsAnonymous(), user.ExternalIdentities(), user.SessionEnded("s1"))
	}
	for name, tc := range map[string]struct {
		err  error
		want error
	}{
		"taken by another":      {err: second(domain.DecidePromoteExternal(guest, held("u2"), google, at)), want: domain.ErrExternalIdentityTaken},
		"already promoted":      {err: second(domain.DecidePromoteExternal(user, free, github, at)), want: domain.ErrNotAnonymous},
		"no subject":            {err: second(domain.DecidePromoteExternal(guest, free, domain.ExternalRef{Provider: "google"}, at)), want: domain.ErrInvalidCommand},
		"registration, taken":   {err: second(domain.DecideRegisterExternal(domain.User{}, held("u2"), "u3", "c1", google, at)), want: domain.ErrExternalIdentityTaken},
		"registration, exists":  {err: second(domain.DecideRegisterExternal(user, free, "u1", "c1", google, at)), want: domain.ErrUserExists},
		"guest links":           {err: second(domain.DecideLinkExternal(guest, free, github, at)), want: domain.ErrAnonymousCannotLink},
		"link another's":        {err: second(domain.DecideLinkExternal(user, held("u2"), google, at)), want: domain.ErrExternalIdentityTaken},
		"unlink the last":       {err: second(domain.DecideUnlinkExternal(user, held("u1"), google, at)), want: domain.ErrLastWayIn},
		"unlink one not linked": {err: second(domain.DecideUnlinkExternal(user, free, github, at)), want: domain.ErrExternalIdentityNotLinked},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: %v, want %v", name, tc.err, tc.want)
		}
	}
	// Linking the one it holds changes nothing; a second one is linked,
	// and then either may go, but not both.
	if l, err := domain.DecideLinkExternal(user, held("u1"), google, at); err != nil || l.Claim != nil || len(l.User) != 0 {
		t.Fatalf("relink: %+v %v", l, err)
	}
	l, err := domain.DecideLinkExternal(user, free, github, at)
	if err != nil || len(l.User) != 1 {
		t.Fatalf("link: %+v %v", l, err)
	}
	user = domain.FoldUser(user, l.User...)
	u, err := domain.DecideUnlinkExternal(user, held("u1"), google, at)
	if err != nil || u.Claim.(domain.ExternalIdentityReleased).UserID != "u1" {
		t.Fatalf("unlink: %+v %v", u, err)
	}
	user = domain.FoldUser(user, u.User...)
	ghHeld := domain.EvolveExternalIdentity(free, l.Claim)
	if _, err := domain.DecideUnlinkExternal(user, ghHeld, github, at); !errors.Is(err, domain.ErrLastWayIn) {
		t.Fatalf("unlink the last after another went: %v", err)
	}
	if x := domain.EvolveExternalIdentity(held("u1"), u.Claim); x.Claimed() {
		t.Fatal("a released identity is still claimed")
	}
	// A user with a password may unlink its only identity.
	withPassword := domain.FoldUser(user, domain.PasswordSet{UserID: "u1", PasswordHash: "$argon2id$x", Reason: "registration", SetAt: at})
	if _, err := domain.DecideUnlinkExternal(withPassword, ghHeld, github, at); err != nil {
		t.Fatalf("unlink with a password left: %v", err)
	}
	// Deleting the user releases what it holds, and only that.
	if ev := domain.ReleaseLost(user, ghHeld, github, at); ev == nil {
		t.Fatal("deletion does not release the user's identity")
	}
	if ev := domain.ReleaseLost(user, held("u2"), google, at); ev != nil {
		t.Fatalf("deletion releases another's identity: %+v", ev)
	}
}

func second[T any](_ T, err error) error { return err }
