package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// cspDirectives splits a Content-Security-Policy into its directives.
func cspDirectives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[strings.ToLower(f[0])] = f[1:]
		}
	}
	return out
}

// checkPageHeaders asserts the headers every hosted HTML page must carry.
func checkPageHeaders(t *testing.T, name string, r response) {
	t.Helper()
	h := r.header
	csp := h.Get("Content-Security-Policy")
	d := cspDirectives(csp)
	if csp == "" {
		t.Errorf("%s: no Content-Security-Policy", name)
	}
	if fa := d["frame-ancestors"]; len(fa) != 1 || fa[0] != "'none'" {
		t.Errorf("%s: frame-ancestors is %v, want 'none' (CSP %q)", name, fa, csp)
	}
	// Scripts: script-src, or default-src when it is absent, must be 'none'
	// (hosted pages run no script at all), and nothing may be unsafe.
	scripts, ok := d["script-src"]
	if !ok {
		scripts = d["default-src"]
	}
	if len(scripts) != 1 || scripts[0] != "'none'" {
		t.Errorf("%s: scripts are allowed from %v (CSP %q)", name, scripts, csp)
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "data:", "*"} {
		for _, dir := range d {
			for _, src := range dir {
				if src == bad {
					t.Errorf("%s: CSP allows %s: %q", name, bad, csp)
				}
			}
		}
	}
	if b := d["base-uri"]; len(b) != 1 || b[0] != "'none'" {
		t.Errorf("%s: base-uri is %v, want 'none'", name, b)
	}
	if _, ok := d["form-action"]; !ok {
		t.Errorf("%s: no form-action in CSP %q", name, csp)
	}
	for k, want := range map[string]string{
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s is %q, want %q", name, k, got, want)
		}
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	if strings.Contains(strings.ToLower(r.raw), "<script") {
		t.Errorf("%s: the page has a script element", name)
	}
}

// TestHostedPageSecurityHeaders: every hosted HTML page (flow pages, their
// error re-renders, message pages, the signed-out page) has a CSP without
// script or framing, X-Frame-Options, nosniff, a Referrer-Policy and is not
// cached.
func TestHostedPageSecurityHeaders(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	_, challenge := pkce()
	pages := map[string]response{}

	bad := authorizeParams(challenge, "")
	bad.Set("client_id", "nope")
	pages["authorize: unknown client"] = c.do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil)
	bad = authorizeParams(challenge, "")
	bad.Set("redirect_uri", "https://evil.example/cb")
	pages["authorize: unregistered redirect"] = c.do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil)

	page, csrf, signIn := c.hostedFlow(authorizeParams(challenge, ""))
	pages["flow: sign-in page"] = signIn
	pages["flow: sign-up page"] = c.do(http.MethodGet, page+"?mode=signup", "", "", nil)
	pages["flow: wrong password"] = c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"nobody@example.com"}, "password": {"not-the-password"}})
	pages["flow: weak password"] = c.submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"weak@example.com"}, "password": {"12345678"}})
	pages["flow: missing CSRF"] = c.postForm(page, url.Values{"login_id": {"x@example.com"}, "password": {goodPassword}})
	pages["flow: other browser"] = newClient(t, n).do(http.MethodGet, page, "", "", nil)
	pages["flow: unknown"] = c.do(http.MethodGet, "/flows/no-such-flow", "", "", nil)
	pages["forgot password"] = c.do(http.MethodGet, page+"/forgot", "", "", nil)
	pages["forgot password: no login ID"] = c.submit(page+"/forgot", csrf, url.Values{"login_id": {""}})
	if r := c.submit(page+"/forgot", csrf, url.Values{"login_id": {"nobody@example.com"}}); r.status != http.StatusSeeOther || r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("forgot password redirect: %d %v", r.status, r.header)
	}
	pages["reset password"] = c.do(http.MethodGet, page+"/reset", "", "", nil)
	pages["reset password: wrong code"] = c.submit(page+"/reset", csrf, url.Values{"action": {"verify"}, "code": {"000000"}, "new_password": {goodPassword}})
	pages["reset password: missing CSRF"] = c.postForm(page+"/reset", url.Values{"action": {"verify"}, "code": {"000000"}})
	pages["code sign-in"] = c.do(http.MethodGet, page+"/signin-code", "", "", nil)
	pages["code sign-in: not offered"] = c.submit(page+"/signin-code", csrf, url.Values{"login_id": {"nobody@example.com"}})
	pages["end_session: signed out"] = c.do(http.MethodGet, "/oauth2/end_session", "", "", nil)

	for name, r := range pages {
		if r.status == 0 || r.status == http.StatusFound {
			t.Errorf("%s: status %d, want a page", name, r.status)
		}
		checkPageHeaders(t, name, r)
	}
	// The redirect into a flow and the one out of it are not cached either.
	r := c.do(http.MethodGet, "/oauth2/authorize?"+authorizeParams(challenge, "").Encode(), "", "", nil)
	if r.status != http.StatusFound || r.header.Get("Cache-Control") != "no-store" || r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("authorize redirect: %d %v", r.status, r.header)
	}
}

