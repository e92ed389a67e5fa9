package sdk_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

func TestHeadlessPromotionTokenMode(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	at, rt := apitest.Signup(t, c)
	sub := apitest.Str(c.Userinfo(at).Body, "sub")

	r := c.Promote(at, "  Ada@Example.COM ", apitest.GoodPassword)
	if r.Status != 200 || apitest.Str(r.Result(), "refresh_token") == "" {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	at2, rt2 := apitest.Str(r.Result(), "access_token"), apitest.Str(r.Result(), "refresh_token")
	info := c.Userinfo(at2)
	if apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false || info.Body["https://authgear.com/claims/user/is_anonymous"] != false {
		t.Fatalf("after promotion: %s", info.Raw)
	}
	// The guest session is replaced: its tokens stop working.
	if r := apitest.Refresh(c, rt); r.Status != 400 {
		t.Fatalf("old refresh token still works: %s", r.Raw)
	}
	if r := c.Userinfo(at); r.Status != 401 {
		t.Fatalf("old access token still works: %s", r.Raw)
	}
	if r := apitest.Refresh(c, rt2); r.Status != 200 {
		t.Fatalf("new refresh token: %s", r.Raw)
	}
	// A regular user cannot promote again, nor sign up anonymously as itself.
	if r := c.Promote(at2, "other@example.com", apitest.GoodPassword); r.Status != 400 || r.Reason() != "NotAnonymous" {
		t.Fatalf("second promotion: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"Authorization": "Bearer " + at2}); r.Reason() != "NotAnonymous" {
		t.Fatalf("anonymous sign-up as a regular user: %s", r.Raw)
	}
	// The read model shows the promotion, with the normalised email.
	waitRow(t, n, `SELECT count(*) FROM users WHERE id::text = $1 AND NOT is_anonymous AND login_id = 'ada@example.com' AND promoted_at IS NOT NULL`, sub)
	waitRow(t, n, `SELECT count(*) FROM identities WHERE user_id::text = $1 AND type = 'email'`, sub)
}

func TestHeadlessPromotionCookieMode(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	sub := apitest.Str(c.Userinfo("").Body, "sub")
	jar := c.HTTP.Jar
	u, _ := url.Parse(n.URL)
	old := jar.Cookies(u)[0].Value
	r := c.Promote("", "+1 415 555 2671", apitest.GoodPassword)
	if r.Status != 200 || len(r.Result()) != 0 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	info := c.Userinfo("")
	if apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false {
		t.Fatalf("after cookie promotion: %s", info.Raw)
	}
	// The old cookie value no longer works.
	stale := apitest.NewClient(t, n)
	stale.HTTP.Jar.SetCookies(u, []*http.Cookie{{Name: "idstream_session", Value: old}})
	if r := stale.Userinfo(""); r.Status != 401 {
		t.Fatalf("old cookie still works: %s", r.Raw)
	}
}

func TestPromotionConflictLeavesGuestIntact(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	atA, _ := apitest.Signup(t, c)
	if r := c.Promote(atA, "taken@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	atB, rtB := apitest.Signup(t, c)
	before := apitest.LastSeq(t, n)
	if r := c.Promote(atB, "TAKEN@example.com", apitest.GoodPassword); r.Status != 409 || r.Reason() != "LoginIDTaken" {
		t.Fatalf("conflict: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a refused promotion wrote events")
	}
	if r := c.Userinfo(atB); r.Status != 200 || r.Body["is_anonymous"] != true {
		t.Fatalf("loser is not intact: %s", r.Raw)
	}
	if r := apitest.Refresh(c, rtB); r.Status != 200 {
		t.Fatalf("loser's session broke: %s", r.Raw)
	}
}

func TestPromotionBadInput(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	at, _ := apitest.Signup(t, c)
	before := apitest.LastSeq(t, n)
	for _, tc := range []struct{ id, pw, reason string }{
		{"ada@example.com", "password1", "PasswordTooCommon"},
		{"ada@example.com", "short", "PasswordPolicy"},
		{"ada@@example.com", apitest.GoodPassword, "InvalidEmail"},
		{"+1 555", apitest.GoodPassword, "InvalidPhone"},
		{"x", apitest.GoodPassword, "InvalidUsername"},
		{"admin", apitest.GoodPassword, "ReservedUsername"},
	} {
		if r := c.Promote(at, tc.id, tc.pw); r.Status != 400 || r.Reason() != tc.reason {
			t.Errorf("%q/%q: %d %s, want %s", tc.id, tc.pw, r.Status, r.Raw, tc.reason)
		}
	}
	if r := c.Promote("", "ada@example.com", apitest.GoodPassword); r.Status != 401 {
		t.Errorf("no session: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("bad promotions wrote events")
	}
	if strings.Contains(n.Logs.String(), apitest.GoodPassword) || strings.Contains(n.Logs.String(), "password1") {
		t.Fatal("a password appears in the logs")
	}
}

func TestConcurrentPromotionsOneWinnerPerLoginID(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		// 400 promotions from one address.
		many := 1000
		c.RateLimits.SignInPerIP.Burst = &many
	}})
	c := apitest.NewClient(t, n)
	const pairs = 200
	type guest struct{ at, rt string }
	guests := make([][2]guest, pairs)
	for i := range guests {
		for j := range 2 {
			at, rt := apitest.Signup(t, c)
			guests[i][j] = guest{at, rt}
		}
	}
	results := make([][2]apitest.Response, pairs)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range guests {
		for j := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				results[i][j] = c.Promote(guests[i][j].at, fmt.Sprintf("pair%d@example.com", i), apitest.GoodPassword)
			}()
		}
	}
	wg.Wait()
	for i, pr := range results {
		wins := 0
		for j, r := range pr {
			switch {
			case r.Status == 200:
				wins++
			case r.Status == 409 && r.Reason() == "LoginIDTaken":
				// The loser keeps its guest session.
				if u := c.Userinfo(guests[i][j].at); u.Status != 200 || u.Body["is_anonymous"] != true {
					t.Fatalf("pair %d: loser not intact: %s", i, u.Raw)
				}
			default:
				t.Fatalf("pair %d: %d %s", i, r.Status, r.Raw)
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

func TestHostedPromotionAndSignIn(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	at, rt := apitest.Signup(t, c)
	sub := apitest.Str(c.Userinfo(at).Body, "sub")
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	code := apitest.Str(pc.Result(), "promotion_code")
	if pc.Status != 200 || code == "" || apitest.Str(pc.Result(), "expire_at") == "" {
		t.Fatalf("promotion code: %s", pc.Raw)
	}
	verifier, challenge := apitest.PKCE()
	page, csrf, p := c.HostedFlow(apitest.AuthorizeParams(challenge, apitest.PromotionHint(code)))
	if !strings.Contains(p.Raw, "Create your account") || !strings.Contains(p.Raw, "activity so far will be kept") ||
		!strings.Contains(p.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || p.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("promotion page: %v %s", p.Header, p.Raw)
	}
	// Missing CSRF token: refused, nothing written.
	before := apitest.LastSeq(t, n)
	if r := c.PostForm(page, url.Values{"login_id": {"hosted@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 403 {
		t.Fatalf("no CSRF token: %d", r.Status)
	}
	// Weak password: inline error, nothing written.
	if r := c.Submit(page, csrf, url.Values{"login_id": {"hosted@example.com"}, "password": {"12345678"}}); r.Status != 400 ||
		!strings.Contains(r.Raw, `aria-invalid="true"`) || !strings.Contains(r.Raw, "most common") {
		t.Fatalf("weak password page: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("refused forms wrote events")
	}
	r := c.Submit(page, csrf, url.Values{"login_id": {"hosted@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc == nil || loc.Host != "localhost:3000" || loc.Query().Get("state") != "st-1" || loc.Query().Get("code") == "" {
		t.Fatalf("promotion submit: %d %v %s", r.Status, r.Header, r.Raw)
	}
	authz := loc.Query().Get("code")
	if r := c.Exchange(authz, "wrong-verifier-"+strings.Repeat("z", 40)); r.Reason() != "PKCEMismatch" {
		t.Fatalf("PKCE mismatch: %s", r.Raw)
	}
	tok := c.Exchange(authz, verifier)
	if tok.Status != 200 || apitest.Str(c.Userinfo(apitest.Str(tok.Body, "access_token")).Body, "sub") != sub {
		t.Fatalf("exchange: %d %s", tok.Status, tok.Raw)
	}
	if info := c.Userinfo(apitest.Str(tok.Body, "access_token")); info.Body["is_anonymous"] != false {
		t.Fatalf("promoted user is anonymous: %s", info.Raw)
	}
	if r := apitest.Refresh(c, rt); r.Status != 400 {
		t.Fatal("guest refresh token survived promotion")
	}
	// The promotion code is spent.
	if r := c.Do(http.MethodGet, "/oauth2/authorize?"+apitest.AuthorizeParams(challenge, apitest.PromotionHint(code)).Encode(), "", "", nil); r.Status != 302 ||
		!strings.Contains(r.Header.Get("Location"), "error=invalid_request") {
		t.Fatalf("reused promotion code: %d %v", r.Status, r.Header)
	}
	// A used code sent by whoever read it from a URL (no verifier, another
	// verifier, another redirect URI) is refused and ends nothing.
	for name, form := range map[string]url.Values{
		"no verifier":    {"code_verifier": nil},
		"wrong verifier": {"code_verifier": {"not-the-verifier-not-the-verifier-not-the-verifier"}},
		"other redirect": {"redirect_uri": {"https://evil.example/"}},
	} {
		v := url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"}, "code": {authz},
			"redirect_uri": {"http://localhost:3000/after"}, "code_verifier": {verifier}}
		for k, val := range form {
			if val == nil {
				v.Del(k)
			} else {
				v[k] = val
			}
		}
		if r := c.PostForm("/oauth2/token", v); r.Status != 400 || apitest.Str(r.Body, "error") != "invalid_grant" || r.Reason() == "AuthorizationCodeReused" {
			t.Fatalf("used code, %s: %d %s", name, r.Status, r.Raw)
		}
		if info := c.Userinfo(apitest.Str(tok.Body, "access_token")); info.Status != 200 {
			t.Fatalf("used code, %s, ended the session it gave: %d %s", name, info.Status, info.Raw)
		}
	}
	// A reused authorization code fails and revokes what it issued.
	if r := c.Exchange(authz, verifier); r.Reason() != "AuthorizationCodeReused" {
		t.Fatalf("reused code: %s", r.Raw)
	}
	if r := apitest.Refresh(c, apitest.Str(tok.Body, "refresh_token")); r.Status != 400 {
		t.Fatalf("session of a reused code survived: %s", r.Raw)
	}

	// Sign in again later with the login ID and password: same sub.
	verifier, challenge = apitest.PKCE()
	page, csrf, p = c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	if !strings.Contains(p.Raw, "Sign in") {
		t.Fatalf("sign-in page: %s", p.Raw)
	}
	if r := c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"hosted@example.com"}, "password": {"not-the-password"}}); r.Status != 401 ||
		!strings.Contains(r.Raw, "do not match an account") {
		t.Fatalf("wrong password: %d %s", r.Status, r.Raw)
	}
	if r := c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"nobody@example.com"}, "password": {"not-the-password"}}); r.Status != 401 ||
		!strings.Contains(r.Raw, "do not match an account") {
		t.Fatalf("unknown login ID must look the same: %d %s", r.Status, r.Raw)
	}
	r = c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"HOSTED@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ = url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("sign-in: %d %s", r.Status, r.Raw)
	}
	tok = c.Exchange(loc.Query().Get("code"), verifier)
	if apitest.Str(c.Userinfo(apitest.Str(tok.Body, "access_token")).Body, "sub") != sub {
		t.Fatalf("sign-in gave another sub: %s", tok.Raw)
	}
}

