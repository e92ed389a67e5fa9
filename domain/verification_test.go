package domain_test

import (
	"errors"
	"testing"
	"time"

	"github.com/idstream/idstream/domain"
)

const hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"

func promotedEvents(t *testing.T, typ, value string, verified bool) []domain.Event {
	t.Helper()
	guest := given(domain.EvolveUser, created(), domain.UserSignedIn{UserID: "u1", SessionID: "s1", SignedInAt: t0})
	p, err := domain.DecidePromote(guest, domain.LoginID{}, domain.Promote{LoginIDType: typ, LoginID: value, PasswordHash: hash, Verified: verified, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	return append([]domain.Event{created(), domain.UserSignedIn{UserID: "u1", SessionID: "s1", SignedInAt: t0}}, p.User...)
}

func TestPromotionWithVerificationIsOneWrite(t *testing.T) {
	evs := promotedEvents(t, "email", "ada@example.com", true)
	last := evs[len(evs)-1].(domain.LoginIDVerified)
	if last.Method != domain.MethodEmailCode || last.LoginID != "ada@example.com" {
		t.Fatalf("verification %+v", last)
	}
	u := given(domain.EvolveUser, evs...)
	if !u.IsVerified() || !u.LoginIDVerified("email", "ada@example.com") || u.IsAnonymous() {
		t.Fatalf("verified %v anonymous %v", u.IsVerified(), u.IsAnonymous())
	}
	if ids := u.LoginIDs(); len(ids) != 1 || !ids[0].Verified {
		t.Fatalf("login IDs %+v", ids)
	}
}

func TestVerifyLaterIsIdempotent(t *testing.T) {
	u := given(domain.EvolveUser, promotedEvents(t, "phone", "+14155550100", false)...)
	if u.IsVerified() {
		t.Fatal("verified before any code")
	}
	evs, err := domain.DecideVerifyLoginID(u, "phone", "+14155550100", t0)
	if err != nil || len(evs) != 1 || evs[0].(domain.LoginIDVerified).Method != domain.MethodSMSCode {
		t.Fatalf("%v %v", evs, err)
	}
	u = domain.EvolveUser(u, evs[0])
	if !u.IsVerified() {
		t.Fatal("not verified")
	}
	if again, err := domain.DecideVerifyLoginID(u, "phone", "+14155550100", t0); err != nil || len(again) != 0 {
		t.Fatalf("again: %v %v", again, err)
	}
}

func TestVerifyRefusals(t *testing.T) {
	u := given(domain.EvolveUser, promotedEvents(t, "email", "ada@example.com", false)...)
	if _, err := domain.DecideVerifyLoginID(u, "email", "eve@example.com", t0); !errors.Is(err, domain.ErrNotUsersLoginID) {
		t.Errorf("another address: %v", err)
	}
	if _, err := domain.DecideVerifyLoginID(given(domain.EvolveUser, created()), "email", "ada@example.com", t0); !errors.Is(err, domain.ErrNotUsersLoginID) {
		t.Errorf("a guest: %v", err)
	}
	named := given(domain.EvolveUser, domain.UserRegistered{UserID: "u2", ClientID: "c1", LoginIDType: "username", LoginID: "ada", RegisteredAt: t0})
	if _, err := domain.DecideVerifyLoginID(named, "username", "ada", t0); !errors.Is(err, domain.ErrNoCodeChannel) {
		t.Errorf("a username: %v", err)
	}
	disabled := domain.EvolveUser(u, domain.UserDisabled{UserID: "u1", DisabledAt: t0})
	if _, err := domain.DecideVerifyLoginID(disabled, "email", "ada@example.com", t0); !errors.Is(err, domain.ErrUserDisabled) {
		t.Errorf("disabled: %v", err)
	}
}

func TestDeletedUserIsNotVerified(t *testing.T) {
	u := given(domain.EvolveUser, promotedEvents(t, "email", "ada@example.com", true)...)
	u = domain.EvolveUser(u, domain.UserDeleted{UserID: "u1", DeletedAt: t0})
	if u.IsVerified() || len(u.LoginIDs()) != 0 {
		t.Fatal("a deleted user is verified")
	}
}

func TestChangedLoginIDStartsUnverified(t *testing.T) {
	u := given(domain.EvolveUser, promotedEvents(t, "email", "ada@example.com", true)...)
	// A later promotion-shaped change of login ID (the only way a login ID
	// changes today) drops the proof of the old value.
	u = domain.EvolveUser(u, domain.UserPromoted{UserID: "u1", LoginIDType: "email", LoginID: "ada@new.example", PromotedAt: t0})
	if u.IsVerified() || u.LoginIDVerified("email", "ada@example.com") {
		t.Fatal("the new login ID is verified by the old one's proof")
	}
}

func TestPasswordResetEndsEverySessionAndVerifies(t *testing.T) {
	u := given(domain.EvolveUser, promotedEvents(t, "email", "ada@example.com", false)...)
	u = domain.EvolveUser(u, domain.UserSignedIn{UserID: "u1", SessionID: "s2", SignedInAt: t0})
	evs, err := domain.DecideResetPassword(u, domain.ResetPassword{LoginIDType: "email", LoginID: "ada@example.com", PasswordHash: hash, Now: t0.Add(time.Hour)})
	if err != nil || len(evs) != 3 {
		t.Fatalf("%v %v", evs, err)
	}
	if _, ok := evs[0].(domain.PasswordReset); !ok {
		t.Fatalf("first %T", evs[0])
	}
	if ps := evs[1].(domain.PasswordSet); ps.Reason != domain.PasswordReasonReset {
		t.Fatalf("password set %+v", ps)
	}
	after := given(domain.EvolveUser, append(promotedEvents(t, "email", "ada@example.com", false),
		append([]domain.Event{domain.UserSignedIn{UserID: "u1", SessionID: "s2", SignedInAt: t0}}, evs...)...)...)
	if !after.SessionEnded("s2") || len(after.LiveSessionIDs()) != 0 || !after.IsVerified() {
		t.Fatalf("ended %v live %v verified %v", after.SessionEnded("s2"), after.LiveSessionIDs(), after.IsVerified())
	}
	if _, err := domain.DecideResetPassword(u, domain.ResetPassword{LoginIDType: "email", LoginID: "eve@example.com", PasswordHash: hash, Now: t0}); !errors.Is(err, domain.ErrNotUsersLoginID) {
		t.Fatalf("another login ID: %v", err)
	}
}

func TestCodeSignInRemovesAnUnprovenPassword(t *testing.T) {
	// Somebody promoted a guest to ada@example.com with a password, never
	// proving the address; the address's holder signs in by a code.
	unproven := given(domain.EvolveUser, promotedEvents(t, "email", "ada@example.com", false)...)
	unproven = domain.EvolveUser(unproven, domain.UserSignedIn{UserID: "u1", SessionID: "s2", SignedInAt: t0})
	evs, err := domain.DecideCodeSignIn(unproven, "email", "ada@example.com", t0.Add(time.Hour))
	if err != nil || len(evs) != 2 {
		t.Fatalf("%v %v", evs, err)
	}
	if _, ok := evs[0].(domain.LoginIDVerified); !ok {
		t.Fatalf("first %T", evs[0])
	}
	if r, ok := evs[1].(domain.PasswordRemoved); !ok || r.Reason != domain.PasswordRemovedUnproven || r.UserID != "u1" {
		t.Fatalf("second %#v", evs[1])
	}
	after := unproven
	for _, ev := range evs {
		after = domain.EvolveUser(after, ev)
	}
	if after.PasswordHash() != "" || len(after.LiveSessionIDs()) != 0 || !after.IsVerified() {
		t.Fatalf("hash %q live %v verified %v", after.PasswordHash(), after.LiveSessionIDs(), after.IsVerified())
	}
	// An identity at a provider linked while the password was the way in
	// goes with it.
	linked := domain.EvolveUser(unproven, domain.UserExternalLinked{UserID: "u1", Provider: "github", Subject: "gh-7", LinkedAt: t0})
	evs, err = domain.DecideCodeSignIn(linked, "email", "ada@example.com", t0.Add(time.Hour))
	if err != nil || len(evs) != 3 {
		t.Fatalf("with a linked identity: %v %v", evs, err)
	}
	if un, ok := evs[2].(domain.UserExternalUnlinked); !ok || un.Provider != "github" || un.Subject != "gh-7" {
		t.Fatalf("third %#v", evs[2])
	}
	if after := domain.FoldUser(linked, evs...); len(after.ExternalIdentities()) != 0 {
		t.Fatalf("identities left: %v", after.ExternalIdentities())
	}
	// A reset is a first proof too: the new password is the holder's, the
	// identity linked before goes.
	evs, err = domain.DecideResetPassword(linked, domain.ResetPassword{LoginIDType: "email", LoginID: "ada@example.com", PasswordHash: hash, Now: t0.Add(time.Hour)})
	if err != nil || len(evs) != 4 {
		t.Fatalf("reset with a linked identity: %v %v", evs, err)
	}
	if _, ok := evs[3].(domain.UserExternalUnlinked); !ok {
		t.Fatalf("reset's fourth %#v", evs[3])
	}
	// Proved already: nothing to record, the password stays.
	proven := given(domain.EvolveUser, promotedEvents(t, "email", "ada@example.com", true)...)
	if evs, err := domain.DecideCodeSignIn(proven, "email", "ada@example.com", t0.Add(time.Hour)); err != nil || len(evs) != 0 {
		t.Fatalf("a proved address: %v %v", evs, err)
	}
	// Verified later by its signed-in holder (who holds the password):
	// a code sign-in afterwards leaves the password alone.
	v, err := domain.DecideVerifyLoginID(unproven, "email", "ada@example.com", t0)
	if err != nil || len(v) != 1 {
		t.Fatalf("verification: %v %v", v, err)
	}
	later := domain.EvolveUser(unproven, domain.UserSignedIn{UserID: "u1", SessionID: "s3", SignedInAt: t0})
	later = domain.FoldUser(later, v...)
	if evs, err := domain.DecideCodeSignIn(later, "email", "ada@example.com", t0.Add(time.Hour)); err != nil || len(evs) != 0 {
		t.Fatalf("a code sign-in after the holder's verification: %v %v", evs, err)
	}
	if later.PasswordHash() == "" || len(later.LiveSessionIDs()) == 0 || later.CredentialEpoch() != 0 {
		t.Fatalf("after the holder's verification: hash %q live %v epoch %d", later.PasswordHash(), later.LiveSessionIDs(), later.CredentialEpoch())
	}
	if after.CredentialEpoch() != 1 {
		t.Fatalf("a removal's credential epoch: %d", after.CredentialEpoch())
	}
}

func TestPasswordlessPromotion(t *testing.T) {
	guest := given(domain.EvolveUser, created())
	if _, err := domain.DecidePromote(guest, domain.LoginID{}, domain.Promote{LoginIDType: "email", LoginID: "ada@example.com", Passwordless: true, Now: t0}); !errors.Is(err, domain.ErrInvalidCommand) {
		t.Fatalf("passwordless without a code: %v", err)
	}
	p, err := domain.DecidePromote(guest, domain.LoginID{}, domain.Promote{LoginIDType: "email", LoginID: "ada@example.com", Passwordless: true, Verified: true, Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range p.User {
		if _, ok := ev.(domain.PasswordSet); ok {
			t.Fatal("a passwordless promotion set a password")
		}
	}
	u := given(domain.EvolveUser, append([]domain.Event{created()}, p.User...)...)
	if u.PasswordHash() != "" || !u.IsVerified() || u.IsAnonymous() {
		t.Fatalf("hash %q verified %v", u.PasswordHash(), u.IsVerified())
	}
	if _, err := domain.DecidePromote(guest, domain.LoginID{}, domain.Promote{LoginIDType: "username", LoginID: "ada", Passwordless: true, Verified: true, Now: t0}); !errors.Is(err, domain.ErrNoCodeChannel) {
		t.Fatalf("a username by code: %v", err)
	}
}

func TestVerificationSettingsValidated(t *testing.T) {
	for name, v := range map[string]domain.VerificationSettings{
		"policy":            {Promotion: "sometimes"},
		"short lifetime":    {CodeLifetime: 60},
		"long lifetime":     {CodeLifetime: 3600},
		"unknown type":      {Authenticators: map[string][]string{"nickname": {"password"}}},
		"empty list":        {Authenticators: map[string][]string{"email": {}}},
		"unknown kind":      {Authenticators: map[string][]string{"email": {"magic"}}},
		"username by code":  {Authenticators: map[string][]string{"username": {"oob_otp"}}},
		"twice":             {Authenticators: map[string][]string{"email": {"password", "password"}}},
		"zero period limit": {SendPerTarget: domain.RateLimitSetting{Burst: 3}},
	} {
		s := sampleSettings()
		s.Verification = v
		var se *domain.SettingsError
		if err := domain.ValidateSettings(s); !errors.As(err, &se) {
			t.Errorf("%s: accepted", name)
		}
	}
	d := domain.VerificationSettings{}.WithDefaults()
	if d.Promotion != domain.VerifyOptional || d.CodeLifetime.Duration() != 10*time.Minute || !d.Offers("email", "password") || d.Offers("email", "oob_otp") {
		t.Fatalf("defaults %+v", d)
	}
}
