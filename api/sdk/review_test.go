package sdk_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
)

// Regression tests for the findings of the security review (issue 15): each
// rebuilds the review's case and fails on the code before its fix.

// keySession signs a device in and returns its tokens.
func keySession(t *testing.T, c *apitest.Client, n *testenv.Node, d device, withJWK bool) (at, rt string) {
	t.Helper()
	r := c.KeyGrant(d.JWT(t, c.Challenge(), withJWK, n.Clock.Now()))
	if r.Status != 200 || apitest.Str(r.Body, "refresh_token") == "" {
		t.Fatalf("key sign-in: %d %s", r.Status, r.Raw)
	}
	return apitest.Str(r.Body, "access_token"), apitest.Str(r.Body, "refresh_token")
}

// sessionDead checks that neither token of a session works any more.
func sessionDead(t *testing.T, c *apitest.Client, name, at, rt string) {
	t.Helper()
	if r := c.Userinfo(at); r.Status != 401 {
		t.Errorf("%s: access token still reads userinfo: %d %s", name, r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, rt); r.Status != 400 {
		t.Errorf("%s: refresh token still rotates: %d %s", name, r.Status, r.Raw)
	}
}

// High: a key-pair guest signed in twice promotes through one session; the
// other session must end too.
func TestPromotionEndsEveryGuestSessionHeadless(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	d := apitest.NewDevice(t, jose.ES256)
	at1, rt1 := keySession(t, c, n, d, true)
	at2, _ := keySession(t, c, n, d, false)
	r := c.Promote(at2, "two.sessions@example.com", apitest.GoodPassword)
	if r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	sessionDead(t, c, "S1 (not the one that promoted)", at1, rt1)
	// The new regular session works.
	if info := c.Userinfo(apitest.Str(r.Result(), "access_token")); info.Status != 200 || info.Body["is_anonymous"] != false {
		t.Fatalf("new session: %s", info.Raw)
	}
}

// High: an attacker prepares a key-pair guest and a promotion link; a victim
// opens it and creates an account. The attacker's session must not survive.
func TestPromotionLinkOpenedByAnotherBrowserLeavesPreparerNothing(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	attacker := apitest.NewClient(t, n)
	d := apitest.NewDevice(t, jose.ES256)
	at, rt := keySession(t, attacker, n, d, true)
	promoteJWT := d.Request(t, attacker.Challenge(), "promote", false, n.Clock.Now())
	verifier, challenge := apitest.PKCE()
	hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {promoteJWT}}.Encode()
	victim := apitest.NewClient(t, n)
	page, csrf, _ := victim.HostedFlow(apitest.AuthorizeParams(challenge, hint))
	r := victim.Submit(page, csrf, url.Values{"login_id": {"victim@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc == nil {
		t.Fatalf("victim submit: %d %s", r.Status, r.Raw)
	}
	// Whatever the victim's browser did, the attacker's session never reads
	// a regular account: either it ended, or the guest is still a guest.
	if info := attacker.Userinfo(at); info.Status == 200 && info.Body["is_anonymous"] != true {
		t.Fatalf("the preparer's access token reads the promoted account: %s", info.Raw)
	}
	if rr := apitest.Refresh(attacker, rt); rr.Status == 200 {
		if info := attacker.Userinfo(apitest.Str(rr.Body, "access_token")); info.Body["is_anonymous"] != true {
			t.Fatalf("the preparer's refresh token rotates into the promoted account: %s", info.Raw)
		}
	}
	// The promotion waits for the code's exchange, which only the holder of
	// the PKCE verifier can make: the victim's browser cannot, so no
	// account was made and the victim's email is still free.
	code := loc.Query().Get("code")
	if r := victim.Exchange(code, "not-the-verifier-"+strings.Repeat("x", 40)); r.Reason() != "PKCEMismatch" {
		t.Fatalf("exchange without the verifier: %s", r.Raw)
	}
	if info := attacker.Userinfo(at); info.Status != 200 || info.Body["is_anonymous"] != true {
		t.Fatalf("the prepared guest was promoted by a browser that cannot finish the flow: %d %s", info.Status, info.Raw)
	}
	other := apitest.NewClient(t, n)
	oat, _ := apitest.Signup(t, other)
	if r := other.Promote(oat, "victim@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatalf("the victim's email was claimed by the unfinished flow: %d %s", r.Status, r.Raw)
	}
	_ = verifier
}

// High, cookie mode: a hosted promotion without a code exchange is bound to
// the browser that holds the guest's session cookie.
func TestCookiePromotionLinkRefusedInAnotherBrowser(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	guest := apitest.NewClient(t, n)
	if r := guest.PostJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie"}`, nil); r.Status != 200 {
		t.Fatalf("cookie signup: %d %s", r.Status, r.Raw)
	}
	pc := guest.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"cookie"}`, nil)
	params := url.Values{"response_type": {"none"}, "client_id": {"idstream-dev"}, "redirect_uri": {"http://localhost:3000/after"},
		"login_hint": {apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))}}
	other := apitest.NewClient(t, n)
	page, csrf, _ := other.HostedFlow(params)
	before := apitest.LastSeq(t, n)
	if r := other.Submit(page, csrf, url.Values{"login_id": {"cookie-victim@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 403 {
		t.Fatalf("another browser promoted the cookie guest: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("the refused promotion wrote events")
	}
	page, csrf, _ = guest.HostedFlow(params)
	if r := guest.Submit(page, csrf, url.Values{"login_id": {"cookie-owner@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 302 {
		t.Fatalf("the guest's own browser: %d %s", r.Status, r.Raw)
	}
	if info := guest.Userinfo(""); info.Status != 200 || info.Body["is_anonymous"] != false {
		t.Fatalf("after cookie promotion: %d %s", info.Status, info.Raw)
	}
}

// Concurrent exchanges of a promotion's code: the guest is promoted once,
// and whatever either exchange was given is revoked.
func TestConcurrentExchangesOfAPromotionCode(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		many := 1000
		c.RateLimits.SignInPerIP.Burst = &many
	}})
	c := apitest.NewClient(t, n)
	for round := range 10 {
		at, _ := apitest.Signup(t, c)
		pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
		verifier, challenge := apitest.PKCE()
		page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))))
		r := c.Submit(page, csrf, url.Values{"login_id": {fmt.Sprintf("race%d@example.com", round)}, "password": {apitest.GoodPassword}})
		loc, _ := url.Parse(r.Header.Get("Location"))
		code := loc.Query().Get("code")
		out := make([]apitest.Response, 3)
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = c.Exchange(code, verifier) }()
		}
		wg.Wait()
		for _, o := range out {
			if o.Status == 200 {
				if rr := apitest.Refresh(c, apitest.Str(o.Body, "refresh_token")); rr.Status == 200 {
					t.Fatalf("round %d: a session of a reused promotion code is live", round)
				}
			} else if o.Reason() != "AuthorizationCodeReused" {
				t.Fatalf("round %d: %d %s", round, o.Status, o.Raw)
			}
		}
	}
}

// High: a promotion ends every outstanding promotion code of the guest.
func TestPromotionEndsOutstandingPromotionCodes(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	at, _ := apitest.Signup(t, c)
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	code := apitest.Str(pc.Result(), "promotion_code")
	if code == "" {
		t.Fatalf("promotion code: %s", pc.Raw)
	}
	// A page opened with the code before the promotion, and one after.
	_, challenge := apitest.PKCE()
	page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, apitest.PromotionHint(code)))
	if r := c.Promote(at, "codes@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	r := c.Do(http.MethodGet, "/oauth2/authorize?"+apitest.AuthorizeParams(challenge, apitest.PromotionHint(code)).Encode(), "", "", nil)
	if loc, _ := url.Parse(r.Header.Get("Location")); r.Status != 302 || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("code after promotion opened a page: %d %v", r.Status, r.Header)
	}
	if r := c.Submit(page, csrf, url.Values{"login_id": {"second@example.com"}, "password": {apitest.GoodPassword}}); r.Status < 400 {
		t.Fatalf("page opened before the promotion still promotes: %d %s", r.Status, r.Raw)
	}
}

// Low 4: disabling a user right after its sign-ins revokes every session,
// including those the read model has not got yet; enabling revives none.
func TestDisableRevokesSessionsTheReadModelLacks(t *testing.T) {
	nats := testenv.StartNATS(t)
	// No projections: the read model never has the sessions.
	n := testenv.StartNode(t, nats, testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
	}, NoProjections: true})
	c := apitest.NewClient(t, n)
	sub := apitest.RegularUser(t, c, "disabled@example.com")
	var rts []string
	for range 10 {
		verifier, challenge := apitest.PKCE()
		page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
		r := c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"disabled@example.com"}, "password": {apitest.GoodPassword}})
		loc, _ := url.Parse(r.Header.Get("Location"))
		tok := c.Exchange(loc.Query().Get("code"), verifier)
		if tok.Status != 200 {
			t.Fatalf("sign-in: %d %s", tok.Status, tok.Raw)
		}
		rts = append(rts, apitest.Str(tok.Body, "refresh_token"))
	}
	admin := map[string]string{"Authorization": "Bearer " + apitest.AdminKey}
	if r := c.PostJSON("/admin/users/"+sub+"/disable", `{"reason":"review"}`, admin); r.Status != 200 {
		t.Fatalf("disable: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/admin/users/"+sub+"/enable", `{}`, admin); r.Status != 200 {
		t.Fatalf("enable: %d %s", r.Status, r.Raw)
	}
	alive := 0
	for _, rt := range rts {
		if apitest.Refresh(c, rt).Status == 200 {
			alive++
		}
	}
	if alive != 0 {
		t.Fatalf("%d of %d sessions survived disable and work again after enable", alive, len(rts))
	}
}

// Low 5: a key belongs to the client that registered it.
func TestKeyPairGrantRefusesAnotherClient(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		long := c.Clients[0]
		long.ClientID, long.Name = "long-lived", "Long-lived"
		long.RefreshTokenLifetime = domain.SecondsOf(52 * 7 * 24 * time.Hour)
		c.Clients[0].RefreshTokenLifetime = domain.SecondsOf(3 * time.Minute)
		c.Clients[0].RefreshTokenIdleTimeout = domain.SecondsOf(3 * time.Minute)
		c.Clients = append(c.Clients, long)
	}})
	c := apitest.NewClient(t, n)
	d := apitest.NewDevice(t, jose.ES256)
	keySession(t, c, n, d, true)
	for _, action := range []string{"auth", "promote"} {
		jwt := d.Request(t, c.Challenge(), action, false, n.Clock.Now())
		if action == "auth" {
			r := c.PostForm("/oauth2/token", url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"},
				"client_id": {"long-lived"}, "jwt": {jwt}})
			if r.Status != 400 || r.Reason() != "KeyOtherClient" {
				t.Fatalf("another client's key grant: %d %s", r.Status, r.Raw)
			}
			continue
		}
		_, challenge := apitest.PKCE()
		p := apitest.AuthorizeParams(challenge, "https://authgear.com/login_hint?"+url.Values{"type": {"anonymous"}, "jwt": {jwt}}.Encode())
		p.Set("client_id", "long-lived")
		r := c.Do(http.MethodGet, "/oauth2/authorize?"+p.Encode(), "", "", nil)
		if loc, _ := url.Parse(r.Header.Get("Location")); r.Status != 302 || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("another client's promote request: %d %v", r.Status, r.Header)
		}
	}
	// The registering client still signs the device in.
	keySession(t, c, n, d, false)
}

// Low 6: of two concurrent exchanges of one code, one may win, but reuse
// revokes what the code gave, whatever the interleaving.
func TestConcurrentCodeExchangesLeaveNoLiveSession(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		many := 1000
		c.RateLimits.SignInPerLoginID.Burst = &many
	}})
	c := apitest.NewClient(t, n)
	apitest.RegularUser(t, c, "race@example.com")
	for round := range 25 {
		verifier, challenge := apitest.PKCE()
		page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
		r := c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"race@example.com"}, "password": {apitest.GoodPassword}})
		loc, _ := url.Parse(r.Header.Get("Location"))
		code := loc.Query().Get("code")
		if code == "" {
			t.Fatalf("round %d: sign-in: %d %s", round, r.Status, r.Raw)
		}
		var wg sync.WaitGroup
		out := make([]apitest.Response, 4)
		for i := range out {
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = c.Exchange(code, verifier) }()
		}
		wg.Wait()
		for _, o := range out {
			if o.Status != 200 {
				if o.Reason() != "AuthorizationCodeReused" {
					t.Fatalf("round %d: loser: %d %s", round, o.Status, o.Raw)
				}
				continue
			}
			if r := apitest.Refresh(c, apitest.Str(o.Body, "refresh_token")); r.Status == 200 {
				t.Fatalf("round %d: the winner's session stayed live after the code's reuse", round)
			}
		}
	}
}

// signInFrom tries a hosted-page sign-in from an address and returns the
// page's status.
func signInFrom(t *testing.T, n *testenv.Node, ip, loginID, pw string) int {
	t.Helper()
	c := apitest.NewClient(t, n)
	c.From = ip
	_, challenge := apitest.PKCE()
	page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	return c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {loginID}, "password": {pw}}).Status
}

// Low 7: someone failing on an account from their addresses never locks its
// owner out, users and portal operators alike.
func TestSignInLockoutSparesTheOwner(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.WithOperator(c)
		c.TrustedProxies = []string{"127.0.0.1/32"}
		three := 3
		c.RateLimits.SignInPerLoginID.Burst = &three
	}})
	c := apitest.NewClient(t, n)
	apitest.RegularUser(t, c, "owner@example.com")
	// One address guessing: it is stopped, the owner elsewhere is not.
	for i := range 4 {
		want := 401
		if i == 3 {
			want = 429
		}
		if got := signInFrom(t, n, "203.0.113.1", "owner@example.com", "wrong-guess-guess"); got != want {
			t.Fatalf("guess %d from one address: %d, want %d", i, got, want)
		}
	}
	if got := signInFrom(t, n, "198.51.100.1", "Owner@example.com", apitest.GoodPassword); got != 302 {
		t.Fatalf("owner after one address's guesses: %d", got)
	}
	// Many addresses guessing reach the account's ceiling (10 × 3
	// failures): then an address that failed is refused at once, a clean one
	// still gets one check, and the owner from a clean address gets in.
	for i := range 10 {
		for range 3 {
			signInFrom(t, n, fmt.Sprintf("203.0.114.%d", i), "owner@example.com", "wrong-guess-guess")
		}
	}
	if got := signInFrom(t, n, "203.0.115.1", "owner@example.com", "wrong-guess-guess"); got != 401 {
		t.Fatalf("a clean address over the ceiling gets its one check: %d", got)
	}
	if got := signInFrom(t, n, "203.0.115.1", "owner@example.com", "wrong-guess-guess"); got != 429 {
		t.Fatalf("an address that failed, over the ceiling: %d, want 429", got)
	}
	if got := signInFrom(t, n, "198.51.100.2", "owner@example.com", apitest.GoodPassword); got != 302 {
		t.Fatalf("owner from a clean address over the ceiling: %d", got)
	}
	// Clean addresses past the ceiling share an allowance of 3 checks per
	// period, spent above by the last guessing address's first attempt,
	// 203.0.115.1 and the owner: guessing stays bounded however many
	// addresses guess.
	checked := 0
	for i := range 5 {
		switch got := signInFrom(t, n, fmt.Sprintf("203.0.116.%d", i), "owner@example.com", "wrong-guess-guess"); got {
		case 401:
			checked++
		case 429:
		default:
			t.Fatalf("fresh address %d past the ceiling: %d", i, got)
		}
	}
	if checked != 0 {
		t.Fatalf("fresh addresses past the ceiling got %d checks, want none (the allowance is spent)", checked)
	}
	// An IPv6 subscriber's /64 is one address.
	v6 := 0
	for i := range 6 {
		if got := signInFrom(t, n, fmt.Sprintf("2001:db8:1:2::%x", i+1), "other@example.com", "wrong-guess-guess"); got == 401 {
			v6++
		}
	}
	if v6 != 3 {
		t.Fatalf("addresses of one /64 got %d checks on an account, want the pair limit 3", v6)
	}
	// The portal operator: someone's failures do not lock admin out.
	for range 4 {
		g := apitest.NewClient(t, n)
		g.From = "203.0.113.9"
		g.PortalSignIn(apitest.PortalUser, "not-the-operator-password")
	}
	op := apitest.NewClient(t, n)
	op.From = "198.51.100.3"
	if r := op.PortalSignIn(apitest.PortalUser, apitest.PortalPassword); r.Status != 303 {
		t.Fatalf("operator after someone's failures: %d %s", r.Status, r.Raw)
	}
}

// Medium 3: promotion and sign-up are limited like sign-in, before hashing.
func TestPromotionAndSignUpAttemptsLimited(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.TrustedProxies = []string{"127.0.0.1/32"}
		twenty := 20
		c.RateLimits.SignInPerIP.Burst = &twenty
	}})
	c := apitest.NewClient(t, n)
	c.From = "203.0.113.20"
	apitest.RegularUser(t, c, "taken@example.com")
	// One guest probing a taken email: 409 until the limit of "taken"
	// answers per login ID (10), then 429.
	g := apitest.NewClient(t, n)
	g.From = "203.0.113.21"
	gat, _ := apitest.Signup(t, g)
	var statuses []int
	for range 12 {
		statuses = append(statuses, g.Promote(gat, "taken@example.com", apitest.GoodPassword).Status)
	}
	if statuses[0] != 409 || statuses[9] != 409 || statuses[10] != 429 || statuses[11] != 429 {
		t.Fatalf("a guest probing a taken login ID: %v", statuses)
	}
	// Other guests probing the same login ID share its limit.
	h := apitest.NewClient(t, n)
	h.From = "203.0.113.22"
	hat, _ := apitest.Signup(t, h)
	if r := h.Promote(hat, "Taken@Example.com", apitest.GoodPassword); r.Status != 429 || r.Header.Get("Retry-After") == "" {
		t.Fatalf("another guest on a probed login ID: %d %v", r.Status, r.Header)
	}
	// Hosted sign-ups from one address: 20, then refused.
	s := apitest.NewClient(t, n)
	s.From = "203.0.113.23"
	created := 0
	for i := range 25 {
		_, challenge := apitest.PKCE()
		page, csrf, _ := s.HostedFlow(apitest.AuthorizeParams(challenge, ""))
		r := s.Submit(page+"?mode=signup", csrf, url.Values{"mode": {"signup"}, "login_id": {fmt.Sprintf("new%d@example.com", i)}, "password": {apitest.GoodPassword}})
		if r.Status == 302 {
			created++
		} else if r.Status != 429 {
			t.Fatalf("sign-up %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if created != 20 {
		t.Fatalf("one address created %d accounts, want 20 then refusals", created)
	}
	// Nobody can block a free login ID: attempts on it from many addresses
	// that fail (here on the password policy) do not count against it.
	for i := range 12 {
		a := apitest.NewClient(t, n)
		a.From = fmt.Sprintf("203.0.113.%d", 100+i)
		aat, _ := apitest.Signup(t, a)
		if r := a.Promote(aat, "free@example.com", "short"); r.Status != 400 {
			t.Fatalf("weak password attempt: %d %s", r.Status, r.Raw)
		}
	}
	o := apitest.NewClient(t, n)
	o.From = "198.51.100.50"
	oat, _ := apitest.Signup(t, o)
	if r := o.Promote(oat, "free@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatalf("the owner of a free login ID others tried: %d %s", r.Status, r.Raw)
	}
}

// Low 10: a cross-site navigation to end_session does not end the cookie
// session; it gets a confirmation page whose form needs its CSRF token.
func TestCrossSiteLogoutNeedsConfirmation(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	if r := c.PostJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie"}`, nil); r.Status != 200 {
		t.Fatalf("cookie signup: %d %s", r.Status, r.Raw)
	}
	back := "/oauth2/end_session?post_logout_redirect_uri=" + url.QueryEscape("http://localhost:3000/after")
	for _, site := range []string{"cross-site", ""} {
		r := c.Do(http.MethodGet, back, "", "", map[string]string{"Sec-Fetch-Site": site})
		if r.Status != 200 || !strings.Contains(r.Raw, "Sign out?") || r.Header.Get("Location") != "" {
			t.Fatalf("Sec-Fetch-Site %q: %d %v %s", site, r.Status, r.Header, r.Raw)
		}
		if u := c.Userinfo(""); u.Status != 200 {
			t.Fatalf("Sec-Fetch-Site %q ended the session: %d", site, u.Status)
		}
	}
	page := c.Do(http.MethodGet, back, "", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	apitest.CheckPageHeaders(t, "logout confirmation", page)
	var logoutCookie *http.Cookie
	for _, ck := range (&http.Response{Header: page.Header}).Cookies() {
		if ck.Name == "idstream_logout" {
			logoutCookie = ck
		}
	}
	if logoutCookie == nil || !logoutCookie.HttpOnly || logoutCookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("confirmation cookie: %+v", logoutCookie)
	}
	token := apitest.CSRFRe.FindStringSubmatch(page.Raw)
	if token == nil {
		t.Fatalf("no CSRF token on the confirmation page: %s", page.Raw)
	}
	// A forged form (another browser: no cookie; or a wrong token) is refused.
	if r := apitest.NewClient(t, n).PostForm("/oauth2/end_session", url.Values{"csrf_token": {token[1]}}); r.Status != 403 {
		t.Fatalf("forged confirmation: %d", r.Status)
	}
	if r := c.PostForm("/oauth2/end_session", url.Values{"csrf_token": {"wrong"}}); r.Status != 403 {
		t.Fatalf("wrong token: %d", r.Status)
	}
	if u := c.Userinfo(""); u.Status != 200 {
		t.Fatal("a refused confirmation ended the session")
	}
	// The person confirms: signed out and sent back.
	r := c.PostForm("/oauth2/end_session", url.Values{"csrf_token": {token[1]}, "post_logout_redirect_uri": {"http://localhost:3000/after"}})
	if r.Status != 302 || r.Header.Get("Location") != "http://localhost:3000/after" {
		t.Fatalf("confirmed logout: %d %v", r.Status, r.Header)
	}
	if u := c.Userinfo(""); u.Status != 401 {
		t.Fatalf("after confirmed logout: %d", u.Status)
	}
}