// checkNoStore asserts a response carrying a token, code or credential is
// not cached (RFC 6749 §5.1).
func checkNoStore(t *testing.T, name string, r response) {
	t.Helper()
	if cc := r.header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("%s (%d): Cache-Control %q, want no-store", name, r.status, cc)
	}
	if p := r.header.Get("Pragma"); p != "no-cache" {
		t.Errorf("%s (%d): Pragma %q, want no-cache", name, r.status, p)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("%s: no X-Content-Type-Options: nosniff", name)
	}
}

// TestTokenResponsesNotCached: every answer that carries a token, a code,
// a challenge or a session cookie is Cache-Control: no-store with Pragma:
// no-cache, successes and errors alike.
func TestTokenResponsesNotCached(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	checks := map[string]response{}

	s := c.postJSON("/api/anonymous_user/signup", tokenSignup, nil)
	at, rt := str(s.result(), "access_token"), str(s.result(), "refresh_token")
	checks["signup (token)"] = s
	checks["signup (existing guest)"] = c.postJSON("/api/anonymous_user/signup", tokenSignup, map[string]string{"Authorization": "Bearer " + at})
	checks["signup (cookie)"] = c.postJSON("/api/anonymous_user/signup", cookieSignup, nil)
	r := refresh(c, rt)
	checks["token: refresh_token grant"] = r
	at, rt = str(r.body, "access_token"), str(r.body, "refresh_token")
	checks["token: error"] = refresh(c, "garbage")
	checks["token: unsupported grant"] = c.postForm("/oauth2/token", url.Values{"grant_type": {"password"}})
	checks["userinfo"] = c.userinfo(at)
	checks["challenge"] = c.postJSON("/oauth2/challenge", `{"purpose":"anonymous_request"}`, nil)
	d := newDevice(t, "ES256")
	checks["token: key-pair grant"] = c.keyGrant(d.JWT(t, c.challenge(), true, n.Clock.Now()))
	pc := c.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	checks["promotion_code"] = pc

	verifier, challenge := pkce()
	page, csrf, _ := c.hostedFlow(authorizeParams(challenge, promotionHint(str(pc.result(), "promotion_code"))))
	done := c.submit(page, csrf, url.Values{"login_id": {"nocache@example.com"}, "password": {goodPassword}})
	loc, _ := url.Parse(done.header.Get("Location"))
	if done.status != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("hosted promotion: %d %s", done.status, done.raw)
	}
	checks["flow: redirect with code"] = done
	tok := c.exchange(loc.Query().Get("code"), verifier)
	checks["token: authorization_code grant"] = tok
	checks["token: reused code"] = c.exchange(loc.Query().Get("code"), verifier)
	checks["revoke"] = c.postForm("/oauth2/revoke", url.Values{"token": {str(tok.body, "refresh_token")}})

	guestAT := str(c.postJSON("/api/anonymous_user/signup", tokenSignup, nil).result(), "access_token")
	checks["promote (headless)"] = c.promote(guestAT, "headless-nocache@example.com", goodPassword)

	for name, r := range checks {
		if r.status == 0 {
			t.Errorf("%s: no answer", name)
		}
		checkNoStore(t, name, r)
	}
	for _, name := range []string{"signup (token)", "token: refresh_token grant", "token: key-pair grant", "token: authorization_code grant", "promote (headless)"} {
		if r := checks[name]; r.status != 200 || (str(r.body, "access_token") == "" && str(r.result(), "access_token") == "") {
			t.Errorf("%s did not issue a token: %d %s", name, r.status, r.raw)
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
	c := newClient(t, n)
	c.http.Jar = nil
	var seen []cookieSeen
	jar := map[string]string{}
	send := func(where, method, path, contentType, body string, h map[string]string) response {
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
		r := c.do(method, path, contentType, body, h)
		for _, raw := range r.header.Values("Set-Cookie") {
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
		page := r.header.Get("Location")
		if r.status != http.StatusFound || !strings.HasPrefix(page, "/flows/") {
			t.Fatalf("authorize: %d %v", r.status, r.header)
		}
		p := send("flow page", http.MethodGet, page, "", "", nil)
		m := csrfRe.FindStringSubmatch(p.raw)
		if p.status != 200 || m == nil {
			t.Fatalf("flow page: %d %s", p.status, p.raw)
		}
		return page, m[1]
	}

	// A cookie guest, promoted headlessly.
	if r := send("cookie signup", http.MethodPost, "/api/anonymous_user/signup", "application/json", cookieSignup, nil); r.status != 200 {
		t.Fatalf("cookie signup: %d %s", r.status, r.raw)
	}
	if r := send("headless promote (cookie)", http.MethodPost, "/api/anonymous_user/promote", "application/json",
		promoteBody("cookie-headless@example.com", goodPassword), nil); r.status != 200 {
		t.Fatalf("headless promote: %d %s", r.status, r.raw)
	}
	// Another cookie guest, promoted on the hosted page.
	delete(jar, "idstream_session")
	send("cookie signup", http.MethodPost, "/api/anonymous_user/signup", "application/json", cookieSignup, nil)
	pc := send("promotion code", http.MethodPost, "/api/anonymous_user/promotion_code", "application/json", `{"session_type":"cookie"}`, nil)
	page, csrf := cookieFlow(promotionHint(str(pc.result(), "promotion_code")))
	if r := send("hosted promotion (cookie)", http.MethodPost, page, formType,
		form(url.Values{"csrf_token": {csrf}, "login_id": {"cookie-hosted@example.com"}, "password": {goodPassword}}), nil); r.status != http.StatusFound {
		t.Fatalf("hosted promotion: %d %s", r.status, r.raw)
	}
	// Sign out, then sign in on the hosted page.
	send("end_session", http.MethodGet, "/oauth2/end_session", "", "", map[string]string{"Sec-Fetch-Site": "same-site"})
	page, csrf = cookieFlow("")
	if r := send("hosted sign-in (cookie)", http.MethodPost, page, formType,
		form(url.Values{"csrf_token": {csrf}, "mode": {"signin"}, "login_id": {"cookie-hosted@example.com"}, "password": {goodPassword}}), nil); r.status != http.StatusFound {
		t.Fatalf("hosted sign-in: %d %s", r.status, r.raw)
	}
	if r := send("userinfo", http.MethodGet, "/oauth2/userinfo", "", "", nil); r.status != 200 || r.body["is_anonymous"] != false {
		t.Fatalf("signed-in cookie session: %d %s", r.status, r.raw)
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
			cheapHashes(c)
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
