package hosted_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/api/hosted"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/testenv/upstream"
)

// idpEnv is a node with one upstream provider, "acme", a real OpenID
// provider (zitadel/oidc's op package) on loopback.
type idpEnv struct {
	n  *testenv.Node
	op *upstream.Provider
}

type idpOptions struct {
	policy string
	life   time.Duration
	// provider changes the provider's configuration (given the running
	// OP) before the node starts.
	provider func(*config.Provider, *upstream.Provider)
	// authorizeBurst, when set, is rate_limits.authorize's burst (per hour).
	authorizeBurst int
}

func startIdP(t *testing.T, o idpOptions) idpEnv {
	t.Helper()
	var e idpEnv
	e.n = testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
		if o.policy != "" {
			c.Promotion.ConflictPolicy = o.policy
		}
		if o.authorizeBurst > 0 {
			c.RateLimits.Authorize = config.RateLimit{Burst: &o.authorizeBurst, Per: config.Duration(time.Hour)}
		}
		e.op = upstream.Start(t, upstream.Options{RedirectURI: c.PublicURL + hosted.CallbackPath, IDTokenLifetime: o.life})
		testenv.RecordSecret("upstream client secret", e.op.ClientSecret)
		p := config.Provider{ID: "acme", Name: "Acme", Issuer: e.op.Issuer, ClientID: e.op.ClientID,
			ClientSecretEnv: "ACME_SECRET", Clients: []string{config.DevClientID}}
		if o.provider != nil {
			o.provider(&p, e.op)
		}
		c.Providers = []config.Provider{p}
		if err := c.PrepareProviders(func(k string) string {
			if k == "ACME_SECRET" {
				return e.op.ClientSecret
			}
			return ""
		}); err != nil {
			t.Fatal(err)
		}
	}})
	return e
}

// toProvider opens a flow page's "Continue with Acme" and goes through the
// provider's pages (its login signs in the user SetUser chose); it returns
// the path (with query) the provider sends the browser back to. tamper, if
// set, changes the authorization request on its way to the provider.
func toProvider(t *testing.T, c *apitest.Client, page string, tamper func(url.Values)) string {
	t.Helper()
	return toProviderFrom(t, c, page+"/upstream/acme", tamper)
}

// toProviderFrom is toProvider from a path that redirects to the provider.
func toProviderFrom(t *testing.T, c *apitest.Client, start string, tamper func(url.Values)) string {
	t.Helper()
	return followProvider(t, c, c.Do(http.MethodGet, start, "", "", nil), tamper)
}

// followProvider is toProviderFrom from the answer that sends the browser to
// the provider.
func followProvider(t *testing.T, c *apitest.Client, r apitest.Response, tamper func(url.Values)) string {
	t.Helper()
	if r.Status != http.StatusFound {
		t.Fatalf("continue with acme: %d %s", r.Status, r.Raw)
	}
	next, _ := url.Parse(r.Header.Get("Location"))
	if tamper != nil {
		q := next.Query()
		tamper(q)
		next.RawQuery = q.Encode()
	}
	for range 10 {
		resp, err := c.HTTP.Get(next.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("at the provider (%s): %d %s", next, resp.StatusCode, body)
		}
		loc, err := next.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(loc.String(), c.Base+hosted.CallbackPath) {
			return strings.TrimPrefix(loc.String(), c.Base)
		}
		next = loc
	}
	t.Fatal("the provider never sent the browser back")
	return ""
}

// codeOf is the authorization code of a flow's last redirect to the app.
func codeOf(t *testing.T, r apitest.Response) string {
	t.Helper()
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != http.StatusFound || loc == nil || loc.Host != "localhost:3000" || loc.Query().Get("code") == "" {
		t.Fatalf("want a redirect to the app with a code, got %d %v %s", r.Status, r.Header, r.Raw)
	}
	return loc.Query().Get("code")
}

// events are the log's events (type and payload), in order.
func events(t *testing.T, n *testenv.Node) []eventstore.Record {
	t.Helper()
	last := apitest.LastSeq(t, n)
	var out []eventstore.Record
	for seq := uint64(1); seq <= last; seq++ {
		r, err := n.Store.Get(context.Background(), seq)
		if err != nil {
			continue // a batch's gaps
		}
		out = append(out, r)
	}
	return out
}

func countType(recs []eventstore.Record, typ string) int {
	n := 0
	for _, r := range recs {
		if r.Type == typ {
			n++
		}
	}
	return n
}

// signUpWithAcme signs a new browser up through the provider (code flow)
// and returns its tokens' sub.
func signUpWithAcme(t *testing.T, e idpEnv) (sub, at string) {
	t.Helper()
	c := apitest.NewClient(t, e.n)
	verifier, challenge := apitest.PKCE()
	params := apitest.AuthorizeParams(challenge, "")
	params.Set("nonce", "rp-nonce-1")
	page, _, p := c.HostedFlow(params)
	if !strings.Contains(p.Raw, "Continue with Acme") {
		t.Fatalf("sign-in page offers no provider: %s", p.Raw)
	}
	code := codeOf(t, c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil))
	tok := c.Exchange(code, verifier)
	if tok.Status != 200 {
		t.Fatalf("exchange: %d %s", tok.Status, tok.Raw)
	}
	idt := apitest.Claims(t, apitest.Str(tok.Body, "id_token"))
	if amr, _ := idt["amr"].([]any); len(amr) != 1 || amr[0] != "fed" || idt["nonce"] != "rp-nonce-1" {
		t.Fatalf("ID token of an upstream sign-in: %v", idt)
	}
	info := c.Userinfo(apitest.Str(tok.Body, "access_token"))
	if info.Status != 200 || info.Body["is_anonymous"] != false {
		t.Fatalf("userinfo: %d %s", info.Status, info.Raw)
	}
	return apitest.Str(info.Body, "sub"), apitest.Str(tok.Body, "access_token")
}