func TestAuthorizeErrors(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	_, challenge := apitest.PKCE()
	bad := apitest.AuthorizeParams(challenge, "")
	bad.Set("redirect_uri", "https://evil.example/cb")
	if r := c.Do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil); r.Status != 400 || r.Header.Get("Location") != "" {
		t.Fatalf("unregistered redirect URI: %d %v", r.Status, r.Header)
	}
	bad = apitest.AuthorizeParams(challenge, "")
	bad.Set("client_id", "nope")
	if r := c.Do(http.MethodGet, "/oauth2/authorize?"+bad.Encode(), "", "", nil); r.Status != 400 || r.Header.Get("Location") != "" {
		t.Fatalf("unknown client: %d", r.Status)
	}
	for name, mutate := range map[string]func(url.Values){
		"no PKCE":           func(v url.Values) { v.Del("code_challenge") },
		"plain PKCE":        func(v url.Values) { v.Set("code_challenge_method", "plain") },
		"bad response_type": func(v url.Values) { v.Set("response_type", "token") },
		"bad login_hint": func(v url.Values) {
			v.Set("login_hint", "https://authgear.com/login_hint?type=anonymous&promotion_code=nope")
		},
	} {
		v := apitest.AuthorizeParams(challenge, "")
		mutate(v)
		r := c.Do(http.MethodGet, "/oauth2/authorize?"+v.Encode(), "", "", nil)
		loc, _ := url.Parse(r.Header.Get("Location"))
		if r.Status != 302 || loc == nil || loc.Host != "localhost:3000" || loc.Query().Get("error") == "" || loc.Query().Get("state") != "st-1" {
			t.Errorf("%s: %d %v", name, r.Status, r.Header)
		}
	}
	// An expired promotion code goes back to the app as an error.
	at, _ := apitest.Signup(t, c)
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + at})
	n.Clock.Advance(6 * time.Minute)
	r := c.Do(http.MethodGet, "/oauth2/authorize?"+apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))).Encode(), "", "", nil)
	if loc, _ := url.Parse(r.Header.Get("Location")); r.Status != 302 || loc.Query().Get("error") != "invalid_request" {
		t.Fatalf("expired promotion code: %d %v", r.Status, r.Header)
	}
	// A flow page opened in another browser (no binding cookie) is refused.
	page, _, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	if r := apitest.NewClient(t, n).Do(http.MethodGet, page, "", "", nil); r.Status != 403 {
		t.Fatalf("foreign browser: %d", r.Status)
	}
}

