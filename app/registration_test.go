package app_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/testenv"
)

// Command-level tests of the sign-up by code and the hosted promotion
// (issues 16 and 20): given the log, the command, then the events it
// appended or its error, with a real NATS and the development outbox as
// the delivery.

var outboxCode = regexp.MustCompile(`\n\s+(\d{6})\n`)

type commandEnv struct {
	n      *testenv.Node
	outbox string
}

func startCommands(t testing.TB, configure func(*config.Config)) commandEnv {
	t.Helper()
	dir := t.TempDir()
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{NoProjections: true, Delivery: &delivery.Outbox{Dir: dir},
		Configure: func(c *config.Config) {
			testenv.CheapHashes(c)
			if configure != nil {
				configure(c)
			}
		}})
	return commandEnv{n: n, outbox: dir}
}

// lastCode is the code of the newest message in the outbox.
func (e commandEnv) lastCode(t *testing.T) string {
	t.Helper()
	msgs, err := delivery.Latest(e.outbox, 1)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("no message in the outbox: %v", err)
	}
	m := outboxCode.FindStringSubmatch(msgs[0])
	if m == nil {
		t.Fatalf("no code in %q", msgs[0])
	}
	return m[1]
}

// appendedSince lists the types of the events after seq, in log order.
func (e commandEnv) appendedSince(t *testing.T, seq uint64) []string {
	t.Helper()
	ctx := context.Background()
	last, err := e.n.Store.LastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for s := seq + 1; s <= last; s++ {
		r, err := e.n.Store.Get(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		types = append(types, r.Type)
	}
	return types
}

func (e commandEnv) seq(t *testing.T) uint64 {
	t.Helper()
	s, err := e.n.Store.LastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func emailAndCodes(c *config.Config) {
	c.Verification.Authenticators = map[string][]string{"email": {domain.AuthenticatorPassword, domain.AuthenticatorCode},
		"phone": {domain.AuthenticatorPassword}, "username": {domain.AuthenticatorPassword}}
}

func TestRegistrationByCodeCommand(t *testing.T) {
	e := startCommands(t, emailAndCodes)
	svc, ctx := e.n.Service, context.Background()
	ada, _ := loginid.Parse(loginid.Email, "ada@example.com")
	r := app.CodeRequest{IP: "192.0.2.10"}
	for i := 1; i <= 6; i++ { // the hosted flows that ask
		f := app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ExpiresAt: e.n.Clock.Now().Add(30 * time.Minute)}
		if err := svc.PutCode(ctx, fmt.Sprintf("flow-%d", i), f); err != nil {
			t.Fatal(err)
		}
	}

	// Passwordless: nothing written until the code; then one append.
	before := e.seq(t)
	if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: "flow-1", LoginID: ada, IP: r.IP}); err != nil {
		t.Fatal(err)
	}
	if got := e.appendedSince(t, before); len(got) != 0 {
		t.Fatalf("written before the code: %v", got)
	}
	code := e.lastCode(t)
	if f, err := svc.Flow(ctx, "flow-1"); err != nil || f.CodeLoginID != ada.Value {
		t.Fatalf("the flow does not name the code's address: %+v %v", f, err)
	}
	if _, err := svc.CompleteRegistrationByCode(ctx, "flow-2", ada, code, r); !errors.Is(err, app.ErrInvalidCode) {
		t.Fatalf("another flow's binding: %v", err)
	}
	u, err := svc.CompleteRegistrationByCode(ctx, "flow-1", ada, code, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"user.registered.v1", "login_id.verified.v1", "login_id.claimed.v1"}
	got := e.appendedSince(t, before)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || u.PasswordHash() != "" || !u.IsVerified() {
		t.Fatalf("appended %v, user %+v", got, u)
	}
	if _, err := svc.CompleteRegistrationByCode(ctx, "flow-1", ada, code, r); !errors.Is(err, app.ErrInvalidCode) {
		t.Fatalf("the code again: %v", err)
	}

	// A taken login ID is refused before any code is sent; a username
	// takes no codes; a username offers no codes as the authenticator.
	if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: "flow-3", LoginID: ada, IP: r.IP}); !errors.Is(err, domain.ErrLoginIDTaken) {
		t.Fatalf("taken: %v", err)
	}
	user, _ := loginid.Parse(loginid.Username, "grace")
	if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: "flow-3", LoginID: user, IP: r.IP}); !errors.Is(err, domain.ErrNoCodeChannel) {
		t.Fatalf("username: %v", err)
	}
	// A password is checked against the policy before the code is sent.
	hop, _ := loginid.Parse(loginid.Email, "hopper@example.com")
	if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: "flow-4", LoginID: hop, Password: "short", IP: r.IP}); err == nil {
		t.Fatal("a short password was accepted")
	}
	// Two flows for one address: the first code back wins, the other
	// writes nothing.
	for _, flow := range []string{"flow-5", "flow-6"} {
		if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: flow, LoginID: hop, Password: "violet-tangerine-42", IP: r.IP}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := delivery.Latest(e.outbox, 2)
	code6, code5 := outboxCode.FindStringSubmatch(msgs[0])[1], outboxCode.FindStringSubmatch(msgs[1])[1]
	if _, err := svc.CompleteRegistrationByCode(ctx, "flow-5", hop, code5, r); err != nil {
		t.Fatal(err)
	}
	before = e.seq(t)
	if _, err := svc.CompleteRegistrationByCode(ctx, "flow-6", hop, code6, r); !errors.Is(err, domain.ErrLoginIDTaken) {
		t.Fatalf("second code back: %v", err)
	}
	if got := e.appendedSince(t, before); len(got) != 0 {
		t.Fatalf("the loser wrote %v", got)
	}
	if _, err := svc.AuthenticatePassword(ctx, "", "hopper@example.com", "violet-tangerine-42", r.IP, app.Meta{}); err != nil {
		t.Fatalf("the winner's password: %v", err)
	}
}