// TestUpstreamSignUpAndSignIn: "Continue with Acme" on the sign-in page
// makes an account at first (identity.external.linked.v1 on its own
// subject, user.registered.v1 with method external) and signs in to the
// same account afterwards, in another browser; the ID tokens say amr fed.
// The provider's client secret is nowhere in the log.
func TestUpstreamSignUpAndSignIn(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "alice", Email: "alice@acme.test", EmailVerified: upstream.Verified(true)})
	first, _ := signUpWithAcme(t, e)
	again, _ := signUpWithAcme(t, e)
	if first == "" || first != again {
		t.Fatalf("second sign-in is another user: %q vs %q", first, again)
	}
	// Another person: a second account without a login ID, which the read
	// models take too (no unique login ID of "").
	e.op.SetUser(upstream.User{Subject: "alan"})
	if other, _ := signUpWithAcme(t, e); other == first {
		t.Fatal("another person at the provider signed in to alice's account")
	}
	testenv.Settle(t, e.n.Pool, e.n.Store, 10*time.Second)
	var rows, nullLogins int
	if err := e.n.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM identities WHERE type = 'external'),
		(SELECT count(*) FROM users WHERE login_id IS NULL AND NOT is_anonymous)`).Scan(&rows, &nullLogins); err != nil || rows != 2 || nullLogins != 2 {
		t.Fatalf("read models: %d external identities, %d users without login ID (%v)", rows, nullLogins, err)
	}
	recs := events(t, e.n)
	if countType(recs, domain.TypeExternalIdentityClaimed) != 2 || countType(recs, domain.TypeUserExternalLinked) != 2 ||
		countType(recs, domain.TypeUserRegistered) != 2 {
		t.Fatalf("events: %d claims, %d links, %d registrations", countType(recs, domain.TypeExternalIdentityClaimed),
			countType(recs, domain.TypeUserExternalLinked), countType(recs, domain.TypeUserRegistered))
	}
	for _, r := range recs {
		if strings.Contains(string(r.Data), e.op.ClientSecret) {
			t.Fatalf("the provider's client secret is in the log: %s %s", r.Type, r.Data)
		}
		if r.Type == domain.TypeUserRegistered {
			var reg domain.UserRegistered
			_ = json.Unmarshal(r.Data, &reg)
			if reg.Method != domain.MethodExternal || reg.Provider != "acme" || reg.LoginID != "" {
				t.Fatalf("registration: %s", r.Data)
			}
		}
		if r.Type == domain.TypeUserExternalLinked && strings.Contains(string(r.Data), `"alice"`) != strings.Contains(string(r.Data), `"email":"alice@acme.test"`) {
			t.Fatalf("link without the verified email: %s", r.Data)
		}
	}
}

// promotionFlow opens the hosted promotion page of a new guest (code
// flow) and returns the page, the guest's sub and refresh token, and the
// PKCE verifier.
func promotionFlow(t *testing.T, c *apitest.Client) (page, sub, rt, verifier string) {
	t.Helper()
	at, rt := apitest.Signup(t, c)
	sub = apitest.Str(c.Userinfo(at).Body, "sub")
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	verifier, challenge := apitest.PKCE()
	page, _, p := c.HostedFlow(apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))))
	if !strings.Contains(p.Raw, "Create your account") || !strings.Contains(p.Raw, "Continue with Acme") {
		t.Fatalf("promotion page: %s", p.Raw)
	}
	return page, sub, rt, verifier
}

// TestUpstreamGuestPromotion: a guest promoted with "Continue with Acme"
// keeps its sub, its guest session ends, and user.promoted.v2 says method
// external.
func TestUpstreamGuestPromotion(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "bob", Email: "bob@acme.test", EmailVerified: upstream.Verified(true)})
	c := apitest.NewClient(t, e.n)
	page, sub, rt, verifier := promotionFlow(t, c)
	code := codeOf(t, c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil))
	tok := c.Exchange(code, verifier)
	info := c.Userinfo(apitest.Str(tok.Body, "access_token"))
	if tok.Status != 200 || apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false {
		t.Fatalf("promoted: %d %s / %s", tok.Status, tok.Raw, info.Raw)
	}
	if r := apitest.Refresh(c, rt); r.Status != 400 {
		t.Fatalf("the guest's refresh token survived the promotion: %d", r.Status)
	}
	var promoted domain.UserPromoted
	for _, r := range events(t, e.n) {
		if r.Type == domain.TypeUserPromoted {
			_ = json.Unmarshal(r.Data, &promoted)
		}
	}
	if promoted.UserID != sub || promoted.Method != domain.MethodExternal || promoted.Provider != "acme" {
		t.Fatalf("user.promoted: %+v", promoted)
	}
	// Signing in with Acme later is the same account.
	if again, _ := signUpWithAcme(t, e); again != sub {
		t.Fatalf("sign-in after promotion: %q, want %q", again, sub)
	}
}

// TestUpstreamPromotionConflict: a guest promoting with an external
// identity another account holds is refused under the policy "error" (the
// guest untouched), and merged into that account under "login".
func TestUpstreamPromotionConflict(t *testing.T) {
	for _, policy := range []string{"error", "login"} {
		t.Run(policy, func(t *testing.T) {
			e := startIdP(t, idpOptions{policy: policy})
			e.op.SetUser(upstream.User{Subject: "carol", Email: "carol@acme.test", EmailVerified: upstream.Verified(true)})
			owner, _ := signUpWithAcme(t, e)
			c := apitest.NewClient(t, e.n)
			page, guest, rt, verifier := promotionFlow(t, c)
			back := c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil)
			if policy == "error" {
				if back.Status != http.StatusConflict || !strings.Contains(back.Raw, "already linked to another account") {
					t.Fatalf("conflict page: %d %s", back.Status, back.Raw)
				}
				if r := apitest.Refresh(c, rt); r.Status != 200 {
					t.Fatalf("the refused guest lost its session: %d %s", r.Status, r.Raw)
				}
				return
			}
			tok := c.Exchange(codeOf(t, back), verifier)
			info := c.Userinfo(apitest.Str(tok.Body, "access_token"))
			if tok.Status != 200 || apitest.Str(info.Body, "sub") != owner || owner == guest {
				t.Fatalf("merge: %d %s; sub %q, want the owner %q", tok.Status, tok.Raw, apitest.Str(info.Body, "sub"), owner)
			}
			if r := apitest.Refresh(c, rt); r.Status != 400 {
				t.Fatalf("the merged guest's refresh token still works: %d", r.Status)
			}
			if countType(events(t, e.n), domain.TypeAnonymousUserMerged) != 1 {
				t.Fatal("no merge event")
			}
		})
	}
}

// TestUpstreamLinkNamesAnAccountWithoutLoginID: the link confirmation of an
// account made with "Continue with Acme" (no login ID) names it by that
// identity and its day of creation, not as "your account": a link mailed
// by its owner to someone else says whose it is.
func TestUpstreamLinkNamesAnAccountWithoutLoginID(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "mallory", Email: "mallory@acme.test", EmailVerified: upstream.Verified(true)})
	_, at := signUpWithAcme(t, e)
	c := apitest.NewClient(t, e.n)
	link := c.PostJSON("/api/external_identities/acme/link", "", map[string]string{"Authorization": "Bearer " + at})
	u, err := url.Parse(apitest.Str(link.Result(), "url"))
	if link.Status != 200 || err != nil || u.Path == "" {
		t.Fatalf("link: %d %s", link.Status, link.Raw)
	}
	victim := apitest.NewClient(t, e.n)
	confirm := victim.Do(http.MethodGet, u.Path, "", "", nil)
	page := html.UnescapeString(confirm.Raw)
	if confirm.Status != 200 || strings.Contains(page, "to your account on") || !strings.Contains(page, "Acme (mallory@acme.test)") ||
		!strings.Contains(page, e.n.Clock.Now().UTC().Format("2 January 2006")) {
		t.Fatalf("link confirmation: %d %s", confirm.Status, confirm.Raw)
	}
}

// TestUpstreamLinkShowsALookAlikeForWhatItIs: an account whose login ID
// looks like someone else's cannot hide it on the link confirmation page a
// victim is mailed: an address written with characters that show as
// nothing is no login ID at all, and one with a letter of another script is
// shown with that letter spelled out.
func TestUpstreamLinkShowsALookAlikeForWhatItIs(t *testing.T) {
	e := startIdP(t, idpOptions{})
	apitest.RegularUser(t, apitest.NewClient(t, e.n), "victim@example.com")
	mallory := apitest.NewClient(t, e.n)
	gat, _ := apitest.Signup(t, mallory)
	if r := mallory.Promote(gat, "victim\u200b@example.com", apitest.GoodPassword); r.Status != 400 || r.Reason() != "InvalidEmail" {
		t.Fatalf("a zero-width space in the login ID: %d %s", r.Status, r.Raw)
	}
	prom := mallory.Promote(gat, "vi\u0441tim@example.com", apitest.GoodPassword) // a Cyrillic "с"
	if prom.Status != 200 {
		t.Fatalf("promote: %d %s", prom.Status, prom.Raw)
	}
	link := mallory.PostJSON("/api/external_identities/acme/link", "", map[string]string{"Authorization": "Bearer " + apitest.Str(prom.Result(), "access_token")})
	u, err := url.Parse(apitest.Str(link.Result(), "url"))
	if link.Status != 200 || err != nil || u.Path == "" {
		t.Fatalf("link: %d %s", link.Status, link.Raw)
	}
	confirm := apitest.NewClient(t, e.n).Do(http.MethodGet, u.Path, "", "", nil)
	if page := html.UnescapeString(confirm.Raw); confirm.Status != 200 || !strings.Contains(page, "(written viU+0441tim@example.com)") {
		t.Fatalf("link confirmation: %d %s", confirm.Status, confirm.Raw)
	}
}

// TestUpstreamStartsAreLimited: each "Continue with" start and each link
// URL is an entry in the codes bucket for its lifetime, as a hosted flow
// is, and counts against the same limit per address: past it, a page that
// says to wait (429), or the API's RateLimited.
func TestUpstreamStartsAreLimited(t *testing.T) {
	e := startIdP(t, idpOptions{authorizeBurst: 3})
	c := apitest.NewClient(t, e.n)
	_, challenge := apitest.PKCE()
	page, _, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, "")) // one
	for i := range 2 {
		if r := c.Do(http.MethodGet, page+"/upstream/acme", "", "", nil); r.Status != http.StatusFound {
			t.Fatalf("start %d within the limit: %d %s", i+1, r.Status, r.Raw)
		}
	}
	r := c.Do(http.MethodGet, page+"/upstream/acme", "", "", nil)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || r.Header.Get("Location") != "" {
		t.Fatalf("a start past the limit: %d %v %s", r.Status, r.Header, r.Raw)
	}
	at, _ := apitest.Signup(t, c)
	if r := c.PostJSON("/api/external_identities/acme/link", "", map[string]string{"Authorization": "Bearer " + at}); r.Status != 429 || r.Reason() != "RateLimited" {
		t.Fatalf("a link URL past the limit: %d %s", r.Status, r.Raw)
	}
}

// TestUpstreamMergeCodeAfterUnlink: under the policy "login", the code of a
// guest's merge into the account holding an identity starts nothing once
// that account has unlinked the identity (the code was issued while it
// held it); the guest is left as it was.
func TestUpstreamMergeCodeAfterUnlink(t *testing.T) {
	e := startIdP(t, idpOptions{policy: "login"})
	ctx := context.Background()
	owner := apitest.RegularUser(t, apitest.NewClient(t, e.n), "carol@example.com")
	ref := domain.ExternalRef{Provider: "acme", Subject: "carol"}
	if err := e.n.Service.LinkExternal(ctx, owner, 0, ref, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	e.op.SetUser(upstream.User{Subject: "carol", Email: "carol@acme.test", EmailVerified: upstream.Verified(true)})
	c := apitest.NewClient(t, e.n)
	page, _, rt, verifier := promotionFlow(t, c)
	code := codeOf(t, c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil))
	if err := e.n.Service.UnlinkExternal(ctx, owner, ref, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	if tok := c.Exchange(code, verifier); tok.Status != 400 || apitest.Str(tok.Body, "error") != "invalid_grant" {
		t.Fatalf("a merge code after the identity was unlinked: %d %s", tok.Status, tok.Raw)
	}
	if countType(events(t, e.n), domain.TypeAnonymousUserMerged) != 0 {
		t.Fatal("the guest was merged")
	}
	if r := apitest.Refresh(c, rt); r.Status != 200 {
		t.Fatalf("the guest lost its session: %d %s", r.Status, r.Raw)
	}
}

// TestUpstreamRefusals: a tampered ID token (its signature broken on the
// way from the token endpoint), an expired one, a wrong nonce, a wrong or
// replayed state, a callback from another browser, and an email the
// provider says it has not verified: each a clear page and no event.
func TestUpstreamRefusals(t *testing.T) {
	var tamper sync.Map // "on" → true while the proxy breaks ID tokens
	e := startIdP(t, idpOptions{life: time.Minute, provider: func(p *config.Provider, op *upstream.Provider) {
		// The token endpoint is reached through a proxy that can break the
		// ID token's signature; the rest is the provider's own.
		target, _ := url.Parse(op.Issuer)
		proxy := httputil.NewSingleHostReverseProxy(target)
		proxy.ModifyResponse = func(resp *http.Response) error {
			if _, on := tamper.Load("on"); !on || resp.StatusCode != 200 {
				return nil
			}
			var body map[string]any
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if json.Unmarshal(raw, &body) == nil {
				if idt, ok := body["id_token"].(string); ok {
					parts := strings.Split(idt, ".")
					claims, _ := base64.RawURLEncoding.DecodeString(parts[1])
					parts[1] = base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"sub":"dave"`, `"sub":"mallory"`, 1)))
					body["id_token"] = strings.Join(parts, ".")
					raw, _ = json.Marshal(body)
				}
			}
			resp.Body = io.NopCloser(strings.NewReader(string(raw)))
			resp.ContentLength = int64(len(raw))
			resp.Header.Del("Content-Length")
			return nil
		}
		srv := httptest.NewServer(proxy)
		t.Cleanup(srv.Close)
		p.AuthURL, p.TokenURL, p.JWKSURL = op.URL("/authorize"), srv.URL+"/oauth/token", op.URL("/keys")
	}})
	e.op.SetUser(upstream.User{Subject: "dave", Email: "dave@acme.test", EmailVerified: upstream.Verified(true)})
	c := apitest.NewClient(t, e.n)
	_, challenge := apitest.PKCE()
	page, _, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	before := apitest.LastSeq(t, e.n)
	expect := func(name string, r apitest.Response, status int, text string, logged ...string) {
		t.Helper()
		if r.Status != status || !strings.Contains(r.Raw, text) {
			t.Errorf("%s: %d, want %d with %q: %s", name, r.Status, status, text, r.Raw)
		}
		// The refusal is logged for what it was (the page says less).
		logs := e.n.Logs.String()
		for _, l := range logged {
			if !strings.Contains(logs[strings.LastIndex(logs, "upstream sign-in refused"):], l) {
				t.Errorf("%s: the last refusal logged is not %q", name, l)
			}
		}
		if apitest.LastSeq(t, e.n) != before {
			t.Fatalf("%s wrote events", name)
		}
	}

	tamper.Store("on", true)
	expect("tampered ID token", c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil), 400, "could not be verified", "failed to verify signature")
	tamper.Delete("on")

	expect("wrong nonce", c.Do(http.MethodGet, toProvider(t, c, page, func(q url.Values) { q.Set("nonce", "not-the-nonce") }), "", "", nil),
		400, "could not be verified", "nonce does not match")

	back := toProvider(t, c, page, nil)
	u, _ := url.Parse(back)
	q := u.Query()
	q.Set("state", q.Get("state")+"x")
	expect("wrong state", c.Do(http.MethodGet, hosted.CallbackPath+"?"+q.Encode(), "", "", nil), 403, "another browser")
	expect("callback in another browser", apitest.NewClient(t, e.n).Do(http.MethodGet, back, "", "", nil), 403, "another browser")

	e.op.SetUser(upstream.User{Subject: "erin", Email: "erin@acme.test", EmailVerified: upstream.Verified(false)})
	expect("unverified email", c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil), 400, "not verified your email", "has not verified the email")

	// After all that, the flow still works, once.
	e.op.SetUser(upstream.User{Subject: "dave", Email: "dave@acme.test", EmailVerified: upstream.Verified(true)})
	back = toProvider(t, c, page, nil)
	codeOf(t, c.Do(http.MethodGet, back, "", "", nil))
	if r := c.Do(http.MethodGet, back, "", "", nil); r.Status != 403 {
		t.Errorf("replayed callback: %d %s", r.Status, r.Raw)
	}

	// Last (the clock does not go back): an ID token that expired while
	// the browser was on its way back.
	page, _, _ = c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	back = toProvider(t, c, page, nil)
	e.n.Clock.Advance(2 * time.Minute) // past the ID token's exp (one minute)
	before = apitest.LastSeq(t, e.n)
	expect("expired ID token", c.Do(http.MethodGet, back, "", "", nil), 400, "could not be verified", "token is expired")
}

