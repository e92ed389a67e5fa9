package app_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// TestPromoteCommandUnderTheConflictPolicy: given a guest (and, for the
// taken cases, an account holding the login ID) in the log, Promote
// appends the promotion, refuses, or merges the guest into the account,
// as the project's conflict policy says; a refusal appends nothing.
func TestPromoteCommandUnderTheConflictPolicy(t *testing.T) {
	const pw = "violet-tangerine-42"
	for _, tc := range []struct {
		name, policy, password string
		taken                  bool
		want                   []string // event types appended, in any order
		err                    error
	}{
		{name: "free login ID", policy: "error", password: pw,
			want: []string{"login_id.claimed.v1", "user.promoted.v2", "user.password.set.v1", "session.revoked.v1", "session.started.v1", "user.signed_in.v1"}},
		{name: "taken, policy error", policy: "error", password: pw, taken: true, err: domain.ErrLoginIDTaken},
		{name: "taken, policy login, right password", policy: "login", password: pw, taken: true,
			want: []string{"user.anonymous.merged.v1", "session.revoked.v1", "session.started.v1", "user.signed_in.v1"}},
		{name: "taken, policy login, wrong password", policy: "login", password: "another-long-password-9", taken: true, err: app.ErrInvalidCredentials},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startCommands(t, func(c *config.Config) { c.Promotion.ConflictPolicy = tc.policy })
			svc, ctx := e.n.Service, context.Background()
			id, _ := loginid.Parse(loginid.Email, "taken@example.com")
			refresh := func() app.Issued {
				iss, err := svc.SignUpAnonymous(ctx, app.SignUpAnonymous{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken})
				if err != nil {
					t.Fatal(err)
				}
				return iss
			}
			var owner string
			if tc.taken {
				first := refresh()
				if _, err := svc.Promote(ctx, app.PromoteInput{UserID: first.UserID, OldSessionID: first.SessionID, LoginID: id, Password: pw}); err != nil {
					t.Fatal(err)
				}
				owner = first.UserID
			}
			guest := refresh()
			before := e.seq(t)
			iss, err := svc.Promote(ctx, app.PromoteInput{UserID: guest.UserID, OldSessionID: guest.SessionID, LoginID: id, Password: tc.password,
				IP: "192.0.2.20", NewSession: &app.NewSession{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken, Method: domain.MethodPromotion}})
			got := e.appendedSince(t, before)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || len(got) != 0 {
					t.Fatalf("err %v (want %v), appended %v", err, tc.err, got)
				}
				return
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("appended %v (want %v): %v", got, want, err)
			}
			if tc.taken && iss.UserID != owner {
				t.Fatalf("merged into %s, want the account %s", iss.UserID, owner)
			}
			if !tc.taken && iss.UserID != guest.UserID {
				t.Fatalf("the sub changed: %s → %s", guest.UserID, iss.UserID)
			}
		})
	}
}
