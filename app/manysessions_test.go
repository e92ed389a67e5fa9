package app_test

import (
	"context"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// A guest with more sessions than one atomic append can revoke (500
// messages) is still promoted, and a user with as many is still disabled:
// the command's own event ends them all, and every one stops working.
func TestPromotionAndDisableEndMoreSessionsThanOneAppendHolds(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{NoProjections: true, Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
	}})
	ctx := context.Background()
	svc := n.Service
	d := testenv.NewDevice(t, jose.ES256)
	const many = 520
	var guestTokens []string
	var guest, last string
	for i := range many {
		challenge, _, err := svc.IssueChallenge(ctx, app.ChallengePurposeAnonymousRequest)
		if err != nil {
			t.Fatal(err)
		}
		iss, err := svc.SignInWithKey(ctx, "idstream-dev", d.JWT(t, challenge, i == 0, n.Clock.Now()), "", app.Meta{})
		if err != nil {
			t.Fatalf("sign-in %d: %v", i, err)
		}
		guest, last = iss.UserID, iss.SessionID
		guestTokens = append(guestTokens, iss.SessionToken)
	}
	id, err := loginid.Parse(loginid.Email, "many@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Promote(ctx, app.PromoteInput{UserID: guest, OldSessionID: last, LoginID: id, Password: "violet-tangerine-42",
		NewSession: &app.NewSession{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken, Method: domain.MethodPromotion}}); err != nil {
		t.Fatalf("promote a guest with %d sessions: %v", many, err)
	}
	for i, rt := range guestTokens {
		if _, err := svc.Refresh(ctx, "idstream-dev", rt, app.Meta{}); err == nil {
			t.Fatalf("guest session %d refreshes after the promotion", i)
		}
	}
	// Every session's own subject says why it ended, the first ones in
	// the promotion's append, the rest after it.
	for _, rt := range []string{guestTokens[0], guestTokens[many-1]} {
		sid, _, _ := tokens.ParseOpaque(rt)
		if sess, _, err := svc.LoadSession(ctx, sid); err != nil || !sess.Revoked() {
			t.Fatalf("session %s not revoked in the log: %v", sid, err)
		}
	}

	// The same user with as many sessions again, disabled and enabled.
	var userTokens []string
	for range many {
		iss, err := svc.StartSession(ctx, guest, app.NewSession{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken, Method: domain.MethodPassword}, app.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		userTokens = append(userTokens, iss.SessionToken)
	}
	if _, err := svc.DisableUser(ctx, guest, "review", nil, app.Meta{}); err != nil {
		t.Fatalf("disable a user with %d sessions: %v", many, err)
	}
	if _, err := svc.EnableUser(ctx, guest, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	for i, rt := range userTokens {
		if _, err := svc.Refresh(ctx, "idstream-dev", rt, app.Meta{}); err == nil {
			t.Fatalf("session %d works again after disable and enable", i)
		}
	}
}