// TestUpstreamProviderDown: the provider stops answering while the guest
// is at its pages (the code cannot be exchanged), or is down when the
// guest clicks "Continue with": a clear page each time, and the guest is
// still a guest with a working session.
func TestUpstreamProviderDown(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "frank"})
	c := apitest.NewClient(t, e.n)
	page, sub, rt, _ := promotionFlow(t, c)
	back := toProvider(t, c, page, nil)
	e.op.Close()
	before := apitest.LastSeq(t, e.n)
	r := c.Do(http.MethodGet, back, "", "", nil)
	if r.Status != http.StatusBadGateway || !strings.Contains(r.Raw, "not answering") || !strings.Contains(r.Raw, "Create your account") {
		t.Fatalf("provider down at the exchange: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, e.n) != before {
		t.Fatal("a failed upstream sign-in wrote events")
	}
	ref := apitest.Refresh(c, rt)
	if ref.Status != 200 || apitest.Str(c.Userinfo(apitest.Str(ref.Body, "access_token")).Body, "sub") != sub {
		t.Fatalf("the guest lost its session: %d %s", ref.Status, ref.Raw)
	}

	// A node whose provider is down from the start (discovery fails).
	down := startIdP(t, idpOptions{provider: func(p *config.Provider, op *upstream.Provider) { op.Close() }})
	c2 := apitest.NewClient(t, down.n)
	_, challenge := apitest.PKCE()
	page2, _, _ := c2.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	if r := c2.Do(http.MethodGet, page2+"/upstream/acme", "", "", nil); r.Status != http.StatusBadGateway || !strings.Contains(r.Raw, "not answering") {
		t.Fatalf("provider down at the start: %d %s", r.Status, r.Raw)
	}
}

