package hosted_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// TestHostedPageSecurityHeaders: every hosted HTML page (flow pages, their
// error re-renders, message pages, the signed-out page) has a CSP without
// script or framing, X-Frame-Options, nosniff, a Referrer-Policy and is not
// cached.
func TestHostedPageSecurityHeaders(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	_, challenge := apitest.PKCE()
	pages := map[string]apitest.Response{}

	bad := apitest.AuthorizeParams(challenge, "")
	bad.Set("client_id", "nope")
	pages["authorize: unknown client"] = c.Do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil)
	bad = apitest.AuthorizeParams(challenge, "")
	bad.Set("redirect_uri", "https://evil.example/cb")
	pages["authorize: unregistered redirect"] = c.Do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil)

	page, csrf, signIn := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	pages["flow: sign-in page"] = signIn
	pages["flow: sign-up page"] = c.Do(http.MethodGet, page+"?mode=signup", "", "", nil)
	pages["flow: wrong password"] = c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"nobody@example.com"}, "password": {"not-the-password"}})
	pages["flow: weak password"] = c.Submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"weak@example.com"}, "password": {"12345678"}})
	pages["flow: missing CSRF"] = c.PostForm(page, url.Values{"login_id": {"x@example.com"}, "password": {apitest.GoodPassword}})
	pages["flow: other browser"] = apitest.NewClient(t, n).Do(http.MethodGet, page, "", "", nil)
	pages["flow: unknown"] = c.Do(http.MethodGet, "/flows/no-such-flow", "", "", nil)
	pages["forgot password"] = c.Do(http.MethodGet, page+"/forgot", "", "", nil)
	pages["forgot password: no login ID"] = c.Submit(page+"/forgot", csrf, url.Values{"login_id": {""}})
	if r := c.Submit(page+"/forgot", csrf, url.Values{"login_id": {"nobody@example.com"}}); r.Status != http.StatusSeeOther || r.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("forgot password redirect: %d %v", r.Status, r.Header)
	}
	pages["reset password"] = c.Do(http.MethodGet, page+"/reset", "", "", nil)
	pages["reset password: wrong code"] = c.Submit(page+"/reset", csrf, url.Values{"action": {"verify"}, "code": {"000000"}, "new_password": {apitest.GoodPassword}})
	pages["reset password: missing CSRF"] = c.PostForm(page+"/reset", url.Values{"action": {"verify"}, "code": {"000000"}})
	pages["code sign-in"] = c.Do(http.MethodGet, page+"/signin-code", "", "", nil)
	pages["code sign-in: not offered"] = c.Submit(page+"/signin-code", csrf, url.Values{"login_id": {"nobody@example.com"}})
	pages["end_session: signed out"] = c.Do(http.MethodGet, "/oauth2/end_session", "", "", nil)

	for name, r := range pages {
		if r.Status == 0 || r.Status == http.StatusFound {
			t.Errorf("%s: status %d, want a page", name, r.Status)
		}
		apitest.CheckPageHeaders(t, name, r)
	}
	// The redirect into a flow and the one out of it are not cached either.
	r := c.Do(http.MethodGet, "/oauth2/authorize?"+apitest.AuthorizeParams(challenge, "").Encode(), "", "", nil)
	if r.Status != http.StatusFound || r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("authorize redirect: %d %v", r.Status, r.Header)
	}
}

// checkNoStore asserts a response carrying a token, code or credential is
// not cached (RFC 6749 §5.1).
func checkNoStore(t *testing.T, name string, r apitest.Response) {
	t.Helper()
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("%s (%d): Cache-Control %q, want no-store", name, r.Status, cc)
	}
	if p := r.Header.Get("Pragma"); p != "no-cache" {
		t.Errorf("%s (%d): Pragma %q, want no-cache", name, r.Status, p)
	}
	if r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: no X-Content-Type-Options: nosniff", name)
	}
}

