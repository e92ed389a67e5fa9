package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

const goodPassword = "violet-tangerine-42"

func promoteBody(loginID, pw string) string {
	return fmt.Sprintf(`{"login_id":%q,"password":%q}`, loginID, pw)
}

func (c *client) promote(at, loginID, pw string) response {
	h := map[string]string{}
	if at != "" {
		h["Authorization"] = "Bearer " + at
	}
	return c.postJSON("/api/anonymous_user/promote", promoteBody(loginID, pw), h)
}

// regularUser signs a guest up and promotes it headlessly to loginID (with
// goodPassword); it returns the sub.
func regularUser(t *testing.T, c *client, loginID string) string {
	t.Helper()
	at, _ := signup(t, c)
	sub := str(c.userinfo(at).body, "sub")
	if r := c.promote(at, loginID, goodPassword); r.status != 200 {
		t.Fatalf("promote to %s: %d %s", loginID, r.status, r.raw)
	}
	return sub
}

// cheapHashes keeps argon2id at its minimum cost in tests that hash a lot.
func cheapHashes(c *config.Config) { testenv.CheapHashes(c) }

func TestHeadlessPromotionTokenMode(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	at, rt := signup(t, c)
	sub := str(c.userinfo(at).body, "sub")

	r := c.promote(at, "  Ada@Example.COM ", goodPassword)
	if r.status != 200 || str(r.result(), "refresh_token") == "" {
		t.Fatalf("promote: %d %s", r.status, r.raw)
	}
	at2, rt2 := str(r.result(), "access_token"), str(r.result(), "refresh_token")
	info := c.userinfo(at2)
	if str(info.body, "sub") != sub || info.body["is_anonymous"] != false || info.body["https://authgear.com/claims/user/is_anonymous"] != false {
		t.Fatalf("after promotion: %s", info.raw)
	}
	// The guest session is replaced: its tokens stop working.
	if r := refresh(c, rt); r.status != 400 {
		t.Fatalf("old refresh token still works: %s", r.raw)
	}
	if r := c.userinfo(at); r.status != 401 {
		t.Fatalf("old access token still works: %s", r.raw)
	}
	if r := refresh(c, rt2); r.status != 200 {
		t.Fatalf("new refresh token: %s", r.raw)
	}
	// A regular user cannot promote again, nor sign up anonymously as itself.
	if r := c.promote(at2, "other@example.com", goodPassword); r.status != 400 || r.reason() != "NotAnonymous" {
		t.Fatalf("second promotion: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/api/anonymous_user/signup", tokenSignup, map[string]string{"Authorization": "Bearer " + at2}); r.reason() != "NotAnonymous" {
		t.Fatalf("anonymous sign-up as a regular user: %s", r.raw)
	}
	// The read model shows the promotion, with the normalised email.
	waitRow(t, n, `SELECT count(*) FROM users WHERE id::text = $1 AND NOT is_anonymous AND login_id = 'ada@example.com' AND promoted_at IS NOT NULL`, sub)
	waitRow(t, n, `SELECT count(*) FROM identities WHERE user_id::text = $1 AND type = 'email'`, sub)
}

func TestHeadlessPromotionCookieMode(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	if r := c.postJSON("/api/anonymous_user/signup", cookieSignup, nil); r.status != 200 {
		t.Fatal(r.raw)
	}
	sub := str(c.userinfo("").body, "sub")
	jar := c.http.Jar
	u, _ := url.Parse(n.URL)
	old := jar.Cookies(u)[0].Value
	r := c.promote("", "+1 415 555 2671", goodPassword)
	if r.status != 200 || len(r.result()) != 0 {
		t.Fatalf("promote: %d %s", r.status, r.raw)
	}
	info := c.userinfo("")
	if str(info.body, "sub") != sub || info.body["is_anonymous"] != false {
		t.Fatalf("after cookie promotion: %s", info.raw)
	}
	// The old cookie value no longer works.
	stale := newClient(t, n)
	stale.http.Jar.SetCookies(u, []*http.Cookie{{Name: "idstream_session", Value: old}})
	if r := stale.userinfo(""); r.status != 401 {
		t.Fatalf("old cookie still works: %s", r.raw)
	}
}

func TestPromotionConflictLeavesGuestIntact(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	atA, _ := signup(t, c)
	if r := c.promote(atA, "taken@example.com", goodPassword); r.status != 200 {
		t.Fatal(r.raw)
	}
	atB, rtB := signup(t, c)
	before := lastSeq(t, n)
	if r := c.promote(atB, "TAKEN@example.com", goodPassword); r.status != 409 || r.reason() != "LoginIDTaken" {
		t.Fatalf("conflict: %d %s", r.status, r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("a refused promotion wrote events")
	}
	if r := c.userinfo(atB); r.status != 200 || r.body["is_anonymous"] != true {
		t.Fatalf("loser is not intact: %s", r.raw)
	}
	if r := refresh(c, rtB); r.status != 200 {
		t.Fatalf("loser's session broke: %s", r.raw)
	}
}

func TestPromotionBadInput(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	at, _ := signup(t, c)
	before := lastSeq(t, n)
	for _, tc := range []struct{ id, pw, reason string }{
		{"ada@example.com", "password1", "PasswordTooCommon"},
		{"ada@example.com", "short", "PasswordPolicy"},
		{"ada@@example.com", goodPassword, "InvalidEmail"},
		{"+1 555", goodPassword, "InvalidPhone"},
		{"x", goodPassword, "InvalidUsername"},
		{"admin", goodPassword, "ReservedUsername"},
	} {
		if r := c.promote(at, tc.id, tc.pw); r.status != 400 || r.reason() != tc.reason {
			t.Errorf("%q/%q: %d %s, want %s", tc.id, tc.pw, r.status, r.raw, tc.reason)
		}
	}
	if r := c.promote("", "ada@example.com", goodPassword); r.status != 401 {
		t.Errorf("no session: %d %s", r.status, r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("bad promotions wrote events")
	}
	if strings.Contains(n.Logs.String(), goodPassword) || strings.Contains(n.Logs.String(), "password1") {
		t.Fatal("a password appears in the logs")
	}
}

func TestConcurrentPromotionsOneWinnerPerLoginID(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		// 400 promotions from one address.
		many := 1000
		c.RateLimits.SignInPerIP.Burst = &many
	}})
	c := newClient(t, n)
	const pairs = 200
	type guest struct{ at, rt string }
	guests := make([][2]guest, pairs)
	for i := range guests {
		for j := range 2 {
			at, rt := signup(t, c)
			guests[i][j] = guest{at, rt}
		}
	}
	results := make([][2]response, pairs)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range guests {
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				results[i][j] = c.promote(guests[i][j].at, fmt.Sprintf("pair%d@example.com", i), goodPassword)
			}()
		}
	}
	wg.Wait()
	for i, pr := range results {
		wins := 0
		for j, r := range pr {
			switch {
			case r.status == 200:
				wins++
			case r.status == 409 && r.reason() == "LoginIDTaken":
				// The loser keeps its guest session.
				if u := c.userinfo(guests[i][j].at); u.status != 200 || u.body["is_anonymous"] != true {
					t.Fatalf("pair %d: loser not intact: %s", i, u.raw)
				}
			default:
				t.Fatalf("pair %d: %d %s", i, r.status, r.raw)
			}
		}
		if wins != 1 {
			t.Fatalf("pair %d: %d winners", i, wins)
		}
	}
	// No claim without its user, no user without its claim.
	waitRow(t, n, `SELECT CASE WHEN count(*) = $1 THEN 1 ELSE 0 END FROM users WHERE login_id LIKE 'pair%@example.com' AND NOT is_anonymous`, pairs)
	waitRow(t, n, `SELECT CASE WHEN count(*) = $1 THEN 1 ELSE 0 END FROM identities i JOIN users u ON u.id = i.user_id
		WHERE i.type = 'email' AND i.id = 'login_id:email:' || u.login_id AND u.login_id LIKE 'pair%@example.com'`, pairs)
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func pkce() (verifier, challenge string) {
	verifier = strings.Repeat("v", 20) + fmt.Sprint(time.Now().UnixNano()) + strings.Repeat("x", 20)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// hostedFlow opens /oauth2/authorize and follows to the page; it returns the
// page's path and CSRF token.
func (c *client) hostedFlow(params url.Values) (string, string, response) {
	c.t.Helper()
	r := c.do(http.MethodGet, "/oauth2/authorize?"+params.Encode(), "", "", nil)
	if r.status != 302 || !strings.HasPrefix(r.header.Get("Location"), "/flows/") {
		return "", "", r
	}
	page := r.header.Get("Location")
	p := c.do(http.MethodGet, page, "", "", nil)
	m := csrfRe.FindStringSubmatch(p.raw)
	if p.status != 200 || m == nil {
		c.t.Fatalf("flow page: %d %s", p.status, p.raw)
	}
	return page, html.UnescapeString(m[1]), p
}

func (c *client) submit(page, csrf string, form url.Values) response {
	form.Set("csrf_token", csrf)
	return c.postForm(page, form)
}

func authorizeParams(challenge, hint string) url.Values {
	v := url.Values{"response_type": {"code"}, "client_id": {"idstream-dev"}, "redirect_uri": {"http://localhost:3000/after"},
		"code_challenge_method": {"S256"}, "code_challenge": {challenge}, "state": {"st-1"}, "scope": {"openid offline_access"}}
	if hint != "" {
		v.Set("login_hint", hint)
	}
	return v
}

func promotionHint(code string) string {
	return "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "promotion_code": {code}}.Encode()
}

func (c *client) exchange(code, verifier string) response {
	return c.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"},
		"code": {code}, "redirect_uri": {"http://localhost:3000/after"}, "code_verifier": {verifier}})
}

