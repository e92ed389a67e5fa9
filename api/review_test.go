package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
)

// Regression tests for the findings of the security review (issue 15): each
// rebuilds the review's case and fails on the code before its fix.

// keySession signs a device in and returns its tokens.
func keySession(t *testing.T, c *client, n *testenv.Node, d device, withJWK bool) (at, rt string) {
	t.Helper()
	r := c.keyGrant(d.JWT(t, c.challenge(), withJWK, n.Clock.Now()))
	if r.status != 200 || str(r.body, "refresh_token") == "" {
		t.Fatalf("key sign-in: %d %s", r.status, r.raw)
	}
	return str(r.body, "access_token"), str(r.body, "refresh_token")
}

// sessionDead checks that neither token of a session works any more.
func sessionDead(t *testing.T, c *client, name, at, rt string) {
	t.Helper()
	if r := c.userinfo(at); r.status != 401 {
		t.Errorf("%s: access token still reads userinfo: %d %s", name, r.status, r.raw)
	}
	if r := refresh(c, rt); r.status != 400 {
		t.Errorf("%s: refresh token still rotates: %d %s", name, r.status, r.raw)
	}
}

// High: a key-pair guest signed in twice promotes through one session; the
// other session must end too.
func TestPromotionEndsEveryGuestSessionHeadless(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	d := newDevice(t, jose.ES256)
	at1, rt1 := keySession(t, c, n, d, true)
	at2, _ := keySession(t, c, n, d, false)
	r := c.promote(at2, "two.sessions@example.com", goodPassword)
	if r.status != 200 {
		t.Fatalf("promote: %d %s", r.status, r.raw)
	}
	sessionDead(t, c, "S1 (not the one that promoted)", at1, rt1)
	// The new regular session works.
	if info := c.userinfo(str(r.result(), "access_token")); info.status != 200 || info.body["is_anonymous"] != false {
		t.Fatalf("new session: %s", info.raw)
	}
}