func TestSignInAttemptsLimited(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		three := 3
		c.RateLimits.SignInPerLoginID = config.RateLimit{Burst: &three, Per: config.Duration(15 * time.Minute)}
	}})
	c := apitest.NewClient(t, n)
	_, challenge := apitest.PKCE()
	page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	var last apitest.Response
	for range 4 {
		last = c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"victim@example.com"}, "password": {"guess-guess-guess"}})
	}
	if last.Status != 429 || last.Header.Get("Retry-After") == "" || !strings.Contains(last.Raw, "Too many attempts") {
		t.Fatalf("4th attempt: %d %v", last.Status, last.Header)
	}
	n.Clock.Advance(16 * time.Minute)
	if r := c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"victim@example.com"}, "password": {"guess-guess-guess"}}); r.Status != 401 {
		t.Fatalf("after the window: %d", r.Status)
	}
}

func TestConflictPolicyLoginMergesGuest(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.Promotion.ConflictPolicy = "login"
	}})
	c := apitest.NewClient(t, n)
	owner := apitest.RegularUser(t, c, "owner@example.com")
	atGuest, rtGuest := apitest.Signup(t, c)
	guest := apitest.Str(c.Userinfo(atGuest).Body, "sub")
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, map[string]string{"Authorization": "Bearer " + atGuest})
	verifier, challenge := apitest.PKCE()
	page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))))
	r := c.Submit(page, csrf, url.Values{"login_id": {"owner@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("merge submit: %d %s", r.Status, r.Raw)
	}
	tok := c.Exchange(loc.Query().Get("code"), verifier)
	if apitest.Str(c.Userinfo(apitest.Str(tok.Body, "access_token")).Body, "sub") != owner {
		t.Fatalf("signed in to %s, want the owner", tok.Raw)
	}
	if r := apitest.Refresh(c, rtGuest); r.Status != 400 {
		t.Fatal("the merged guest's session survived")
	}
	waitRow(t, n, `SELECT count(*) FROM users WHERE id::text = $1 AND state = 'merged' AND merged_into::text = $2`, guest, owner)
	recs, _, err := n.Store.Load(context.Background(), n.Store.Subject("user", guest))
	if err != nil || recs[len(recs)-1].Type != "user.anonymous.merged.v1" {
		t.Fatalf("merge event: %v %v", recs, err)
	}
}