// A relying party's logout with an id_token_hint of another user than the
// browser's asks the person; confirming posts the request back as the
// relying party sent it, so the hinted session ends (its refresh token stops
// working) with the browser's own, and the return carries the state.
func TestConfirmedLogoutEndsTheHintedSession(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	rp := apitest.NewClient(t, n)
	b := rp.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil)
	hint, rt := apitest.Str(b.Result(), "id_token"), apitest.Str(b.Result(), "refresh_token")
	if b.Status != 200 || hint == "" {
		t.Fatalf("token sign-up: %d %s", b.Status, b.Raw)
	}
	browser := apitest.NewClient(t, n)
	if r := browser.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
		t.Fatalf("cookie sign-up: %d %s", r.Status, r.Raw)
	}
	target := "http://localhost:3000/logged-out"
	q := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {target}, "state": {"rp-state"}}
	page := browser.Do(http.MethodGet, "/oauth2/end_session?"+q.Encode(), "", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	if page.Status != 200 || !strings.Contains(page.Raw, "Sign out?") {
		t.Fatalf("another user's hint: want a confirmation page, got %d %s", page.Status, page.Raw)
	}
	rr := apitest.Refresh(rp, rt)
	if rr.Status != 200 {
		t.Fatalf("the page alone ended the hinted session: %d %s", rr.Status, rr.Raw)
	}
	rt = apitest.Str(rr.Body, "refresh_token")
	// A hint changed on the way (the form is the browser's to edit) is
	// checked again: no session ends by it.
	forged := apitest.FormOf(t, page)
	forged.Set("id_token_hint", hint[:len(hint)-4]+"AAAA")
	r := browser.PostForm("/oauth2/end_session", forged)
	if r.Status != 302 || r.Header.Get("Location") != target+"?state=rp-state" {
		t.Fatalf("confirmed with a forged hint: %d %v %s", r.Status, r.Header, r.Raw)
	}
	next := apitest.Refresh(rp, rt)
	if next.Status != 200 {
		t.Fatalf("a forged hint ended the session: %d %s", next.Status, next.Raw)
	}
	rt = apitest.Str(next.Body, "refresh_token")
	if u := browser.Userinfo(""); u.Status != 401 {
		t.Fatalf("the confirmed logout left the browser's session: %d", u.Status)
	}
	// The person confirms the relying party's own request.
	if r := browser.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
		t.Fatalf("cookie sign-up: %d %s", r.Status, r.Raw)
	}
	page = browser.Do(http.MethodGet, "/oauth2/end_session?"+q.Encode(), "", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	r = browser.PostForm("/oauth2/end_session", apitest.FormOf(t, page))
	if r.Status != 302 || r.Header.Get("Location") != target+"?state=rp-state" {
		t.Fatalf("confirmed logout: %d %v %s", r.Status, r.Header, r.Raw)
	}
	if rr := apitest.Refresh(rp, rt); rr.Status == 200 {
		t.Fatal("the session the id_token_hint named still refreshes after the confirmed logout")
	}
	if u := browser.Userinfo(""); u.Status != 401 {
		t.Fatalf("the confirmed logout left the browser's session: %d", u.Status)
	}
}