// TestUpstreamRaceForOneIdentity: two guests come back from the provider
// with one external identity and exchange their codes at once: exactly one
// is promoted with it, the other is refused and stays a guest.
func TestUpstreamRaceForOneIdentity(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "grace"})
	type guest struct {
		c                     *apitest.Client
		sub, rt, verifier, cd string
	}
	var gs [2]*guest
	for i := range gs {
		c := apitest.NewClient(t, e.n)
		page, sub, rt, verifier := promotionFlow(t, c)
		gs[i] = &guest{c: c, sub: sub, rt: rt, verifier: verifier}
		gs[i].cd = codeOf(t, c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil))
	}
	var wg sync.WaitGroup
	results := make([]apitest.Response, 2)
	for i, g := range gs {
		wg.Go(func() { results[i] = g.c.Exchange(g.cd, g.verifier) })
	}
	wg.Wait()
	won := -1
	for i, r := range results {
		switch {
		case r.Status == 200 && won < 0:
			won = i
		case r.Status == 200:
			t.Fatal("both guests were promoted with one external identity")
		case r.Reason() != "ExternalIdentityTaken":
			t.Fatalf("loser: %d %s", r.Status, r.Raw)
		}
	}
	if won < 0 {
		t.Fatalf("no winner: %s / %s", results[0].Raw, results[1].Raw)
	}
	loser := gs[1-won]
	if r := apitest.Refresh(loser.c, loser.rt); r.Status != 200 || c0(loser.c, r) != loser.sub {
		t.Fatalf("the loser is not the guest it was: %d %s", r.Status, r.Raw)
	}
	if n := countType(events(t, e.n), domain.TypeExternalIdentityClaimed); n != 1 {
		t.Fatalf("%d claims of the identity", n)
	}
}