// High: an attacker prepares a key-pair guest and a promotion link; a victim
// opens it and creates an account. The attacker's session must not survive.
func TestPromotionLinkOpenedByAnotherBrowserLeavesPreparerNothing(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	attacker := newClient(t, n)
	d := newDevice(t, jose.ES256)
	at, rt := keySession(t, attacker, n, d, true)
	promoteJWT := d.Request(t, attacker.challenge(), "promote", false, n.Clock.Now())
	verifier, challenge := pkce()
	hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {promoteJWT}}.Encode()
	victim := newClient(t, n)
	page, csrf, _ := victim.hostedFlow(authorizeParams(challenge, hint))
	r := victim.submit(page, csrf, url.Values{"login_id": {"victim@example.com"}, "password": {goodPassword}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc == nil {
		t.Fatalf("victim submit: %d %s", r.status, r.raw)
	}
	// Whatever the victim's browser did, the attacker's session never reads
	// a regular account: either it ended, or the guest is still a guest.
	if info := attacker.userinfo(at); info.status == 200 && info.body["is_anonymous"] != true {
		t.Fatalf("the preparer's access token reads the promoted account: %s", info.raw)
	}
	if rr := refresh(attacker, rt); rr.status == 200 {
		if info := attacker.userinfo(str(rr.body, "access_token")); info.body["is_anonymous"] != true {
			t.Fatalf("the preparer's refresh token rotates into the promoted account: %s", info.raw)
		}
	}
	// The promotion waits for the code's exchange, which only the holder of
	// the PKCE verifier can make: the victim's browser cannot, so no
	// account was made and the victim's email is still free.
	code := loc.Query().Get("code")
	if r := victim.exchange(code, "not-the-verifier-"+strings.Repeat("x", 40)); r.reason() != "PKCEMismatch" {
		t.Fatalf("exchange without the verifier: %s", r.raw)
	}
	if info := attacker.userinfo(at); info.status != 200 || info.body["is_anonymous"] != true {
		t.Fatalf("the prepared guest was promoted by a browser that cannot finish the flow: %d %s", info.status, info.raw)
	}
	other := newClient(t, n)
	oat, _ := signup(t, other)
	if r := other.promote(oat, "victim@example.com", goodPassword); r.status != 200 {
		t.Fatalf("the victim's email was claimed by the unfinished flow: %d %s", r.status, r.raw)
	}
	_ = verifier
}

// High, cookie mode: a hosted promotion without a code exchange is bound to
// the browser that holds the guest's session cookie.
func TestCookiePromotionLinkRefusedInAnotherBrowser(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	guest := newClient(t, n)
	if r := guest.postJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie"}`, nil); r.status != 200 {
		t.Fatalf("cookie signup: %d %s", r.status, r.raw)
	}
	pc := guest.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"cookie"}`, nil)
	params := url.Values{"response_type": {"none"}, "client_id": {"idstream-dev"}, "redirect_uri": {"http://localhost:3000/after"},
		"login_hint": {promotionHint(str(pc.result(), "promotion_code"))}}
	other := newClient(t, n)
	page, csrf, _ := other.hostedFlow(params)
	before := lastSeq(t, n)
	if r := other.submit(page, csrf, url.Values{"login_id": {"cookie-victim@example.com"}, "password": {goodPassword}}); r.status != 403 {
		t.Fatalf("another browser promoted the cookie guest: %d %s", r.status, r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("the refused promotion wrote events")
	}
	page, csrf, _ = guest.hostedFlow(params)
	if r := guest.submit(page, csrf, url.Values{"login_id": {"cookie-owner@example.com"}, "password": {goodPassword}}); r.status != 302 {
		t.Fatalf("the guest's own browser: %d %s", r.status, r.raw)
	}
	if info := guest.userinfo(""); info.status != 200 || info.body["is_anonymous"] != false {
		t.Fatalf("after cookie promotion: %d %s", info.status, info.raw)
	}
}

// Concurrent exchanges of a promotion's code: the guest is promoted once,
// and whatever either exchange was given is revoked.
func TestConcurrentExchangesOfAPromotionCode(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		many := 1000
		c.RateLimits.SignInPerIP.Burst = &many
	}})
	c := newClient(t, n)
	for round := range 10 {
		at, _ := signup(t, c)
		pc := c.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
		verifier, challenge := pkce()
		page, csrf, _ := c.hostedFlow(authorizeParams(challenge, promotionHint(str(pc.result(), "promotion_code"))))
		r := c.submit(page, csrf, url.Values{"login_id": {fmt.Sprintf("race%d@example.com", round)}, "password": {goodPassword}})
		loc, _ := url.Parse(r.header.Get("Location"))
		code := loc.Query().Get("code")
		out := make([]response, 3)
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = c.exchange(code, verifier) }()
		}
		wg.Wait()
		for _, o := range out {
			if o.status == 200 {
				if rr := refresh(c, str(o.body, "refresh_token")); rr.status == 200 {
					t.Fatalf("round %d: a session of a reused promotion code is live", round)
				}
			} else if o.reason() != "AuthorizationCodeReused" {
				t.Fatalf("round %d: %d %s", round, o.status, o.raw)
			}
		}
	}
}

// High: a promotion ends every outstanding promotion code of the guest.
func TestPromotionEndsOutstandingPromotionCodes(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	at, _ := signup(t, c)
	pc := c.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	code := str(pc.result(), "promotion_code")
	if code == "" {
		t.Fatalf("promotion code: %s", pc.raw)
	}
	// A page opened with the code before the promotion, and one after.
	_, challenge := pkce()
	page, csrf, _ := c.hostedFlow(authorizeParams(challenge, promotionHint(code)))
	if r := c.promote(at, "codes@example.com", goodPassword); r.status != 200 {
		t.Fatalf("promote: %d %s", r.status, r.raw)
	}
	r := c.do(http.MethodGet, "/oauth2/authorize?"+authorizeParams(challenge, promotionHint(code)).Encode(), "", "", nil)
	if loc, _ := url.Parse(r.header.Get("Location")); r.status != 302 || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("code after promotion opened a page: %d %v", r.status, r.header)
	}
	if r := c.submit(page, csrf, url.Values{"login_id": {"second@example.com"}, "password": {goodPassword}}); r.status < 400 {
		t.Fatalf("page opened before the promotion still promotes: %d %s", r.status, r.raw)
	}
}

// Low 4: disabling a user right after its sign-ins revokes every session,
// including those the read model has not got yet; enabling revives none.
func TestDisableRevokesSessionsTheReadModelLacks(t *testing.T) {
	nats := testenv.StartNATS(t)
	// No projections: the read model never has the sessions.
	n := testenv.StartNode(t, nats, testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		c.AdminAPIKeys = []string{adminKey}
	}, NoProjections: true})
	c := newClient(t, n)
	sub := regularUser(t, c, "disabled@example.com")
	var rts []string
	for range 10 {
		verifier, challenge := pkce()
		page, csrf, _ := c.hostedFlow(authorizeParams(challenge, ""))
		r := c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"disabled@example.com"}, "password": {goodPassword}})
		loc, _ := url.Parse(r.header.Get("Location"))
		tok := c.exchange(loc.Query().Get("code"), verifier)
		if tok.status != 200 {
			t.Fatalf("sign-in: %d %s", tok.status, tok.raw)
		}
		rts = append(rts, str(tok.body, "refresh_token"))
	}
	admin := map[string]string{"Authorization": "Bearer " + adminKey}
	if r := c.postJSON("/admin/users/"+sub+"/disable", `{"reason":"review"}`, admin); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/admin/users/"+sub+"/enable", `{}`, admin); r.status != 200 {
		t.Fatalf("enable: %d %s", r.status, r.raw)
	}
	alive := 0
	for _, rt := range rts {
		if refresh(c, rt).status == 200 {
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
		cheapHashes(c)
		long := c.Clients[0]
		long.ClientID, long.Name = "long-lived", "Long-lived"
		long.RefreshTokenLifetime = domain.SecondsOf(52 * 7 * 24 * time.Hour)
		c.Clients[0].RefreshTokenLifetime = domain.SecondsOf(3 * time.Minute)
		c.Clients[0].RefreshTokenIdleTimeout = domain.SecondsOf(3 * time.Minute)
		c.Clients = append(c.Clients, long)
	}})
	c := newClient(t, n)
	d := newDevice(t, jose.ES256)
	keySession(t, c, n, d, true)
	for _, action := range []string{"auth", "promote"} {
		jwt := d.Request(t, c.challenge(), action, false, n.Clock.Now())
		if action == "auth" {
			r := c.postForm("/oauth2/token", url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"},
				"client_id": {"long-lived"}, "jwt": {jwt}})
			if r.status != 400 || r.reason() != "KeyOtherClient" {
				t.Fatalf("another client's key grant: %d %s", r.status, r.raw)
			}
			continue
		}
		_, challenge := pkce()
		p := authorizeParams(challenge, "https://authgear.com/login_hint?"+url.Values{"type": {"anonymous"}, "jwt": {jwt}}.Encode())
		p.Set("client_id", "long-lived")
		r := c.do(http.MethodGet, "/oauth2/authorize?"+p.Encode(), "", "", nil)
		if loc, _ := url.Parse(r.header.Get("Location")); r.status != 302 || loc.Query().Get("error") != "invalid_request" {
			t.Fatalf("another client's promote request: %d %v", r.status, r.header)
		}
	}
	// The registering client still signs the device in.
	keySession(t, c, n, d, false)
}

// Low 6: of two concurrent exchanges of one code, one may win, but reuse
// revokes what the code gave, whatever the interleaving.
func TestConcurrentCodeExchangesLeaveNoLiveSession(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		many := 1000
		c.RateLimits.SignInPerLoginID.Burst = &many
	}})
	c := newClient(t, n)
	regularUser(t, c, "race@example.com")
	for round := range 25 {
		verifier, challenge := pkce()
		page, csrf, _ := c.hostedFlow(authorizeParams(challenge, ""))
		r := c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"race@example.com"}, "password": {goodPassword}})
		loc, _ := url.Parse(r.header.Get("Location"))
		code := loc.Query().Get("code")
		if code == "" {
			t.Fatalf("round %d: sign-in: %d %s", round, r.status, r.raw)
		}
		var wg sync.WaitGroup
		out := make([]response, 4)
		for i := range out {
			wg.Add(1)
			go func() { defer wg.Done(); out[i] = c.exchange(code, verifier) }()
		}
		wg.Wait()
		for _, o := range out {
			if o.status != 200 {
				if o.reason() != "AuthorizationCodeReused" {
					t.Fatalf("round %d: loser: %d %s", round, o.status, o.raw)
				}
				continue
			}
			if r := refresh(c, str(o.body, "refresh_token")); r.status == 200 {
				t.Fatalf("round %d: the winner's session stayed live after the code's reuse", round)
			}
		}
	}
}

// signInFrom tries a hosted-page sign-in from an address and returns the
// page's status.
func signInFrom(t *testing.T, n *testenv.Node, ip, loginID, pw string) int {
	t.Helper()
	c := newClient(t, n)
	c.from = ip
	_, challenge := pkce()
	page, csrf, _ := c.hostedFlow(authorizeParams(challenge, ""))
	return c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {loginID}, "password": {pw}}).status
}

// Low 7: someone failing on an account from their addresses never locks its
// owner out, users and portal operators alike.
func TestSignInLockoutSparesTheOwner(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		withOperator(c)
		c.TrustedProxies = []string{"127.0.0.1/32"}
		three := 3
		c.RateLimits.SignInPerLoginID.Burst = &three
	}})
	c := newClient(t, n)
	regularUser(t, c, "owner@example.com")
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
	if got := signInFrom(t, n, "198.51.100.1", "Owner@example.com", goodPassword); got != 302 {
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
	if got := signInFrom(t, n, "198.51.100.2", "owner@example.com", goodPassword); got != 302 {
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
		g := newClient(t, n)
		g.from = "203.0.113.9"
		g.portalSignIn(portalUser, "not-the-operator-password")
	}
	op := newClient(t, n)
	op.from = "198.51.100.3"
	if r := op.portalSignIn(portalUser, portalPassword); r.status != 303 {
		t.Fatalf("operator after someone's failures: %d %s", r.status, r.raw)
	}
}

// Medium 3: promotion and sign-up are limited like sign-in, before hashing.
func TestPromotionAndSignUpAttemptsLimited(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		c.TrustedProxies = []string{"127.0.0.1/32"}
		twenty := 20
		c.RateLimits.SignInPerIP.Burst = &twenty
	}})
	c := newClient(t, n)
	c.from = "203.0.113.20"
	regularUser(t, c, "taken@example.com")
	// One guest probing a taken email: 409 until the limit of "taken"
	// answers per login ID (10), then 429.
	g := newClient(t, n)
	g.from = "203.0.113.21"
	gat, _ := signup(t, g)
	var statuses []int
	for range 12 {
		statuses = append(statuses, g.promote(gat, "taken@example.com", goodPassword).status)
	}
	if statuses[0] != 409 || statuses[9] != 409 || statuses[10] != 429 || statuses[11] != 429 {
		t.Fatalf("a guest probing a taken login ID: %v", statuses)
	}
	// Other guests probing the same login ID share its limit.
	h := newClient(t, n)
	h.from = "203.0.113.22"
	hat, _ := signup(t, h)
	if r := h.promote(hat, "Taken@Example.com", goodPassword); r.status != 429 || r.header.Get("Retry-After") == "" {
		t.Fatalf("another guest on a probed login ID: %d %v", r.status, r.header)
	}
	// Hosted sign-ups from one address: 20, then refused.
	s := newClient(t, n)
	s.from = "203.0.113.23"
	created := 0
	for i := range 25 {
		_, challenge := pkce()
		page, csrf, _ := s.hostedFlow(authorizeParams(challenge, ""))
		r := s.submit(page+"?mode=signup", csrf, url.Values{"mode": {"signup"}, "login_id": {fmt.Sprintf("new%d@example.com", i)}, "password": {goodPassword}})
		if r.status == 302 {
			created++
		} else if r.status != 429 {
			t.Fatalf("sign-up %d: %d %s", i, r.status, r.raw)
		}
	}
	if created != 20 {
		t.Fatalf("one address created %d accounts, want 20 then refusals", created)
	}
	// Nobody can block a free login ID: attempts on it from many addresses
	// that fail (here on the password policy) do not count against it.
	for i := range 12 {
		a := newClient(t, n)
		a.from = fmt.Sprintf("203.0.113.%d", 100+i)
		aat, _ := signup(t, a)
		if r := a.promote(aat, "free@example.com", "short"); r.status != 400 {
			t.Fatalf("weak password attempt: %d %s", r.status, r.raw)
		}
	}
	o := newClient(t, n)
	o.from = "198.51.100.50"
	oat, _ := signup(t, o)
	if r := o.promote(oat, "free@example.com", goodPassword); r.status != 200 {
		t.Fatalf("the owner of a free login ID others tried: %d %s", r.status, r.raw)
	}
}

// Low 10: a cross-site navigation to end_session does not end the cookie
// session; it gets a confirmation page whose form needs its CSRF token.
func TestCrossSiteLogoutNeedsConfirmation(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	if r := c.postJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie"}`, nil); r.status != 200 {
		t.Fatalf("cookie signup: %d %s", r.status, r.raw)
	}
	back := "/oauth2/end_session?post_logout_redirect_uri=" + url.QueryEscape("http://localhost:3000/after")
	for _, site := range []string{"cross-site", ""} {
		r := c.do(http.MethodGet, back, "", "", map[string]string{"Sec-Fetch-Site": site})
		if r.status != 200 || !strings.Contains(r.raw, "Sign out?") || r.header.Get("Location") != "" {
			t.Fatalf("Sec-Fetch-Site %q: %d %v %s", site, r.status, r.header, r.raw)
		}
		if u := c.userinfo(""); u.status != 200 {
			t.Fatalf("Sec-Fetch-Site %q ended the session: %d", site, u.status)
		}
	}
	page := c.do(http.MethodGet, back, "", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	checkPageHeaders(t, "logout confirmation", page)
	var logoutCookie *http.Cookie
	for _, ck := range (&http.Response{Header: page.header}).Cookies() {
		if ck.Name == "idstream_logout" {
			logoutCookie = ck
		}
	}
	if logoutCookie == nil || !logoutCookie.HttpOnly || logoutCookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("confirmation cookie: %+v", logoutCookie)
	}
	token := csrfRe.FindStringSubmatch(page.raw)
	if token == nil {
		t.Fatalf("no CSRF token on the confirmation page: %s", page.raw)
	}
	// A forged form (another browser: no cookie; or a wrong token) is refused.
	if r := newClient(t, n).postForm("/oauth2/end_session", url.Values{"csrf_token": {token[1]}}); r.status != 403 {
		t.Fatalf("forged confirmation: %d", r.status)
	}
	if r := c.postForm("/oauth2/end_session", url.Values{"csrf_token": {"wrong"}}); r.status != 403 {
		t.Fatalf("wrong token: %d", r.status)
	}
	if u := c.userinfo(""); u.status != 200 {
		t.Fatal("a refused confirmation ended the session")
	}
	// The person confirms: signed out and sent back.
	r := c.postForm("/oauth2/end_session", url.Values{"csrf_token": {token[1]}, "post_logout_redirect_uri": {"http://localhost:3000/after"}})
	if r.status != 302 || r.header.Get("Location") != "http://localhost:3000/after" {
		t.Fatalf("confirmed logout: %d %v", r.status, r.header)
	}
	if u := c.userinfo(""); u.status != 401 {
		t.Fatalf("after confirmed logout: %d", u.status)
	}
}