func TestSubmitHostedPromotionCommand(t *testing.T) {
	e := startCommands(t, emailAndCodes)
	svc, ctx := e.n.Service, context.Background()
	guest := func() (string, string, string) {
		iss, err := svc.SignUpAnonymous(ctx, app.SignUpAnonymous{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken})
		if err != nil {
			t.Fatal(err)
		}
		p, err := svc.AuthenticateBearer(ctx, iss.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		code, _, err := svc.IssuePromotionCode(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		return iss.UserID, iss.SessionID, code
	}
	codeFlow := func(userID, sessionID, promotionCode string) app.CodeEntry {
		return app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ResponseType: "code", UserID: userID, SessionID: sessionID, PromotionCode: promotionCode}
	}
	id, _ := loginid.Parse(loginid.Email, "guest@example.com")

	// The link's state: good; unreadable is not "spent" (a 5xx to retry);
	// unknown is spent.
	{
		uid, sid, pc := guest()
		if err := svc.SignUpLinkGood(ctx, codeFlow(uid, sid, pc)); err != nil {
			t.Fatalf("a good link: %v", err)
		}
		gone, cancel := context.WithCancel(ctx)
		cancel()
		if err := svc.SignUpLinkGood(gone, codeFlow(uid, sid, pc)); err == nil || errors.Is(err, app.ErrPromotionLinkSpent) {
			t.Fatalf("a link that could not be read: %v", err)
		}
		if err := svc.SignUpLinkGood(ctx, codeFlow(uid, sid, "no-such-code")); !errors.Is(err, app.ErrPromotionLinkSpent) {
			t.Fatalf("an unknown link: %v", err)
		}
	}

	// Code mode, with a password: decided, nothing written, the link spent.
	uid, sid, pc := guest()
	before := e.seq(t)
	res, err := svc.SubmitHostedPromotion(ctx, app.HostedPromotion{Flow: codeFlow(uid, sid, pc), LoginID: id, Password: "violet-tangerine-42"})
	if err != nil || res.Promotion == nil || res.UserID != uid || res.CodeSent || res.Started != nil {
		t.Fatalf("code mode: %+v %v", res, err)
	}
	if got := e.appendedSince(t, before); len(got) != 0 {
		t.Fatalf("code mode wrote %v before the exchange", got)
	}
	if _, err := svc.SubmitHostedPromotion(ctx, app.HostedPromotion{Flow: codeFlow(uid, sid, pc), LoginID: id, Password: "violet-tangerine-42"}); !errors.Is(err, app.ErrPromotionLinkSpent) {
		t.Fatalf("the link again: %v", err)
	}

	// Cookie mode without the guest's cookie: refused, nothing written.
	uid, sid, pc = guest()
	cookie := codeFlow(uid, sid, pc)
	cookie.ResponseType = "none"
	before = e.seq(t)
	if _, err := svc.SubmitHostedPromotion(ctx, app.HostedPromotion{Flow: cookie, LoginID: id, Password: "violet-tangerine-42"}); !errors.Is(err, app.ErrGuestOfAnotherBrowser) {
		t.Fatalf("another browser: %v", err)
	}
	// With it: written now, with the cookie session.
	res, err = svc.SubmitHostedPromotion(ctx, app.HostedPromotion{Flow: cookie, LoginID: id, Password: "violet-tangerine-42", HoldsGuestSession: true})
	if err != nil || res.Started == nil || res.UserID != uid {
		t.Fatalf("cookie mode: %+v %v", res, err)
	}
	if got := e.appendedSince(t, before); !slices.Contains(got, "user.promoted.v2") || !slices.Contains(got, "session.started.v1") {
		t.Fatalf("cookie mode appended %v", got)
	}

	// By code (passwordless): the code is sent and the flow records where.
	uid, sid, pc = guest()
	flowID := "hosted-flow-1"
	f := codeFlow(uid, sid, pc)
	f.ExpiresAt = e.n.Clock.Now().Add(10 * time.Minute)
	if err := svc.PutCode(ctx, flowID, f); err != nil {
		t.Fatal(err)
	}
	other, _ := loginid.Parse(loginid.Email, "passwordless@example.com")
	before = e.seq(t)
	res, err = svc.SubmitHostedPromotion(ctx, app.HostedPromotion{FlowID: flowID, Flow: f, LoginID: other, Password: "typed-but-unused", ByCode: true})
	if err != nil || !res.CodeSent {
		t.Fatalf("by code: %+v %v", res, err)
	}
	if stored, err := svc.Flow(ctx, flowID); err != nil || stored.CodeLoginID != other.Value {
		t.Fatalf("the flow does not name the code's address: %+v %v", stored, err)
	}
	p, err := svc.CheckPromotionByCode(ctx, uid, other, e.lastCode(t), app.CodeRequest{IP: "192.0.2.11"})
	if err != nil || !p.Passwordless || p.PasswordHash != "" {
		t.Fatalf("the pending promotion: %+v %v", p, err)
	}
	if got := e.appendedSince(t, before); len(got) != 0 {
		t.Fatalf("by code wrote %v", got)
	}
	// A flow without a guest is no promotion.
	if _, err := svc.SubmitHostedPromotion(ctx, app.HostedPromotion{Flow: app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev"}, LoginID: id}); !errors.Is(err, app.ErrNotAGuestFlow) {
		t.Fatalf("no guest: %v", err)
	}
}

// TestEndFlowAndTheHint: a flow with an id_token_hint ends only as the
// hint's user when it is a sign-in (and is kept for another try), while a
// guest's promotion (its hint checked at authorize) may end as the account
// the guest merged into.
func TestEndFlowAndTheHint(t *testing.T) {
	e := startCommands(t, nil)
	svc, ctx := e.n.Service, context.Background()
	put := func(id string, f app.CodeEntry) {
		f.Kind, f.ClientID, f.ExpiresAt = app.CodeFlow, "idstream-dev", e.n.Clock.Now().Add(30*time.Minute)
		if err := svc.PutCode(ctx, id, f); err != nil {
			t.Fatal(err)
		}
	}
	signIn := app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ResponseType: "code", Subject: "user-a", RedirectURI: "http://localhost:3000/after"}
	put("reauth-flow", signIn)
	if _, err := svc.EndFlow(ctx, app.EndFlow{FlowID: "reauth-flow", Flow: signIn, UserID: "user-b"}); !errors.Is(err, app.ErrReauthenticationOtherUser) {
		t.Fatalf("another user: %v", err)
	}
	if _, err := svc.Flow(ctx, "reauth-flow"); err != nil {
		t.Fatalf("the refused flow is gone: %v", err)
	}
	iss, err := svc.SignUpAnonymous(ctx, app.SignUpAnonymous{ClientID: "idstream-dev", Kind: domain.SessionKindCookie})
	if err != nil {
		t.Fatal(err)
	}
	promo := app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ResponseType: "none", Subject: iss.UserID, UserID: iss.UserID}
	put("promo-flow", promo)
	merged := app.Issued{UserID: "the-account", SessionID: "s"}
	end, err := svc.EndFlow(ctx, app.EndFlow{FlowID: "promo-flow", Flow: promo, UserID: merged.UserID, Started: &merged})
	if err != nil || end.Session == nil || end.Session.UserID != "the-account" {
		t.Fatalf("a hinted promotion ending as the merged account: %+v %v", end, err)
	}
	if _, err := svc.Flow(ctx, "promo-flow"); err == nil {
		t.Fatal("an ended flow is still there")
	}
	if _, err := svc.EndFlow(ctx, app.EndFlow{FlowID: "promo-flow", Flow: promo, UserID: merged.UserID, Started: &merged}); !errors.Is(err, app.ErrFlowSpent) {
		t.Fatalf("an ended flow ended again: %v", err)
	}
	// A flow another tab changed (a code sent) still ends, once.
	changed := app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ResponseType: "code", RedirectURI: "http://localhost:3000/after", CodeChallenge: "x"}
	put("changed-flow", changed)
	if err := svc.SetFlowCodeLoginID(ctx, "changed-flow", "email", "ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if end, err := svc.EndFlow(ctx, app.EndFlow{FlowID: "changed-flow", Flow: changed, UserID: iss.UserID}); err != nil || end.Code == "" {
		t.Fatalf("a changed flow: %+v %v", end, err)
	}
	// Two submissions of one page (a double click, two tabs): exactly one
	// ends the flow and gets an authorization code.
	code := app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ResponseType: "code", RedirectURI: "http://localhost:3000/after", CodeChallenge: "x"}
	put("double-flow", code)
	var ok, spent atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			end, err := svc.EndFlow(ctx, app.EndFlow{FlowID: "double-flow", Flow: code, UserID: iss.UserID})
			switch {
			case err == nil && end.Code != "":
				ok.Add(1)
			case errors.Is(err, app.ErrFlowSpent):
				spent.Add(1)
			default:
				t.Errorf("ending a flow: %+v %v", end, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || spent.Load() != 7 {
		t.Fatalf("one flow ended %d times (%d refused)", ok.Load(), spent.Load())
	}
}