// TestTokenResponsesNotCached: every answer that carries a token, a code,
// a challenge or a session cookie is Cache-Control: no-store with Pragma:
// no-cache, successes and errors alike.
func TestTokenResponsesNotCached(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	checks := map[string]apitest.Response{}

	s := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil)
	at, rt := apitest.Str(s.Result(), "access_token"), apitest.Str(s.Result(), "refresh_token")
	checks["signup (token)"] = s
	checks["signup (existing guest)"] = c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"Authorization": "Bearer " + at})
	checks["signup (cookie)"] = c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil)
	r := apitest.Refresh(c, rt)
	checks["token: refresh_token grant"] = r
	at, rt = apitest.Str(r.Body, "access_token"), apitest.Str(r.Body, "refresh_token")
	checks["token: error"] = apitest.Refresh(c, "garbage")
	checks["token: unsupported grant"] = c.PostForm("/oauth2/token", url.Values{"grant_type": {"password"}})
	checks["userinfo"] = c.Userinfo(at)
	checks["challenge"] = c.PostJSON("/oauth2/challenge", `{"purpose":"anonymous_request"}`, nil)
	d := apitest.NewDevice(t, "ES256")
	checks["token: key-pair grant"] = c.KeyGrant(d.JWT(t, c.Challenge(), true, n.Clock.Now()))
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	checks["promotion_code"] = pc

	verifier, challenge := apitest.PKCE()
	page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))))
	done := c.Submit(page, csrf, url.Values{"login_id": {"nocache@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(done.Header.Get("Location"))
	if done.Status != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("hosted promotion: %d %s", done.Status, done.Raw)
	}
	checks["flow: redirect with code"] = done
	tok := c.Exchange(loc.Query().Get("code"), verifier)
	checks["token: authorization_code grant"] = tok
	checks["token: reused code"] = c.Exchange(loc.Query().Get("code"), verifier)
	checks["revoke"] = c.PostForm("/oauth2/revoke", url.Values{"token": {apitest.Str(tok.Body, "refresh_token")}})

	guestAT := apitest.Str(c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil).Result(), "access_token")
	checks["promote (headless)"] = c.Promote(guestAT, "headless-nocache@example.com", apitest.GoodPassword)

	for name, r := range checks {
		if r.Status == 0 {
			t.Errorf("%s: no answer", name)
		}
		checkNoStore(t, name, r)
	}
	for _, name := range []string{"signup (token)", "token: refresh_token grant", "token: key-pair grant", "token: authorization_code grant", "promote (headless)"} {
		if r := checks[name]; r.Status != 200 || (apitest.Str(r.Body, "access_token") == "" && apitest.Str(r.Result(), "access_token") == "") {
			t.Errorf("%s did not issue a token: %d %s", name, r.Status, r.Raw)
		}
	}
}

// cookieSeen is one Set-Cookie header and where it came from.
type cookieSeen struct {
	where string
	raw   string
}

