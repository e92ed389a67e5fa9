package sdk_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// sessionLimits sets the per-session limits (testenv turns them off).
func sessionLimits(refresh, proofs int) func(*config.Config) {
	return func(c *config.Config) {
		c.RateLimits.Refresh = config.RateLimit{Burst: &refresh, Per: config.Duration(time.Hour)}
		c.RateLimits.DPoPProofs = config.RateLimit{Burst: &proofs, Per: config.Duration(5 * time.Minute)}
	}
}

// flushLimits settles both nodes' fast limiters, as their 50 ms syncs do.
func flushLimits(t *testing.T, nodes ...*testenv.Node) {
	t.Helper()
	for _, n := range append(nodes, nodes[0]) {
		if err := n.Limiter.Flush(context.Background(), n.Clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// A session rotates its refresh token at most rate_limits.refresh times
// (here 3 an hour), counted on every node once they have synced (a node
// decides a session's requests on what it knows, AllowLoose, and settles
// within 50 ms): past it a refresh is 429
// slow_down with Retry-After and writes nothing, and the token it
// presented still works once the bucket refills. A reuse, which revokes,
// is never held back; another session has its own budget.
func TestRefreshLimitPerSession(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: sessionLimits(3, 0)})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: sessionLimits(3, 0), Clock: a.Clock})
	ca, cb := apitest.NewClient(t, a), apitest.NewClient(t, b)

	_, rt := apitest.Signup(t, ca)
	old := rt
	for i := range 3 {
		c := ca
		if i == 2 {
			flushLimits(t, a, b)
			c = cb
		}
		r := apitest.Refresh(c, rt)
		if r.Status != 200 {
			t.Fatalf("refresh %d: %d %s", i, r.Status, r.Raw)
		}
		old, rt = rt, apitest.Str(r.Body, "refresh_token")
	}
	flushLimits(t, a, b)
	before := apitest.LastSeq(t, a)
	for _, c := range []*apitest.Client{ca, cb} {
		r := apitest.Refresh(c, rt)
		if r.Status != 429 || oauthReason(r) != "slow_down/RateLimited" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("a fourth refresh within the hour: %d %v %s", r.Status, r.Header, r.Raw)
		}
	}
	if apitest.LastSeq(t, a) != before {
		t.Fatal("a refresh over the limit wrote events")
	}
	// Another guest's session is not held back.
	_, other := apitest.Signup(t, cb)
	if r := apitest.Refresh(cb, other); r.Status != 200 {
		t.Fatalf("another session's refresh: %d %s", r.Status, r.Raw)
	}
	// 20 minutes refill one (an hour / 3): the held-back token works.
	a.Clock.Advance(20 * time.Minute)
	r := apitest.Refresh(cb, rt)
	if r.Status != 200 {
		t.Fatalf("after the refill: %d %s", r.Status, r.Raw)
	}
	next := apitest.Str(r.Body, "refresh_token")
	if r := apitest.Refresh(cb, next); r.Status != 429 {
		t.Fatalf("the budget is spent again: %d %s", r.Status, r.Raw)
	}
	// An old token presented now is reuse: the session is revoked, limit or
	// not, and its newest token stops working.
	a.Clock.Advance(time.Minute) // past the reuse interval
	if r := apitest.Refresh(ca, old); r.Reason() != "RefreshTokenReused" {
		t.Fatalf("an old token over the limit: %d %s", r.Status, r.Raw)
	}
	a.Clock.Advance(20 * time.Minute)
	if r := apitest.Refresh(cb, next); r.Status == 200 || r.Status == 429 {
		t.Fatalf("the revoked session's newest token: %d %s", r.Status, r.Raw)
	}
}

// Requests with a DPoP-bound access token spend a proof each, which the
// memory bucket keeps for minutes: one session spends at most
// rate_limits.dpop_proofs (here 2 per 5 minutes). Past it userinfo answers
// 429 slow_down with Retry-After (not 401: the token is fine, and an SDK
// must not take it for a dead session) and keeps nothing; a proof by
// another key keeps nothing either.
func TestDPoPProofLimitPerSession(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: sessionLimits(0, 2)})
	c := apitest.NewClient(t, n)
	now := n.Clock.Now
	d, key := apitest.NewDevice(t, jose.RS256), apitest.NewDevice(t, jose.ES256)
	r := keyGrantWith(c, d.JWT(t, c.Challenge(), true, now()), map[string]string{"DPoP": dpop(c, key, "POST", "/oauth2/token", "", now())})
	if r.Status != 200 || apitest.Str(r.Body, "token_type") != "DPoP" {
		t.Fatalf("bound sign-in: %d %s", r.Status, r.Raw)
	}
	at := apitest.Str(r.Body, "access_token")
	userinfo := func(k testenv.Device) apitest.Response {
		return userinfoWith(c, map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(c, k, "GET", "/oauth2/userinfo", at, now())})
	}
	kept := proofsKept(t, n)
	if r := userinfo(apitest.NewDevice(t, jose.ES256)); r.Status != 401 || r.Reason() != "DPoPKeyMismatch" {
		t.Fatalf("a proof by another key: %d %s", r.Status, r.Raw)
	}
	if got := proofsKept(t, n); got != kept {
		t.Fatalf("a proof by another key was kept (%d, was %d)", got, kept)
	}
	for i := range 2 {
		if r := userinfo(key); r.Status != 200 {
			t.Fatalf("userinfo %d: %d %s", i, r.Status, r.Raw)
		}
	}
	kept = proofsKept(t, n)
	r = userinfo(key)
	if r.Status != 429 || oauthReason(r) != "slow_down/RateLimited" || r.Header.Get("Retry-After") == "" ||
		r.Header.Get("WWW-Authenticate") != "" {
		t.Fatalf("a third bound request within 5 minutes: %d %v %s", r.Status, r.Header, r.Raw)
	}
	if got := proofsKept(t, n); got != kept {
		t.Fatalf("a request over the limit kept its proof (%d, was %d)", got, kept)
	}
	// A bearer token (no binding, no proof kept) is not under this limit.
	_, _ = apitest.Signup(t, c)
	bearer, _ := apitest.Signup(t, c)
	for i := range 3 {
		if r := c.Userinfo(bearer); r.Status != 200 {
			t.Fatalf("unbound userinfo %d: %d %s", i, r.Status, r.Raw)
		}
	}
	// 2.5 minutes refill one (settled first: a sync counts what it adds
	// from its own time).
	flushLimits(t, n)
	n.Clock.Advance(150 * time.Second)
	if r := userinfo(key); r.Status != 200 {
		t.Fatalf("after the refill: %d %v %s", r.Status, r.Header, r.Raw)
	}
}
