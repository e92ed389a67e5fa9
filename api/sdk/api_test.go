package sdk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

func TestTokenSessionLifecycle(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	at, rt := apitest.Signup(t, c)

	info := c.Userinfo(at)
	sub := apitest.Str(info.Body, "sub")
	if info.Status != 200 || sub == "" || info.Body["is_anonymous"] != true ||
		info.Body["https://authgear.com/claims/user/is_anonymous"] != true || info.Body["https://authgear.com/claims/user/is_verified"] != false {
		t.Fatalf("userinfo: %d %s", info.Status, info.Raw)
	}
	// The access token verifies with the published JWKS.
	jwks := c.Do(http.MethodGet, "/oauth2/jwks", "", "", nil)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(jwks.Raw), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %s", jwks.Raw)
	}
	tok, err := jwt.ParseSigned(at, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(tok.Headers[0].KeyID)
	var claims map[string]any
	if len(keys) != 1 || tok.Claims(keys[0].Key, &claims) != nil || claims["sub"] != sub || claims["is_anonymous"] != true {
		t.Fatalf("token does not verify with JWKS: %v", claims)
	}

	// Rotation: each refresh gives a new refresh token; the sub stays.
	r1 := apitest.Refresh(c, rt)
	if r1.Status != 200 || apitest.Str(r1.Body, "refresh_token") == rt || r1.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %s", r1.Status, r1.Raw)
	}
	rt2, at2 := apitest.Str(r1.Body, "refresh_token"), apitest.Str(r1.Body, "access_token")
	if apitest.Str(c.Userinfo(at2).Body, "sub") != sub {
		t.Fatal("sub changed after refresh")
	}
	// Reuse of the rotated token revokes the whole session.
	reuse := apitest.Refresh(c, rt)
	if reuse.Status != 400 || reuse.Body["error"] != "invalid_grant" || reuse.Reason() != "RefreshTokenReused" {
		t.Fatalf("reuse: %d %s", reuse.Status, reuse.Raw)
	}
	if r := apitest.Refresh(c, rt2); r.Status != 400 || r.Body["error"] != "invalid_grant" {
		t.Fatalf("after reuse, the current token must fail too: %d %s", r.Status, r.Raw)
	}
	if r := c.Userinfo(at2); r.Status != 401 || r.Reason() != "SessionRevoked" {
		t.Fatalf("after reuse, access tokens of the session must fail: %d %s", r.Status, r.Raw)
	}
	if logs := n.Logs.String(); !strings.Contains(logs, "refresh token reuse detected") {
		t.Fatal("reuse detection was not logged")
	}
}

func TestConcurrentRefreshOneWinsThenRevoked(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	for round := range 10 {
		_, rt := apitest.Signup(t, c)
		var wg sync.WaitGroup
		results := make([]apitest.Response, 2)
		for i := range results {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = apitest.Refresh(c, rt) }()
		}
		wg.Wait()
		ok := 0
		var winner string
		for _, r := range results {
			if r.Status == 200 {
				ok++
				winner = apitest.Str(r.Body, "refresh_token")
			} else if r.Body["error"] != "invalid_grant" {
				t.Fatalf("round %d: loser got %d %s", round, r.Status, r.Raw)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of two concurrent uses succeeded", round, ok)
		}
		// The loser was a reuse: the winner's new token is dead too.
		if r := apitest.Refresh(c, winner); r.Status != 400 {
			t.Fatalf("round %d: session survived a concurrent reuse: %d %s", round, r.Status, r.Raw)
		}
	}
}

func TestCookieSessionLifecycle(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	r := c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil)
	if r.Status != 200 || r.Result() == nil || len(r.Result()) != 0 {
		t.Fatalf("cookie signup: %d %s", r.Status, r.Raw)
	}
	sc := r.Header.Get("Set-Cookie")
	for _, want := range []string{"idstream_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Fatalf("cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Fatalf("development cookies are not Secure (plain-http localhost): %q", sc)
	}
	info := c.Userinfo("")
	sub := apitest.Str(info.Body, "sub")
	if info.Status != 200 || sub == "" || info.Body["is_anonymous"] != true {
		t.Fatalf("cookie userinfo: %d %s", info.Status, info.Raw)
	}
	// Signing up again with the cookie keeps the same guest.
	before := apitest.LastSeq(t, n)
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 || apitest.Str(c.Userinfo("").Body, "sub") != sub {
		t.Fatalf("second cookie signup: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a second sign-up with a live cookie wrote events")
	}
	// Logout: end_session revokes, clears the cookie, returns to the app
	// (the SDK navigates there from the app, on the same site).
	sameSite := map[string]string{"Sec-Fetch-Site": "same-site"}
	out := c.Do(http.MethodGet, "/oauth2/end_session?post_logout_redirect_uri="+url.QueryEscape("http://localhost:3000/after"), "", "", sameSite)
	if out.Status != 302 || out.Header.Get("Location") != "http://localhost:3000/after" || !strings.Contains(out.Header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("end_session: %d %v", out.Status, out.Header)
	}
	if r := c.Userinfo(""); r.Status != 401 {
		t.Fatalf("after logout: %d %s", r.Status, r.Raw)
	}
	// A redirect target no client allows is not followed.
	if r := c.Do(http.MethodGet, "/oauth2/end_session?post_logout_redirect_uri="+url.QueryEscape("https://evil.example/"), "", "", sameSite); r.Status != 200 || r.Header.Get("Location") != "" {
		t.Fatalf("open redirect: %d %v", r.Status, r.Header)
	}
}

