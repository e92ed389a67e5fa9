package app_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// A refresh the user has already refused writes nothing. The state is what
// a disable leaves, for a moment, for a user's sessions past the ones its
// own append revokes (and for good if writing their revocations fails):
// user.disabled.v1 on the user, no session.revoked.v1 on the session. A
// node that has the user cached in that state, and one that reads it from
// the log, are asked.
func TestRefreshRefusedByTheUserWritesNothing(t *testing.T) {
	nats := testenv.StartNATS(t)
	configure := testenv.NodeOptions{NoProjections: true, Configure: func(c *config.Config) { testenv.CheapHashes(c) }}
	a := testenv.StartNode(t, nats, configure)
	b := testenv.StartNode(t, nats, configure)
	ctx := context.Background()
	iss, err := a.Service.SignUpAnonymous(ctx, app.SignUpAnonymous{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	_, uv, err := a.Service.LoadUser(ctx, iss.UserID)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(domain.UserDisabled{UserID: iss.UserID, Reason: "test", DisabledAt: a.Clock.Now()})
	if _, err := a.Store.Append(ctx, eventstore.Message{Subject: a.Store.Subject("user", iss.UserID), ExpectedLastSubjectSequence: uv,
		Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: domain.TypeUserDisabled, OccurredAt: a.Clock.Now(), Data: data}}); err != nil {
		t.Fatal(err)
	}
	if u, _, err := a.Service.LoadUser(ctx, iss.UserID); err != nil || u.CanSignIn() == nil {
		t.Fatalf("the disabled user: %v", err)
	}
	sid, _, _ := tokens.ParseOpaque(iss.SessionToken)
	_, before, err := a.Service.LoadSession(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		n    *testenv.Node
	}{{"node with the user cached", a}, {"node reading the user from the log", b}} {
		name, n := c.name, c.n
		if _, err := n.Service.Refresh(ctx, "idstream-dev", iss.SessionToken, app.Meta{}); !errors.Is(err, domain.ErrUserDisabled) {
			t.Fatalf("%s: refresh of a disabled user's session: %v, want ErrUserDisabled", name, err)
		}
		if _, after, err := n.Service.LoadSession(ctx, sid); err != nil || after != before {
			t.Fatalf("%s: the refused refresh wrote to the session (version %d → %d, %v)", name, before, after, err)
		}
	}
}

// A node whose cached user is disabled does not refuse on that alone: the
// user was enabled again on another node, and a session started there since
// refreshes on this one.
func TestRefreshNotRefusedByAStaleCachedUser(t *testing.T) {
	nats := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	configure := testenv.NodeOptions{DatabaseURL: dbURL, NoProjections: true, Configure: func(c *config.Config) { testenv.CheapHashes(c) }}
	a := testenv.StartNode(t, nats, configure)
	configure.Clock = a.Clock
	b := testenv.StartNode(t, nats, configure)
	ctx := context.Background()
	d := testenv.NewDevice(t, jose.ES256)
	signIn := func(n *testenv.Node, withJWK bool) app.Issued {
		t.Helper()
		ch, _, err := n.Service.IssueChallenge(ctx, "anonymous_request")
		if err != nil {
			t.Fatal(err)
		}
		iss, err := n.Service.SignInWithKey(ctx, "idstream-dev", d.JWT(t, ch, withJWK, n.Clock.Now()), "", app.Meta{})
		if err != nil {
			t.Fatal(err)
		}
		return iss
	}
	first := signIn(a, true)
	if _, err := a.Service.DisableUser(ctx, first.UserID, "test", nil, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Service.Refresh(ctx, "idstream-dev", first.SessionToken, app.Meta{}); err == nil {
		t.Fatal("a disabled user's session refreshed")
	}
	if _, err := b.Service.EnableUser(ctx, first.UserID, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	second := signIn(b, false)
	if second.UserID != first.UserID {
		t.Fatalf("signed in as %s, want %s", second.UserID, first.UserID)
	}
	if _, err := a.Service.Refresh(ctx, "idstream-dev", second.SessionToken, app.Meta{}); err != nil {
		t.Fatalf("refresh on the node that cached the user disabled: %v", err)
	}
}