// collectCookies drives every path that sets a cookie: cookie sign-up,
// headless promotion in cookie mode, a hosted promotion and a hosted
// sign-in in cookie mode (flow cookie set, deleted, session cookie), and
// end_session. Cookies are sent by hand, so Secure cookies work over the
// test's plain http.
func collectCookies(t *testing.T, n *testenv.Node) []cookieSeen {
	t.Helper()
	c := apitest.NewClient(t, n)
	c.HTTP.Jar = nil
	var seen []cookieSeen
	jar := map[string]string{}
	send := func(where, method, path, contentType, body string, h map[string]string) apitest.Response {
		t.Helper()
		if h == nil {
			h = map[string]string{}
		}
		var parts []string
		for k, v := range jar {
			parts = append(parts, k+"="+v)
		}
		if len(parts) > 0 {
			h["Cookie"] = strings.Join(parts, "; ")
		}
		r := c.Do(method, path, contentType, body, h)
		for _, raw := range r.Header.Values("Set-Cookie") {
			seen = append(seen, cookieSeen{where, raw})
			ck, err := http.ParseSetCookie(raw)
			if err != nil {
				t.Fatalf("%s: unreadable Set-Cookie %q: %v", where, raw, err)
			}
			if ck.MaxAge < 0 || ck.Value == "" {
				delete(jar, ck.Name)
			} else {
				jar[ck.Name] = ck.Value
			}
		}
		return r
	}
	form := func(v url.Values) string { return v.Encode() }
	const formType = "application/x-www-form-urlencoded"
	cookieFlow := func(hint string) (string, string) {
		t.Helper()
		q := url.Values{"response_type": {"none"}, "client_id": {"idstream-dev"}, "redirect_uri": {"http://localhost:3000/after"}, "state": {"s"}}
		if hint != "" {
			q.Set("login_hint", hint)
		}
		r := send("authorize", http.MethodGet, "/oauth2/authorize?"+q.Encode(), "", "", nil)
		page := r.Header.Get("Location")
		if r.Status != http.StatusFound || !strings.HasPrefix(page, "/flows/") {
			t.Fatalf("authorize: %d %v", r.Status, r.Header)
		}
		p := send("flow page", http.MethodGet, page, "", "", nil)
		m := apitest.CSRFRe.FindStringSubmatch(p.Raw)
		if p.Status != 200 || m == nil {
			t.Fatalf("flow page: %d %s", p.Status, p.Raw)
		}
		return page, m[1]
	}

	// A cookie guest, promoted headlessly.
	if r := send("cookie signup", http.MethodPost, "/api/anonymous_user/signup", "application/json", apitest.CookieSignup, nil); r.Status != 200 {
		t.Fatalf("cookie signup: %d %s", r.Status, r.Raw)
	}
	if r := send("headless promote (cookie)", http.MethodPost, "/api/anonymous_user/promote", "application/json",
		apitest.PromoteBody("cookie-headless@example.com", apitest.GoodPassword), nil); r.Status != 200 {
		t.Fatalf("headless promote: %d %s", r.Status, r.Raw)
	}
	// Another cookie guest, promoted on the hosted page.
	delete(jar, "idstream_session")
	send("cookie signup", http.MethodPost, "/api/anonymous_user/signup", "application/json", apitest.CookieSignup, nil)
	pc := send("promotion code", http.MethodPost, "/api/anonymous_user/promotion_code", "application/json", `{"session_type":"cookie"}`, nil)
	page, csrf := cookieFlow(apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code")))
	if r := send("hosted promotion (cookie)", http.MethodPost, page, formType,
		form(url.Values{"csrf_token": {csrf}, "login_id": {"cookie-hosted@example.com"}, "password": {apitest.GoodPassword}}), nil); r.Status != http.StatusFound {
		t.Fatalf("hosted promotion: %d %s", r.Status, r.Raw)
	}
	// Sign out, then sign in on the hosted page.
	send("end_session", http.MethodGet, "/oauth2/end_session", "", "", map[string]string{"Sec-Fetch-Site": "same-site"})
	page, csrf = cookieFlow("")
	if r := send("hosted sign-in (cookie)", http.MethodPost, page, formType,
		form(url.Values{"csrf_token": {csrf}, "mode": {"signin"}, "login_id": {"cookie-hosted@example.com"}, "password": {apitest.GoodPassword}}), nil); r.Status != http.StatusFound {
		t.Fatalf("hosted sign-in: %d %s", r.Status, r.Raw)
	}
	if r := send("userinfo", http.MethodGet, "/oauth2/userinfo", "", "", nil); r.Status != 200 || r.Body["is_anonymous"] != false {
		t.Fatalf("signed-in cookie session: %d %s", r.Status, r.Raw)
	}
	send("end_session", http.MethodGet, "/oauth2/end_session", "", "", map[string]string{"Sec-Fetch-Site": "same-site"})
	return seen
}

// TestCookieAttributes: every cookie idstream sets (session cookie, its
// deletion, the flow binding cookie, its deletion) is HttpOnly, SameSite
// Lax, has a Path and no Domain, and is Secure exactly when configured
// (the default in production, and in development behind an https public
// URL: see config's TestCookieSecureDefault).
func TestCookieAttributes(t *testing.T) {
	yes := true
	for _, secure := range []bool{false, true} {
		n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
			apitest.CheapHashes(c)
			if secure {
				c.Cookie.Secure = &yes
			}
		}})
		seen := collectCookies(t, n)
		kinds := map[string]int{}
		for _, s := range seen {
			ck, _ := http.ParseSetCookie(s.raw)
			deleted := ck.MaxAge < 0
			name := "session"
			wantPath := "/"
			if strings.HasPrefix(ck.Name, "idstream_flow_") {
				name, wantPath = "flow", "/flows/"
			} else if ck.Name != "idstream_session" {
				t.Errorf("%s: unexpected cookie %q", s.where, ck.Name)
			}
			if deleted {
				name += " deletion"
			}
			kinds[name]++
			desc := s.where + ": " + name + " cookie " + redactCookie(s.raw)
			if !ck.HttpOnly {
				t.Errorf("%s: not HttpOnly", desc)
			}
			if ck.SameSite != http.SameSiteLaxMode && ck.SameSite != http.SameSiteStrictMode {
				t.Errorf("%s: SameSite is not Lax or Strict", desc)
			}
			if ck.Path != wantPath {
				t.Errorf("%s: Path %q, want %q", desc, ck.Path, wantPath)
			}
			if ck.Domain != "" {
				t.Errorf("%s: has a Domain (none is configured)", desc)
			}
			if ck.Secure != secure {
				t.Errorf("%s: Secure is %v, want %v", desc, ck.Secure, secure)
			}
			if !deleted && ck.MaxAge == 0 && ck.Expires.IsZero() {
				t.Errorf("%s: no expiry", desc)
			}
		}
		for _, k := range []string{"session", "session deletion", "flow", "flow deletion"} {
			if kinds[k] == 0 {
				t.Errorf("secure=%v: no %s cookie was seen (%v)", secure, k, kinds)
			}
		}
	}
}