// auth_time is when the person signed in on the hosted page (OpenID
// Connect Core §2), not when the client exchanged the code, up to its five
// minutes later: a relying party checking max_age must not take an older
// sign-in for a newer one.
func TestAuthTimeIsTheSignIn(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	apitest.RegularUser(t, apitest.NewClient(t, n), "authtime@example.com")
	verifier, challenge := apitest.PKCE()
	browser := apitest.NewClient(t, n)
	page, csrf, _ := browser.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	signedIn := n.Clock.Now().Unix()
	r := browser.Submit(page, csrf, url.Values{"login_id": {"authtime@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in: %d %s", r.Status, r.Raw)
	}
	n.Clock.Advance(4*time.Minute + 50*time.Second)
	tok := browser.Exchange(loc.Query().Get("code"), verifier)
	if tok.Status != 200 {
		t.Fatalf("exchange: %d %s", tok.Status, tok.Raw)
	}
	if at := int64(apitest.Claims(t, apitest.Str(tok.Body, "id_token"))["auth_time"].(float64)); at != signedIn {
		t.Fatalf("auth_time %d, want the sign-in's %d (%d s off)", at, signedIn, at-signedIn)
	}
}

// prompt=none keeps no flow, but each code it issues is an entry in the
// codes bucket: a user gets as many as rate_limits.authorize allows an
// address's flows, then temporarily_unavailable at the redirect URI,
// however many sessions it holds; another user is not held back by it.
// Promotion codes (each an entry too) count per address.
func TestSilentAuthorizeIsLimitedPerUser(t *testing.T) {
	burst := 2
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.RateLimits.Authorize = config.RateLimit{Burst: &burst, Per: config.Duration(time.Hour)}
	}})
	silent := func(c *apitest.Client) url.Values {
		_, challenge := apitest.PKCE()
		p := apitest.AuthorizeParams(challenge, "")
		p.Set("prompt", "none")
		r := c.Get("/oauth2/authorize?" + p.Encode())
		loc, err := url.Parse(r.Header.Get("Location"))
		if r.Status != 302 || err != nil {
			t.Fatalf("prompt=none: %d %v %s", r.Status, r.Header, r.Raw)
		}
		if code := loc.Query().Get("code"); code != "" {
			testenv.RecordSecret("authorization code", code)
		}
		return loc.Query()
	}
	signedIn := func(loginID string) *apitest.Client {
		c := apitest.NewClient(t, n)
		if r := c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
			t.Fatalf("cookie sign-up: %d", r.Status)
		}
		if r := c.PostJSON("/api/anonymous_user/promote", apitest.PromoteBody(loginID, apitest.GoodPassword), nil); r.Status != 200 {
			t.Fatalf("promote: %d %s", r.Status, r.Raw)
		}
		return c
	}
	a := signedIn("silent-a@example.com")
	for i := range burst {
		if q := silent(a); q.Get("code") == "" {
			t.Fatalf("prompt=none %d within the limit: %v", i+1, q)
		}
	}
	if q := silent(a); q.Get("code") != "" || q.Get("error") != "temporarily_unavailable" {
		t.Fatalf("prompt=none past the user's limit: %v", q)
	}
	// The same user in another browser session: the same budget.
	again := apitest.NewClient(t, n)
	params := apitest.AuthorizeParams("", "")
	params.Set("response_type", "none")
	params.Del("code_challenge")
	params.Del("code_challenge_method")
	page, csrf, _ := again.HostedFlow(params)
	if r := again.Submit(page, csrf, url.Values{"login_id": {"silent-a@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 302 {
		t.Fatalf("cookie-mode sign-in: %d %s", r.Status, r.Raw)
	}
	if q := silent(again); q.Get("code") != "" || q.Get("error") != "temporarily_unavailable" {
		t.Fatalf("prompt=none from the user's second session: %v", q)
	}
	if q := silent(signedIn("silent-b@example.com")); q.Get("code") == "" {
		t.Fatalf("another user held back by the first one's limit: %v", q)
	}
	// Promotion codes: per address, under the same limit (a node of their
	// own: the flows above spent this address's).
	n2 := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		c.RateLimits.Authorize = config.RateLimit{Burst: &burst, Per: config.Duration(time.Hour)}
	}})
	guest := apitest.NewClient(t, n2)
	at, _ := apitest.Signup(t, guest)
	for i := range burst {
		if r := guest.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at}); r.Status != 200 {
			t.Fatalf("promotion code %d within the limit: %d %s", i+1, r.Status, r.Raw)
		}
	}
	if r := guest.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at}); r.Status != 429 || r.Reason() != "RateLimited" {
		t.Fatalf("a promotion code past the limit: %d %s", r.Status, r.Raw)
	}
}