func c0(c *apitest.Client, tok apitest.Response) string {
	info := c.Userinfo(apitest.Str(tok.Body, "access_token"))
	if info.Body["is_anonymous"] != true {
		return "not a guest"
	}
	return apitest.Str(info.Body, "sub")
}

// TestUpstreamLinkAndUnlink: the headless API lists a user's external
// identities, gives a regular user a one-time URL that links one in a
// browser, and unlinks one, but never the account's last way in; a guest
// links by promotion only.
func TestUpstreamLinkAndUnlink(t *testing.T) {
	e := startIdP(t, idpOptions{})
	c := apitest.NewClient(t, e.n)
	guestAT, _ := apitest.Signup(t, c)
	bearer := func(at string) map[string]string { return map[string]string{"Authorization": "Bearer " + at} }
	if r := c.PostJSON("/api/external_identities/acme/link", "", bearer(guestAT)); r.Reason() != "NotRegularUser" {
		t.Fatalf("a guest's link: %d %s", r.Status, r.Raw)
	}
	prom := c.Promote(guestAT, "henry@example.com", apitest.GoodPassword)
	at := apitest.Str(prom.Result(), "access_token")
	sub := apitest.Str(c.Userinfo(at).Body, "sub")
	list := func(at string) []any {
		t.Helper()
		r := c.Do(http.MethodGet, "/api/external_identities", "", "", bearer(at))
		ids, _ := r.Result()["identities"].([]any)
		if provs, _ := r.Result()["providers"].([]any); r.Status != 200 || len(provs) != 1 {
			t.Fatalf("list: %d %s", r.Status, r.Raw)
		}
		return ids
	}
	if ids := list(at); len(ids) != 0 {
		t.Fatalf("identities before linking: %v", ids)
	}
	if r := c.PostJSON("/api/external_identities/nope/link", "", bearer(at)); r.Reason() != "UnknownIdentityProvider" {
		t.Fatalf("unknown provider: %d %s", r.Status, r.Raw)
	}
	link := c.PostJSON("/api/external_identities/acme/link", "", bearer(at))
	u, err := url.Parse(apitest.Str(link.Result(), "url"))
	if link.Status != 200 || err != nil || u.Path == "" {
		t.Fatalf("link: %d %s", link.Status, link.Raw)
	}
	e.op.SetUser(upstream.User{Subject: "henry-acme", Email: "henry@acme.test", EmailVerified: upstream.Verified(true)})
	// Opening the link shows which account it links to, and a button: a
	// link mailed to someone else does not link their identity at one
	// click. Neither the page nor a form without its token spends the code.
	confirm := c.Do(http.MethodGet, u.Path, "", "", nil)
	m := apitest.CSRFRe.FindStringSubmatch(confirm.Raw)
	if confirm.Status != 200 || m == nil || !strings.Contains(confirm.Raw, "Continue with") {
		t.Fatalf("link confirmation: %d %s", confirm.Status, confirm.Raw)
	}
	if r := apitest.NewClient(t, e.n).PostForm(u.Path, url.Values{"csrf_token": {m[1]}}); r.Status != http.StatusForbidden {
		t.Fatalf("the link's form from another browser: %d %s", r.Status, r.Raw)
	}
	if r := c.PostForm(u.Path, url.Values{"csrf_token": {"forged"}}); r.Status != http.StatusForbidden {
		t.Fatalf("the link's form without its token: %d %s", r.Status, r.Raw)
	}
	if r := c.Do(http.MethodGet, followProvider(t, c, c.PostForm(u.Path, url.Values{"csrf_token": {html.UnescapeString(m[1])}}), nil), "", "", nil); r.Status != 200 || !strings.Contains(r.Raw, "Account linked") {
		t.Fatalf("link done: %d %s", r.Status, r.Raw)
	}
	if r := c.Do(http.MethodGet, u.Path, "", "", nil); r.Status != http.StatusNotFound {
		t.Fatalf("link URL used twice: %d", r.Status)
	}
	if ids := list(at); len(ids) != 1 || ids[0].(map[string]any)["subject"] != "henry-acme" {
		t.Fatalf("identities after linking: %v", ids)
	}
	if again, _ := signUpWithAcme(t, e); again != sub {
		t.Fatalf("sign-in with the linked identity: %q, want %q", again, sub)
	}
	// The user has a password too: the identity may go, once.
	if r := c.Do(http.MethodDelete, "/api/external_identities/acme/henry-acme", "", "", bearer(at)); r.Status != 200 {
		t.Fatalf("unlink: %d %s", r.Status, r.Raw)
	}
	if r := c.Do(http.MethodDelete, "/api/external_identities/acme/henry-acme", "", "", bearer(at)); r.Reason() != "ExternalIdentityNotFound" {
		t.Fatalf("unlink twice: %d %s", r.Status, r.Raw)
	}
	// Signing in with it now makes a new account (it belongs to nobody).
	if other, _ := signUpWithAcme(t, e); other == sub {
		t.Fatal("an unlinked identity still signs in to its old account")
	}
	// An account whose only way in is its identity keeps it.
	e.op.SetUser(upstream.User{Subject: "ida"})
	_, idaAT := signUpWithAcme(t, e)
	if r := c.Do(http.MethodDelete, "/api/external_identities/acme/ida", "", "", bearer(idaAT)); r.Status != 409 || r.Reason() != "LastWayToSignIn" {
		t.Fatalf("unlink the last way in: %d %s", r.Status, r.Raw)
	}
}