func TestRevocationEndsSession(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	at, rt := apitest.Signup(t, c)
	if r := c.PostForm("/oauth2/revoke", url.Values{"token": {rt}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, rt); r.Status != 400 || r.Body["error"] != "invalid_grant" {
		t.Fatalf("refresh after revoke: %d %s", r.Status, r.Raw)
	}
	if r := c.Userinfo(at); r.Status != 401 {
		t.Fatalf("userinfo after revoke: %d %s", r.Status, r.Raw)
	}
	// Unknown and malformed tokens answer 200 and change nothing.
	before := apitest.LastSeq(t, n)
	for _, tok := range []string{"nonsense", "00000000-0000-0000-0000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", rt} {
		if r := c.PostForm("/oauth2/revoke", url.Values{"token": {tok}}); r.Status != 200 {
			t.Fatalf("revoke %q: %d", tok, r.Status)
		}
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("revoking unknown or revoked tokens wrote events")
	}
}

func TestBadInput(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	before := apitest.LastSeq(t, n)
	cases := []struct {
		name   string
		resp   apitest.Response
		status int
		reason string
	}{
		{"malformed JSON", c.PostJSON("/api/anonymous_user/signup", `{"client_id":`, nil), 400, "InvalidJSON"},
		{"unknown field", c.PostJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie","x":1}`, nil), 400, "InvalidJSON"},
		{"trailing data", c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup+`{}`, nil), 400, "InvalidJSON"},
		{"wrong content type", c.Do(http.MethodPost, "/api/anonymous_user/signup", "text/plain", apitest.TokenSignup, nil), 415, "UnsupportedMediaType"},
		{"oversized body", c.PostJSON("/api/anonymous_user/signup", `{"client_id":"`+strings.Repeat("a", 70<<10)+`"}`, nil), 413, "RequestEntityTooLarge"},
		{"unknown client", c.PostJSON("/api/anonymous_user/signup", `{"client_id":"nope","session_type":"cookie"}`, nil), 400, "UnknownClient"},
		{"missing client", c.PostJSON("/api/anonymous_user/signup", `{"session_type":"cookie"}`, nil), 400, "InvalidRequest"},
		{"bad session type", c.PostJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"jwt"}`, nil), 400, "InvalidRequest"},
		{"bad bearer on signup", c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"Authorization": "Bearer x.y.z"}), 401, "InvalidToken"},
		{"unsupported grant", c.PostForm("/oauth2/token", url.Values{"grant_type": {"password"}}), 400, "UnsupportedGrantType"},
		{"missing grant", c.PostForm("/oauth2/token", url.Values{}), 400, "InvalidRequest"},
		{"token as JSON", c.PostJSON("/oauth2/token", `{}`, nil), 400, "UnsupportedMediaType"}, // OAuth errors are 400
		{"garbage refresh token", apitest.Refresh(c, "garbage"), 400, "InvalidToken"},
		{"unknown session", apitest.Refresh(c, "7d8f3c4e-0000-4000-8000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 400, "InvalidToken"},
		{"userinfo without token", c.Userinfo(""), 401, "InvalidToken"},
		{"userinfo garbage token", c.Userinfo("abc"), 401, "InvalidToken"},
		{"unknown path", c.Do(http.MethodGet, "/nope", "", "", nil), 404, "NotFound"},
		{"wrong method", c.Do(http.MethodGet, "/oauth2/token", "", "", nil), 405, "MethodNotAllowed"},
	}
	for _, tc := range cases {
		if tc.resp.Status != tc.status || tc.resp.Reason() != tc.reason {
			t.Errorf("%s: got %d %q, want %d %s (%s)", tc.name, tc.resp.Status, tc.resp.Reason(), tc.status, tc.reason, tc.resp.Raw)
		}
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("bad requests wrote events")
	}
}

func TestAnonymousUsersDisabled(t *testing.T) {
	off := false
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) { c.Anonymous.Enabled = &off }})
	c := apitest.NewClient(t, n)
	before := apitest.LastSeq(t, n) // the settings, written when the node started
	for _, body := range []string{apitest.TokenSignup, apitest.CookieSignup} {
		r := c.PostJSON("/api/anonymous_user/signup", body, nil)
		if r.Status != 403 || r.Reason() != "AnonymousUserDisabled" {
			t.Fatalf("disabled: %d %s", r.Status, r.Raw)
		}
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a rejected sign-up wrote events")
	}
}

func TestIdleTimeoutAndLifetime(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	day := 24 * time.Hour

	// Refresh tokens: idle 30 days.
	_, rt := apitest.Signup(t, c)
	n.Clock.Advance(29 * day)
	r := apitest.Refresh(c, rt)
	if r.Status != 200 {
		t.Fatalf("refresh within idle timeout: %d %s", r.Status, r.Raw)
	}
	n.Clock.Advance(30*day + time.Second)
	if r := apitest.Refresh(c, apitest.Str(r.Body, "refresh_token")); r.Status != 400 || r.Reason() != "SessionExpired" {
		t.Fatalf("refresh after idle timeout: %d %s", r.Status, r.Raw)
	}

	// Lifetime 52 weeks, however active.
	_, rt = apitest.Signup(t, c)
	for range 12 {
		n.Clock.Advance(29 * day)
		r := apitest.Refresh(c, rt)
		if r.Status != 200 {
			t.Fatalf("active session refused early: %d %s", r.Status, r.Raw)
		}
		rt = apitest.Str(r.Body, "refresh_token")
	}
	n.Clock.Advance(52*7*day - 12*29*day)
	if r := apitest.Refresh(c, rt); r.Status != 400 || r.Reason() != "SessionExpired" {
		t.Fatalf("refresh after lifetime: %d %s", r.Status, r.Raw)
	}

	// Access tokens: 30 minutes.
	at, _ := apitest.Signup(t, c)
	n.Clock.Advance(31 * time.Minute)
	if r := c.Userinfo(at); r.Status != 401 || r.Reason() != "AccessTokenExpired" {
		t.Fatalf("expired access token: %d %s", r.Status, r.Raw)
	}

	// Cookies: activity (coalesced) keeps the session alive; idleness ends it.
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	for range 3 {
		n.Clock.Advance(20 * day)
		if r := c.Userinfo(""); r.Status != 200 {
			t.Fatalf("active cookie session refused: %d %s", r.Status, r.Raw)
		}
	}
	n.Clock.Advance(30*day + time.Minute)
	if r := c.Userinfo(""); r.Status != 401 || r.Reason() != "SessionExpired" {
		t.Fatalf("idle cookie session: %d %s", r.Status, r.Raw)
	}
}

func TestIdempotencyKey(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	h := map[string]string{"Idempotency-Key": "k-123"}
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, h); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	before := apitest.LastSeq(t, n)
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, h); r.Status != 409 || r.Reason() != "DuplicateRequest" {
		t.Fatalf("repeated key: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a duplicate request wrote events")
	}
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"Idempotency-Key": "k-124"}); r.Status != 200 {
		t.Fatal(r.Raw)
	}
}

func TestExistingGuestKeepsSub(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	at, _ := apitest.Signup(t, c)
	sub := apitest.Str(c.Userinfo(at).Body, "sub")
	r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"Authorization": "Bearer " + at})
	at2 := apitest.Str(r.Result(), "access_token")
	if r.Status != 200 || at2 == "" || apitest.Str(r.Result(), "refresh_token") != "" || apitest.Str(c.Userinfo(at2).Body, "sub") != sub {
		t.Fatalf("existing guest: %d %s", r.Status, r.Raw)
	}
}

// A token bought with a token never outlives it: calling sign-up again with
// an access token cannot chain a stolen one past its expiry (no refresh
// token is shown on that path), and another client's token buys nothing.
func TestResumedGuestTokenExpiresWithThePresentedOne(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		other := c.Clients[0]
		other.ClientID, other.Name = "other-app", "other-app"
		c.Clients = append(c.Clients, other)
	}})
	c := apitest.NewClient(t, n)
	at, _ := apitest.Signup(t, c)
	expiry := func(raw string) time.Time {
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		var cl jwt.Claims
		if err := tok.UnsafeClaimsWithoutVerification(&cl); err != nil {
			t.Fatal(err)
		}
		return cl.Expiry.Time()
	}
	first := expiry(at)
	resume := func(token, body string) apitest.Response {
		return c.PostJSON("/api/anonymous_user/signup", body, map[string]string{"Authorization": "Bearer " + token})
	}
	n.Clock.Advance(10 * time.Minute)
	for i := 0; i < 3; i++ {
		r := resume(at, apitest.TokenSignup)
		next := apitest.Str(r.Result(), "access_token")
		if r.Status != 200 || next == "" {
			t.Fatalf("resume %d: %d %s", i, r.Status, r.Raw)
		}
		if exp := expiry(next); exp.After(first) {
			t.Fatalf("resume %d: the new token expires at %s, after the presented one's %s", i, exp, first)
		}
		if got := r.Result()["expires_in"].(float64); time.Duration(got)*time.Second > first.Sub(n.Clock.Now()) {
			t.Fatalf("resume %d: expires_in %v past the presented token", i, got)
		}
		at = next
		n.Clock.Advance(5 * time.Minute)
	}
	// Within the verification leeway of the last token, which expired with
	// the first: nothing more to give.
	n.Clock.Advance(first.Sub(n.Clock.Now()) + time.Second)
	if r := resume(at, apitest.TokenSignup); r.Status != 401 || r.Reason() != "AccessTokenExpired" {
		t.Fatalf("a chain past the first token's expiry: %d %s", r.Status, r.Raw)
	}
	n.Clock.Advance(time.Minute)
	if r := c.Userinfo(at); r.Status != 401 {
		t.Fatalf("the chained token after the first one's expiry: %d %s", r.Status, r.Raw)
	}

	fresh, _ := apitest.Signup(t, c)
	before := apitest.LastSeq(t, n)
	if r := resume(fresh, `{"client_id":"other-app","session_type":"refresh_token"}`); r.Status != 400 || r.Reason() != "TokenOtherClient" {
		t.Fatalf("another client's token: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a refused resume wrote events")
	}
}

func TestKeyRotationAcrossNodes(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	// Nodes behind one load balancer share the public URL (the issuer).
	public := func(c *config.Config) { c.PublicURL = "https://id.example.test" }
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: public})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: public})
	ca, cb := apitest.NewClient(t, a), apitest.NewClient(t, b)
	at, _ := apitest.Signup(t, ca)
	if r := cb.Userinfo(at); r.Status != 200 {
		t.Fatalf("node B rejects node A's token: %d %s", r.Status, r.Raw)
	}
	if _, err := a.Keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	at2, _ := apitest.Signup(t, ca)
	// B has not reloaded yet: an unknown kid makes it reload.
	if r := cb.Userinfo(at2); r.Status != 200 {
		t.Fatalf("node B rejects a token signed with the new key: %d %s", r.Status, r.Raw)
	}
	if r := cb.Userinfo(at); r.Status != 200 {
		t.Fatalf("the old key's tokens must verify until they expire: %d %s", r.Status, r.Raw)
	}
	var set jose.JSONWebKeySet
	_ = json.Unmarshal([]byte(cb.Do(http.MethodGet, "/oauth2/jwks", "", "", nil).Raw), &set)
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys after rotation, want old and new", len(set.Keys))
	}
}

func TestDiscoveryCORSAndOperations(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	d := c.Do(http.MethodGet, "/.well-known/openid-configuration", "", "", nil)
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "revocation_endpoint", "end_session_endpoint", "jwks_uri"} {
		if !strings.HasPrefix(apitest.Str(d.Body, k), n.URL+"/") {
			t.Fatalf("discovery %s = %q", k, apitest.Str(d.Body, k))
		}
	}
	pre := c.Do(http.MethodOptions, "/oauth2/token", "", "", map[string]string{
		"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"})
	if pre.Status != 204 || pre.Header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
		pre.Header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(pre.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", pre.Status, pre.Header)
	}
	bad := c.Do(http.MethodOptions, "/oauth2/token", "", "", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	if bad.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS allowed an unknown origin")
	}
	if r := c.Do(http.MethodGet, "/healthz", "", "", nil); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	apitest.Signup(t, c)
	testenv.WaitFor(t, "/readyz answering 200", 10*time.Second, func() bool {
		return c.Do(http.MethodGet, "/readyz", "", "", nil).Status == 200
	})
	// A projection's position appears once it has applied the sign-up,
	// which /readyz (within its lag bound) does not wait for.
	deadline := time.Now().Add(10 * time.Second)
	for _, name := range []string{"idstream_http_request_duration_seconds", "idstream_eventstore_append_seconds", "idstream_projection_position", "idstream_commands_total"} {
		for !strings.Contains(c.Do(http.MethodGet, "/metrics", "", "", nil).Raw, name) {
			if time.Now().After(deadline) {
				t.Fatalf("metrics lack %s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