// The conflict policy "login" applies to the headless endpoint as to the
// hosted page (issue 16): a taken login ID with its account's password
// merges the guest into that account and signs it in.
func TestHeadlessPromotionFollowsTheConflictPolicy(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.Promotion.ConflictPolicy = "login"
	}})
	c := apitest.NewClient(t, n)
	owner := apitest.RegularUser(t, c, "headless-owner@example.com")
	at, rt := apitest.Signup(t, c)
	guest := apitest.Str(c.Userinfo(at).Body, "sub")
	if r := c.Promote(at, "headless-owner@example.com", "not-the-password-at-all"); r.Status != 401 || r.Reason() != "InvalidCredentials" {
		t.Fatalf("wrong password of the existing account: %d %s", r.Status, r.Raw)
	}
	r := c.Promote(at, "Headless-Owner@example.com", apitest.GoodPassword)
	if r.Status != 200 {
		t.Fatalf("merge: %d %s", r.Status, r.Raw)
	}
	if info := c.Userinfo(apitest.Str(r.Result(), "access_token")); apitest.Str(info.Body, "sub") != owner || info.Body["is_anonymous"] != false {
		t.Fatalf("signed in to %s, want the owner %s", info.Raw, owner)
	}
	sessionDead(t, c, "the merged guest's session", at, rt)
	waitRow(t, n, `SELECT count(*) FROM users WHERE id::text = $1 AND state = 'merged' AND merged_into::text = $2`, guest, owner)
}

