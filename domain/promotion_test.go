package domain_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/idstream/idstream/domain"
)

func TestDecidePromote(t *testing.T) {
	at := t0.Add(time.Hour)
	cmd := domain.Promote{LoginIDType: "email", LoginID: "ada@example.com", PasswordHash: "$argon2id$x", Now: at}
	key := domain.AnonymousKeyRegistered{UserID: "u1", KeyID: "k1", Algorithm: "ES256", Thumbprint: "tp", RegisteredAt: t0}
	promoted := domain.UserPromoted{UserID: "u1", ClientID: "c1", GuestMethod: domain.MethodAnonymous, Method: domain.MethodLoginID, LoginIDType: "email", LoginID: "ada@example.com",
		GuestCreatedAt: t0, PromotedAt: at}
	keyPromoted := promoted
	keyPromoted.GuestMethod = domain.MethodAnonymousKey
	pw := domain.PasswordSet{UserID: "u1", PasswordHash: "$argon2id$x", Reason: "promotion", SetAt: at}
	claim := domain.LoginIDClaimed{LoginIDType: "email", LoginID: "ada@example.com", UserID: "u1", ClaimedAt: at}
	tests := []struct {
		name    string
		user    []domain.Event
		login   []domain.Event
		want    domain.Promotion
		wantErr error
	}{
		{"guest", []domain.Event{created()}, nil, domain.Promotion{User: []domain.Event{promoted, pw}, Claim: claim}, nil},
		{"key-pair guest loses its key", []domain.Event{created(), key}, nil,
			domain.Promotion{User: []domain.Event{keyPromoted, pw, domain.AnonymousKeyRemoved{UserID: "u1", KeyID: "k1", RemovedAt: at}}, Claim: claim}, nil},
		{"already promoted", []domain.Event{created(), promoted}, nil, domain.Promotion{}, domain.ErrNotAnonymous},
		{"login ID taken", []domain.Event{created()}, []domain.Event{domain.LoginIDClaimed{UserID: "u2"}}, domain.Promotion{}, domain.ErrLoginIDTaken},
		{"merged guest", []domain.Event{created(), domain.AnonymousUserMerged{GuestID: "u1", IntoUserID: "u2"}}, nil, domain.Promotion{}, domain.ErrUserRetired},
		{"no user", nil, nil, domain.Promotion{}, domain.ErrUserNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecidePromote(given(domain.EvolveUser, tc.user...), given(domain.EvolveLoginID, tc.login...), cmd)
			if !errors.Is(err, tc.wantErr) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	u := given(domain.EvolveUser, created(), key, promoted, pw)
	if u.IsAnonymous() || len(u.AnonymousKeyIDs()) != 1 || u.PasswordHash() != "$argon2id$x" {
		t.Fatalf("evolved: %+v", u)
	}
}

func TestDecideRegisterAndMerge(t *testing.T) {
	reg := domain.Register{UserID: "u9", ClientID: "c1", LoginIDType: "username", LoginID: "ada", PasswordHash: "h", Now: t0}
	got, err := domain.DecideRegister(domain.User{}, domain.LoginID{}, reg)
	if err != nil || len(got.User) != 2 || got.Claim.(domain.LoginIDClaimed).UserID != "u9" {
		t.Fatalf("register: %+v %v", got, err)
	}
	if _, err := domain.DecideRegister(domain.User{}, given(domain.EvolveLoginID, domain.Event(domain.LoginIDClaimed{UserID: "x"})), reg); !errors.Is(err, domain.ErrLoginIDTaken) {
		t.Fatalf("taken: %v", err)
	}
	guest := given(domain.EvolveUser, domain.Event(created()))
	evs, err := domain.DecideMerge(guest, "u2", t0)
	if err != nil || !reflect.DeepEqual(evs, []domain.Event{domain.AnonymousUserMerged{GuestID: "u1", IntoUserID: "u2", MergedAt: t0}}) {
		t.Fatalf("merge: %v %v", evs, err)
	}
	if _, err := domain.DecideMerge(guest, "u1", t0); !errors.Is(err, domain.ErrInvalidCommand) {
		t.Fatalf("merge into itself: %v", err)
	}
	if err := domain.EvolveUser(guest, evs[0]).CanSignIn(); !errors.Is(err, domain.ErrUserRetired) {
		t.Fatalf("merged guest can sign in: %v", err)
	}
}

func TestDecideRegisterByCode(t *testing.T) {
	base := domain.Register{UserID: "u9", ClientID: "c1", LoginIDType: "email", LoginID: "ada@example.com", Now: t0}
	passwordless := base
	passwordless.Passwordless, passwordless.Verified = true, true
	got, err := domain.DecideRegister(domain.User{}, domain.LoginID{}, passwordless)
	want := []domain.Event{
		domain.UserRegistered{UserID: "u9", ClientID: "c1", Method: domain.MethodLoginID, LoginIDType: "email", LoginID: "ada@example.com", RegisteredAt: t0},
		domain.LoginIDVerified{UserID: "u9", LoginIDType: "email", LoginID: "ada@example.com", Method: domain.MethodEmailCode, VerifiedAt: t0},
	}
	if err != nil || !reflect.DeepEqual(got.User, want) {
		t.Fatalf("passwordless sign-up: %#v %v", got.User, err)
	}
	u := given(domain.EvolveUser, got.User...)
	if ids := u.LoginIDs(); len(ids) != 1 || !ids[0].Verified || u.PasswordHash() != "" {
		t.Fatalf("evolved: %+v", ids)
	}
	withPassword := base
	withPassword.PasswordHash, withPassword.Verified = "h", true
	if got, err := domain.DecideRegister(domain.User{}, domain.LoginID{}, withPassword); err != nil || len(got.User) != 3 {
		t.Fatalf("sign-up with password and code: %+v %v", got.User, err)
	}
	unproved := base
	unproved.Passwordless = true
	username := passwordless
	username.LoginIDType = "username"
	both := withPassword
	both.Passwordless = true
	for name, c := range map[string]domain.Register{"passwordless, not verified": unproved, "no password, not passwordless": base, "password and passwordless": both} {
		if _, err := domain.DecideRegister(domain.User{}, domain.LoginID{}, c); !errors.Is(err, domain.ErrInvalidCommand) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := domain.DecideRegister(domain.User{}, domain.LoginID{}, username); !errors.Is(err, domain.ErrNoCodeChannel) {
		t.Errorf("username by code: %v", err)
	}
}

func TestEveryEventTypeDecodes(t *testing.T) {
	for _, typ := range domain.EventTypes() {
		ev, err := domain.DecodeEvent(typ, []byte(`{}`))
		if err != nil || ev.EventType() != typ {
			t.Errorf("%s: %v %v", typ, ev, err)
		}
	}
}