// TestUpstreamCookieGuestPromotion: a cookie-mode guest (response_type
// none) promoted with "Continue with Acme" gets a regular cookie session
// of the same sub at the callback, which its guest cookie proved.
func TestUpstreamCookieGuestPromotion(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "jane"})
	c := apitest.NewClient(t, e.n)
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
		t.Fatalf("cookie signup: %d %s", r.Status, r.Raw)
	}
	guest := c.Do(http.MethodGet, "/oauth2/userinfo", "", "", nil)
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"cookie"}`, nil)
	q := url.Values{"response_type": {"none"}, "client_id": {config.DevClientID}, "redirect_uri": {"http://localhost:3000/after"}, "state": {"s"},
		"login_hint": {apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))}}
	page, _, _ := c.HostedFlow(q)
	back := toProvider(t, c, page, nil)
	// The callback opened in a browser without the guest's cookie is
	// refused, and writes nothing.
	other := apitest.NewClient(t, e.n)
	for _, ck := range c.HTTP.Jar.Cookies(mustURL(t, c.Base+hosted.CallbackPath)) {
		if strings.HasPrefix(ck.Name, "idstream_up_") { // the binding only, not the guest's session
			ck.Path = hosted.CallbackPath
			other.HTTP.Jar.SetCookies(mustURL(t, c.Base+hosted.CallbackPath), []*http.Cookie{ck})
		}
	}
	before := apitest.LastSeq(t, e.n)
	if r := other.Do(http.MethodGet, back, "", "", nil); r.Status != http.StatusForbidden {
		t.Fatalf("callback without the guest's session: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, e.n) != before {
		t.Fatal("a refused cookie promotion wrote events")
	}
	back = toProvider(t, c, page, nil)
	r := c.Do(http.MethodGet, back, "", "", nil)
	if loc, _ := url.Parse(r.Header.Get("Location")); r.Status != http.StatusFound || loc.Host != "localhost:3000" || loc.Query().Get("state") != "s" {
		t.Fatalf("cookie promotion: %d %v %s", r.Status, r.Header, r.Raw)
	}
	info := c.Do(http.MethodGet, "/oauth2/userinfo", "", "", nil)
	if info.Status != 200 || apitest.Str(info.Body, "sub") != apitest.Str(guest.Body, "sub") || info.Body["is_anonymous"] != false {
		t.Fatalf("after the promotion: %d %s (guest %s)", info.Status, info.Raw, guest.Raw)
	}
}

// TestUpstreamPlainOAuth2: a provider of kind oauth2 (GitHub's kind: no
// ID token; who signed in comes from its user API with the access token),
// here the same OP's userinfo endpoint, configured by endpoints.
func TestUpstreamPlainOAuth2(t *testing.T) {
	e := startIdP(t, idpOptions{provider: func(p *config.Provider, op *upstream.Provider) {
		p.Kind, p.Issuer = config.ProviderOAuth2, ""
		p.AuthURL, p.TokenURL, p.UserInfoURL = op.URL("/authorize"), op.URL("/oauth/token"), op.URL("/userinfo")
		p.Scopes = []string{"openid", "email"}
	}})
	e.op.SetUser(upstream.User{Subject: "octo", Email: "octo@acme.test", EmailVerified: upstream.Verified(true)})
	first, _ := signUpWithAcme(t, e)
	if again, _ := signUpWithAcme(t, e); again != first || first == "" {
		t.Fatalf("second sign-in: %q, first %q", again, first)
	}
	for _, r := range events(t, e.n) {
		if r.Type == domain.TypeUserExternalLinked && !strings.Contains(string(r.Data), `"subject":"octo","email":"octo@acme.test"`) {
			t.Fatalf("link: %s", r.Data)
		}
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestUpstreamPortalMasksSecrets: the portal lists the providers, with
// their secret masked.
func TestUpstreamPortalMasksSecrets(t *testing.T) {
	var op *upstream.Provider
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		apitest.WithOperator(c)
		op = upstream.Start(t, upstream.Options{RedirectURI: c.PublicURL + hosted.CallbackPath})
		c.Providers = []config.Provider{{ID: "acme", Name: "Acme", Issuer: op.Issuer, ClientID: op.ClientID, Clients: []string{config.DevClientID}}}
		if err := c.PrepareProviders(func(k string) string {
			if k == "IDSTREAM_IDP_ACME_CLIENT_SECRET" {
				return op.ClientSecret
			}
			return ""
		}); err != nil {
			t.Fatal(err)
		}
	}})
	testenv.RecordSecret("upstream client secret", op.ClientSecret)
	c := apitest.PortalClient(t, n)
	r := c.Get("/portal/authentication/identity-providers")
	if r.Status != 200 || !strings.Contains(r.Raw, "Acme") || !strings.Contains(r.Raw, "from IDSTREAM_IDP_ACME_CLIENT_SECRET") ||
		strings.Contains(r.Raw, op.ClientSecret) || !strings.Contains(r.Raw, op.Issuer) {
		t.Fatalf("portal providers page: %d %s", r.Status, r.Raw)
	}
}

// TestUpstreamDeletedUserReleasesIdentity: an operator's deletion releases
// the user's external identities with it, so the person can sign up anew
// with the provider (a new sub).
func TestUpstreamDeletedUserReleasesIdentity(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "kim"})
	sub, _ := signUpWithAcme(t, e)
	c := apitest.NewClient(t, e.n)
	if r := c.Admin(http.MethodDelete, "/admin/users/"+sub, `{"reason":"asked to be forgotten"}`); r.Status/100 != 2 {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if countType(events(t, e.n), domain.TypeExternalIdentityReleased) != 1 {
		t.Fatal("the deletion did not release the external identity")
	}
	if again, _ := signUpWithAcme(t, e); again == sub || again == "" {
		t.Fatalf("sign-up after deletion: %q (deleted %q)", again, sub)
	}
}

// TestUpstreamSettingsPage: a regular user with a cookie session sees its
// external identities on the settings page, links another through the
// provider, removes one, and cannot remove its last way in; a form without
// the page's token is refused.
func TestUpstreamSettingsPage(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "lena", Email: "lena@acme.test", EmailVerified: upstream.Verified(true)})
	c := apitest.NewClient(t, e.n)
	if r := c.Do(http.MethodGet, "/settings/identities", "", "", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("settings without a session: %d", r.Status)
	}
	// Sign up with Acme in cookie mode.
	q := url.Values{"response_type": {"none"}, "client_id": {config.DevClientID}, "redirect_uri": {"http://localhost:3000/after"}, "state": {"s"}}
	page, _, _ := c.HostedFlow(q)
	if r := c.Do(http.MethodGet, toProvider(t, c, page, nil), "", "", nil); r.Status != http.StatusFound {
		t.Fatalf("cookie sign-up: %d %s", r.Status, r.Raw)
	}
	settings := func(query ...string) apitest.Response {
		t.Helper()
		r := c.Do(http.MethodGet, "/settings/identities"+strings.Join(query, ""), "", "", nil)
		if r.Status != 200 {
			t.Fatalf("settings: %d %s", r.Status, r.Raw)
		}
		apitest.CheckPageHeaders(t, "settings", r)
		return r
	}
	if r := settings(); !strings.Contains(r.Raw, "lena@acme.test") || !strings.Contains(r.Raw, "your only way to sign in") || strings.Contains(r.Raw, ">Remove<") {
		t.Fatalf("settings with one identity: %s", r.Raw)
	}
	// Linking a second identity of the provider (another account there).
	e.op.SetUser(upstream.User{Subject: "lena-work"})
	back := toProviderFrom(t, c, "/settings/identities/link/acme", nil)
	if r := c.Do(http.MethodGet, back, "", "", nil); r.Status != http.StatusSeeOther || r.Header.Get("Location") != "/settings/identities?done=linked" {
		t.Fatalf("link: %d %v %s", r.Status, r.Header, r.Raw)
	}
	r := settings("?done=linked")
	csrf := apitest.CSRFRe.FindStringSubmatch(r.Raw)
	if strings.Count(r.Raw, ">Remove<") != 2 || csrf == nil || !strings.Contains(r.Raw, "Linked") {
		t.Fatalf("settings with two identities: %s", r.Raw)
	}
	before := apitest.LastSeq(t, e.n)
	if r := c.PostForm("/settings/identities/unlink", url.Values{"csrf_token": {"forged"}, "provider": {"acme"}, "subject": {"lena"}}); r.Status != http.StatusForbidden {
		t.Fatalf("unlink without the page's token: %d", r.Status)
	}
	if apitest.LastSeq(t, e.n) != before {
		t.Fatal("a forged unlink wrote events")
	}
	if r := c.PostForm("/settings/identities/unlink", url.Values{"csrf_token": {csrf[1]}, "provider": {"acme"}, "subject": {"lena"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("unlink: %d %s", r.Status, r.Raw)
	}
	r = settings()
	if strings.Contains(r.Raw, "lena@acme.test") || !strings.Contains(r.Raw, "your only way to sign in") {
		t.Fatalf("settings after removing one: %s", r.Raw)
	}
	// The last one cannot go (the page offers no form), even by a
	// hand-made one with the page's token.
	token := ""
	for _, ck := range c.HTTP.Jar.Cookies(mustURL(t, c.Base+"/settings/identities")) {
		if ck.Name == "idstream_settings_csrf" {
			token = ck.Value
		}
	}
	if r := c.PostForm("/settings/identities/unlink", url.Values{"csrf_token": {token}, "provider": {"acme"}, "subject": {"lena-work"}}); r.Status != http.StatusConflict ||
		!strings.Contains(r.Raw, "last way to sign in") {
		t.Fatalf("unlink the last: %d %s", r.Status, r.Raw)
	}
	if r := c.Do(http.MethodGet, "/settings/identities/link/acme", "", "", map[string]string{"Sec-Fetch-Site": "cross-site"}); r.Status != http.StatusForbidden {
		t.Fatalf("link from another site: %d", r.Status)
	}
}

// TestUpstreamFormPost: a provider answering with response_mode form_post
// (Apple's way) posts the code back; the binding cookie is SameSite=None
// and Secure so that the cross-site POST carries it (Go's cookie jar sends
// it to this loopback http server as browsers do to localhost).
func TestUpstreamFormPost(t *testing.T) {
	e := startIdP(t, idpOptions{provider: func(p *config.Provider, _ *upstream.Provider) { p.ResponseMode = "form_post" }})
	e.op.SetUser(upstream.User{Subject: "mira"})
	c := apitest.NewClient(t, e.n)
	verifier, challenge := apitest.PKCE()
	page, _, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	r := c.Do(http.MethodGet, page+"/upstream/acme", "", "", nil)
	var binding *http.Cookie
	for _, raw := range r.Header.Values("Set-Cookie") {
		if ck, err := http.ParseSetCookie(raw); err == nil && strings.HasPrefix(ck.Name, "idstream_up_") {
			binding = ck
		}
	}
	if r.Status != http.StatusFound || binding == nil || !binding.Secure || binding.SameSite != http.SameSiteNoneMode || !binding.HttpOnly {
		t.Fatalf("start: %d, binding cookie %+v", r.Status, binding)
	}
	next, _ := url.Parse(r.Header.Get("Location"))
	if next.Query().Get("response_mode") != "form_post" {
		t.Fatalf("authorization request: %s", next)
	}
	var form string
	for range 10 {
		resp, err := c.HTTP.Get(next.String())
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			form = string(body)
			break
		}
		if next, err = next.Parse(resp.Header.Get("Location")); err != nil || resp.StatusCode != http.StatusFound {
			t.Fatalf("at the provider: %d %s", resp.StatusCode, body)
		}
	}
	field := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" value="([^"]*)"`).FindStringSubmatch(form)
		if m == nil {
			t.Fatalf("no %s in the provider's form: %s", name, form)
		}
		return html.UnescapeString(m[1])
	}
	if !strings.Contains(form, `action="`+c.Base+hosted.CallbackPath+`"`) {
		t.Fatalf("the provider's form posts elsewhere: %s", form)
	}
	post := url.Values{"state": {field("state")}, "code": {field("code")}}.Encode()
	const formType = "application/x-www-form-urlencoded"
	// The posted answer comes back as a top-level GET (which carries the
	// Lax session cookie a cookie-mode promotion needs); nothing is spent
	// by the POST itself.
	again := func(c *apitest.Client) apitest.Response {
		t.Helper()
		r := c.Do(http.MethodPost, hosted.CallbackPath, formType, post, nil)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.Status != http.StatusSeeOther || loc.Path != hosted.CallbackPath || loc.Query().Get("state") != field("state") || loc.Query().Get("code") != field("code") {
			t.Fatalf("form post: %d %v", r.Status, r.Header)
		}
		return c.Do(http.MethodGet, loc.String(), "", "", nil)
	}
	if r := again(apitest.NewClient(t, e.n)); r.Status != http.StatusForbidden {
		t.Fatalf("form post without the binding cookie: %d %s", r.Status, r.Raw)
	}
	back := again(c)
	tok := c.Exchange(codeOf(t, back), verifier)
	if tok.Status != 200 || c.Userinfo(apitest.Str(tok.Body, "access_token")).Body["is_anonymous"] != false {
		t.Fatalf("exchange after form_post: %d %s", tok.Status, tok.Raw)
	}
}