// The conflict policy "login" applies to the headless endpoint as to the
// hosted page (issue 16): a taken login ID with its account's password
// merges the guest into that account and signs it in.
func TestHeadlessPromotionFollowsTheConflictPolicy(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		c.Promotion.ConflictPolicy = "login"
	}})
	c := newClient(t, n)
	owner := regularUser(t, c, "headless-owner@example.com")
	at, rt := signup(t, c)
	guest := str(c.userinfo(at).body, "sub")
	if r := c.promote(at, "headless-owner@example.com", "not-the-password-at-all"); r.status != 401 || r.reason() != "InvalidCredentials" {
		t.Fatalf("wrong password of the existing account: %d %s", r.status, r.raw)
	}
	r := c.promote(at, "Headless-Owner@example.com", goodPassword)
	if r.status != 200 {
		t.Fatalf("merge: %d %s", r.status, r.raw)
	}
	if info := c.userinfo(str(r.result(), "access_token")); str(info.body, "sub") != owner || info.body["is_anonymous"] != false {
		t.Fatalf("signed in to %s, want the owner %s", info.raw, owner)
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
	c := newClient(t, n)
	_, rt0 := signup(t, c)
	lost := refresh(c, rt0) // the answer that never arrived
	if lost.status != 200 {
		t.Fatalf("first refresh: %d %s", lost.status, lost.raw)
	}
	n.Clock.Advance(3 * time.Second)
	retry := refresh(c, rt0)
	if retry.status != 200 {
		t.Fatalf("retry within the interval: %d %s", retry.status, retry.raw)
	}
	next := refresh(c, str(retry.body, "refresh_token"))
	if next.status != 200 {
		t.Fatalf("the retried answer's token: %d %s", next.status, next.raw)
	}
	if r := refresh(c, str(lost.body, "refresh_token")); r.status != 400 || r.reason() != "RefreshTokenReused" {
		t.Fatalf("the lost answer's token: %d %s", r.status, r.raw)
	}
	if r := refresh(c, str(next.body, "refresh_token")); r.status != 400 {
		t.Fatalf("presenting the lost answer's token did not end the session: %d", r.status)
	}

	// After the interval: reuse revokes.
	_, rt0 = signup(t, c)
	first := refresh(c, rt0)
	n.Clock.Advance(11 * time.Second)
	if r := refresh(c, rt0); r.status != 400 || r.reason() != "RefreshTokenReused" {
		t.Fatalf("retry after the interval: %d %s", r.status, r.raw)
	}
	if r := refresh(c, str(first.body, "refresh_token")); r.status != 400 {
		t.Fatal("the session survived a reuse after the interval")
	}

	// A token two rotations back, within the interval: reuse.
	_, rt0 = signup(t, c)
	r1 := refresh(c, rt0)
	r2 := refresh(c, str(r1.body, "refresh_token"))
	if r := refresh(c, rt0); r.status != 400 || r.reason() != "RefreshTokenReused" {
		t.Fatalf("an older token: %d %s", r.status, r.raw)
	}
	if r := refresh(c, str(r2.body, "refresh_token")); r.status != 400 {
		t.Fatal("the session survived the reuse of an older token")
	}
}