func TestHostedPromotionAndSignIn(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	at, rt := signup(t, c)
	sub := str(c.userinfo(at).body, "sub")
	pc := c.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	code := str(pc.result(), "promotion_code")
	if pc.status != 200 || code == "" || str(pc.result(), "expire_at") == "" {
		t.Fatalf("promotion code: %s", pc.raw)
	}
	verifier, challenge := pkce()
	page, csrf, p := c.hostedFlow(authorizeParams(challenge, promotionHint(code)))
	if !strings.Contains(p.raw, "Create your account") || !strings.Contains(p.raw, "activity so far will be kept") ||
		!strings.Contains(p.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("promotion page: %v %s", p.header, p.raw)
	}
	// Missing CSRF token: refused, nothing written.
	before := lastSeq(t, n)
	if r := c.postForm(page, url.Values{"login_id": {"hosted@example.com"}, "password": {goodPassword}}); r.status != 403 {
		t.Fatalf("no CSRF token: %d", r.status)
	}
	// Weak password: inline error, nothing written.
	if r := c.submit(page, csrf, url.Values{"login_id": {"hosted@example.com"}, "password": {"12345678"}}); r.status != 400 ||
		!strings.Contains(r.raw, `aria-invalid="true"`) || !strings.Contains(r.raw, "most common") {
		t.Fatalf("weak password page: %d %s", r.status, r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("refused forms wrote events")
	}
	r := c.submit(page, csrf, url.Values{"login_id": {"hosted@example.com"}, "password": {goodPassword}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc == nil || loc.Host != "localhost:3000" || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("promotion submit: %d %v %s", r.status, r.header, r.raw)
	}
	authz := loc.Query().Get("code")
	if r := c.exchange(authz, "wrong-verifier-"+strings.Repeat("z", 40)); r.reason() != "PKCEMismatch" {
		t.Fatalf("PKCE mismatch: %s", r.raw)
	}
	tok := c.exchange(authz, verifier)
	if tok.status != 200 || str(c.userinfo(str(tok.body, "access_token")).body, "sub") != sub {
		t.Fatalf("exchange: %d %s", tok.status, tok.raw)
	}
	if info := c.userinfo(str(tok.body, "access_token")); info.body["is_anonymous"] != false {
		t.Fatalf("promoted user is anonymous: %s", info.raw)
	}
	if r := refresh(c, rt); r.status != 400 {
		t.Fatal("guest refresh token survived promotion")
	}
	// The promotion code is spent.
	if r := c.do(http.MethodGet, "/oauth2/authorize?"+authorizeParams(challenge, promotionHint(code)).Encode(), "", "", nil); r.status != 302 ||
		!strings.Contains(r.header.Get("Location"), "error=invalid_request") {
		t.Fatalf("reused promotion code: %d %v", r.status, r.header)
	}
	// A reused authorization code fails and revokes what it issued.
	if r := c.exchange(authz, verifier); r.reason() != "AuthorizationCodeReused" {
		t.Fatalf("reused code: %s", r.raw)
	}
	if r := refresh(c, str(tok.body, "refresh_token")); r.status != 400 {
		t.Fatalf("session of a reused code survived: %s", r.raw)
	}

	// Sign in again later with the login ID and password: same sub.
	verifier, challenge = pkce()
	page, csrf, p = c.hostedFlow(authorizeParams(challenge, ""))
	if !strings.Contains(p.raw, "Sign in") {
		t.Fatalf("sign-in page: %s", p.raw)
	}
	if r := c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"hosted@example.com"}, "password": {"not-the-password"}}); r.status != 401 ||
		!strings.Contains(r.raw, "do not match an account") {
		t.Fatalf("wrong password: %d %s", r.status, r.raw)
	}
	if r := c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"nobody@example.com"}, "password": {"not-the-password"}}); r.status != 401 ||
		!strings.Contains(r.raw, "do not match an account") {
		t.Fatalf("unknown login ID must look the same: %d %s", r.status, r.raw)
	}
	r = c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"HOSTED@example.com"}, "password": {goodPassword}})
	loc, _ = url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in: %d %s", r.status, r.raw)
	}
	tok = c.exchange(loc.Query().Get("code"), verifier)
	if str(c.userinfo(str(tok.body, "access_token")).body, "sub") != sub {
		t.Fatalf("sign-in gave another sub: %s", tok.raw)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	_, challenge := pkce()
	bad := authorizeParams(challenge, "")
	bad.Set("redirect_uri", "https://evil.example/cb")
	if r := c.do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil); r.status != 400 || r.header.Get("Location") != "" {
		t.Fatalf("unregistered redirect URI: %d %v", r.status, r.header)
	}
	bad = authorizeParams(challenge, "")
	bad.Set("client_id", "nope")
	if r := c.do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil); r.status != 400 || r.header.Get("Location") != "" {
		t.Fatalf("unknown client: %d", r.status)
	}
	for name, mutate := range map[string]func(url.Values){
		"no PKCE":           func(v url.Values) { v.Del("code_challenge") },
		"plain PKCE":        func(v url.Values) { v.Set("code_challenge_method", "plain") },
		"bad response_type": func(v url.Values) { v.Set("response_type", "token") },
		"bad login_hint": func(v url.Values) {
			v.Set("login_hint", "https://authgear.com/login_hint?type=anonymous&promotion_code=nope")
		},
	} {
		v := authorizeParams(challenge, "")
		mutate(v)
		r := c.do(http.MethodGet, "/oauth2/authorize?"+v.Encode(), "", "", nil)
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != 302 || loc == nil || loc.Host != "localhost:3000" || loc.Query().Get("error") == "" || loc.Query().Get("state") != "st-1" {
			t.Errorf("%s: %d %v", name, r.status, r.header)
		}
	}
	// An expired promotion code goes back to the app as an error.
	at, _ := signup(t, c)
	pc := c.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	n.Clock.Advance(6 * time.Minute)
	r := c.do(http.MethodGet, "/oauth2/authorize?"+authorizeParams(challenge, promotionHint(str(pc.result(), "promotion_code"))).Encode(), "", "", nil)
	if loc, _ := url.Parse(r.header.Get("Location")); r.status != 302 || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("expired promotion code: %d %v", r.status, r.header)
	}
	// A flow page opened in another browser (no binding cookie) is refused.
	page, _, _ := c.hostedFlow(authorizeParams(challenge, ""))
	if r := newClient(t, n).do(http.MethodGet, page, "", "", nil); r.status != 403 {
		t.Fatalf("foreign browser: %d", r.status)
	}
}