// Issue 17: with a client's refresh token reuse interval, a phone that lost
// a refresh's answer and retries with the token it sent gets a fresh
// rotation; the lost answer's token stops working; after the interval, or
// with an older token, reuse still revokes the session.
func TestRefreshReuseIntervalSurvivesALostAnswer(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		c.Clients[0].RefreshTokenReuseInterval = domain.SecondsOf(10 * time.Second)
	}})
	c := apitest.NewClient(t, n)
	_, rt0 := apitest.Signup(t, c)
	lost := apitest.Refresh(c, rt0) // the answer that never arrived
	if lost.Status != 200 {
		t.Fatalf("first refresh: %d %s", lost.Status, lost.Raw)
	}
	n.Clock.Advance(3 * time.Second)
	retry := apitest.Refresh(c, rt0)
	if retry.Status != 200 {
		t.Fatalf("retry within the interval: %d %s", retry.Status, retry.Raw)
	}
	next := apitest.Refresh(c, apitest.Str(retry.Body, "refresh_token"))
	if next.Status != 200 {
		t.Fatalf("the retried answer's token: %d %s", next.Status, next.Raw)
	}
	if r := apitest.Refresh(c, apitest.Str(lost.Body, "refresh_token")); r.Status != 400 || r.Reason() != "RefreshTokenReused" {
		t.Fatalf("the lost answer's token: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, apitest.Str(next.Body, "refresh_token")); r.Status != 400 {
		t.Fatalf("presenting the lost answer's token did not end the session: %d", r.Status)
	}

	// After the interval: reuse revokes.
	_, rt0 = apitest.Signup(t, c)
	first := apitest.Refresh(c, rt0)
	n.Clock.Advance(11 * time.Second)
	if r := apitest.Refresh(c, rt0); r.Status != 400 || r.Reason() != "RefreshTokenReused" {
		t.Fatalf("retry after the interval: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, apitest.Str(first.Body, "refresh_token")); r.Status != 400 {
		t.Fatal("the session survived a reuse after the interval")
	}

	// A token two rotations back, within the interval: reuse.
	_, rt0 = apitest.Signup(t, c)
	r1 := apitest.Refresh(c, rt0)
	r2 := apitest.Refresh(c, apitest.Str(r1.Body, "refresh_token"))
	if r := apitest.Refresh(c, rt0); r.Status != 400 || r.Reason() != "RefreshTokenReused" {
		t.Fatalf("an older token: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, apitest.Str(r2.Body, "refresh_token")); r.Status != 400 {
		t.Fatal("the session survived the reuse of an older token")
	}
}