// TestUpstreamFirstSignInRace: two browsers come back from the provider
// with one new external identity at once: one account is registered, and
// both are signed in to it.
func TestUpstreamFirstSignInRace(t *testing.T) {
	e := startIdP(t, idpOptions{})
	e.op.SetUser(upstream.User{Subject: "nico"})
	type browser struct {
		c              *apitest.Client
		back, verifier string
	}
	var bs [2]browser
	for i := range bs {
		c := apitest.NewClient(t, e.n)
		verifier, challenge := apitest.PKCE()
		page, _, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
		bs[i] = browser{c: c, back: toProvider(t, c, page, nil), verifier: verifier}
	}
	var wg sync.WaitGroup
	subs := make([]string, 2)
	for i, b := range bs {
		wg.Go(func() {
			r := b.c.Do(http.MethodGet, b.back, "", "", nil)
			loc, _ := url.Parse(r.Header.Get("Location"))
			if r.Status != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
				t.Errorf("browser %d: %d %s", i, r.Status, r.Raw)
				return
			}
			tok := b.c.Exchange(loc.Query().Get("code"), b.verifier)
			subs[i] = apitest.Str(b.c.Userinfo(apitest.Str(tok.Body, "access_token")).Body, "sub")
		})
	}
	wg.Wait()
	recs := events(t, e.n)
	if subs[0] == "" || subs[0] != subs[1] || countType(recs, domain.TypeUserRegistered) != 1 || countType(recs, domain.TypeExternalIdentityClaimed) != 1 {
		t.Fatalf("subs %q; %d registrations, %d claims", subs, countType(recs, domain.TypeUserRegistered), countType(recs, domain.TypeExternalIdentityClaimed))
	}
}