func TestSignInAttemptsLimited(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		three := 3
		c.RateLimits.SignInPerLoginID = config.RateLimit{Burst: &three, Per: config.Duration(15 * time.Minute)}
	}})
	c := newClient(t, n)
	_, challenge := pkce()
	page, csrf, _ := c.hostedFlow(authorizeParams(challenge, ""))
	var last response
	for range 4 {
		last = c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"victim@example.com"}, "password": {"guess-guess-guess"}})
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" || !strings.Contains(last.raw, "Too many attempts") {
		t.Fatalf("4th attempt: %d %v", last.status, last.header)
	}
	n.Clock.Advance(16 * time.Minute)
	if r := c.submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"victim@example.com"}, "password": {"guess-guess-guess"}}); r.status != 401 {
		t.Fatalf("after the window: %d", r.status)
	}
}

func TestConflictPolicyLoginMergesGuest(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		c.Promotion.ConflictPolicy = "login"
	}})
	c := newClient(t, n)
	owner := regularUser(t, c, "owner@example.com")
	atGuest, rtGuest := signup(t, c)
	guest := str(c.userinfo(atGuest).body, "sub")
	pc := c.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + atGuest})
	verifier, challenge := pkce()
	page, csrf, _ := c.hostedFlow(authorizeParams(challenge, promotionHint(str(pc.result(), "promotion_code"))))
	r := c.submit(page, csrf, url.Values{"login_id": {"owner@example.com"}, "password": {goodPassword}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("merge submit: %d %s", r.status, r.raw)
	}
	tok := c.exchange(loc.Query().Get("code"), verifier)
	if str(c.userinfo(str(tok.body, "access_token")).body, "sub") != owner {
		t.Fatalf("signed in to %s, want the owner", tok.raw)
	}
	if r := refresh(c, rtGuest); r.status != 400 {
		t.Fatal("the merged guest's session survived")
	}
	waitRow(t, n, `SELECT count(*) FROM users WHERE id::text = $1 AND state = 'merged' AND merged_into::text = $2`, guest, owner)
	recs, _, err := n.Store.Load(context.Background(), n.Store.Subject("user", guest))
	if err != nil || recs[len(recs)-1].Type != "user.anonymous.merged.v1" {
		t.Fatalf("merge event: %v %v", recs, err)
	}
}