func redactCookie(raw string) string {
	name, rest, _ := strings.Cut(raw, "=")
	_, attrs, _ := strings.Cut(rest, ";")
	return name + "=…;" + attrs
}

// TestAuthorizeBounds: each authorization request keeps a flow in the
// shared codes bucket for its lifetime, so a state longer than 2 KiB is
// refused (and not echoed back), and one address may start only
// rate_limits.authorize flows; past it a page says to wait, with
// Retry-After, and no flow is kept.
func TestAuthorizeBounds(t *testing.T) {
	burst := 3
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.RateLimits.Authorize = config.RateLimit{Burst: &burst, Per: config.Duration(time.Minute)}
	}})
	c := apitest.NewClient(t, n)
	_, challenge := apitest.PKCE()
	long := apitest.AuthorizeParams(challenge, "")
	long.Set("state", strings.Repeat("s", 2049))
	if r := c.Do(http.MethodGet, "/oauth2/authorize?"+long.Encode(), "", "", nil); r.Status != 400 || r.Header.Get("Location") != "" ||
		!strings.Contains(r.Raw, "state is longer") || strings.Contains(r.Raw, "sssssssss") {
		t.Fatalf("a 2049-character state: %d %v %s", r.Status, r.Header, r.Raw)
	}
	ok := apitest.AuthorizeParams(challenge, "")
	ok.Set("state", strings.Repeat("s", 2048))
	for i := range burst {
		if r := c.Do(http.MethodGet, "/oauth2/authorize?"+ok.Encode(), "", "", nil); r.Status != 302 || !strings.HasPrefix(r.Header.Get("Location"), "/flows/") {
			t.Fatalf("flow %d: %d %v %s", i, r.Status, r.Header, r.Raw)
		}
	}
	r := c.Do(http.MethodGet, "/oauth2/authorize?"+ok.Encode(), "", "", nil)
	if r.Status != 429 || r.Header.Get("Retry-After") == "" || r.Header.Get("Location") != "" || !strings.Contains(r.Raw, "Wait a while") {
		t.Fatalf("past the limit: %d %v %s", r.Status, r.Header, r.Raw)
	}
	// A silent request (prompt=none) keeps no flow: past the limit it still
	// goes back to the application, with an answer it can act on.
	silent := apitest.AuthorizeParams(challenge, "")
	silent.Set("prompt", "none")
	if r := c.Do(http.MethodGet, "/oauth2/authorize?"+silent.Encode(), "", "", nil); r.Status != 302 ||
		!strings.HasPrefix(r.Header.Get("Location"), "http://localhost:3000/after") || !strings.Contains(r.Header.Get("Location"), "error=login_required") {
		t.Fatalf("prompt=none past the limit: %d %v", r.Status, r.Header)
	}
	// Nodes settle with the shared bucket every 50 ms, charging what they
	// admitted at the time of the settling: settle before the clock jumps.
	if err := n.Limiter.Flush(context.Background(), n.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	n.Clock.Advance(time.Minute)
	// A settling in flight still counts what it carries: the refill shows
	// within a few.
	var last apitest.Response
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if last = c.Do(http.MethodGet, "/oauth2/authorize?"+ok.Encode(), "", "", nil); last.Status != 429 {
			break
		}
	}
	if last.Status != 302 {
		t.Fatalf("a minute later: %d %v", last.Status, last.Header)
	}
}
