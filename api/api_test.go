package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

type client struct {
	t       *testing.T
	base    string
	http    *http.Client
	mu      sync.Mutex
	secrets []string
	// from, when set, is sent as X-Forwarded-For (the node must trust the
	// loopback as a proxy): the client's address as rate limits see it.
	from string
	// public, when set, is the node's public URL (DPoP proofs' htu), if it
	// is not the address the client calls.
	public string
}

// newClient returns a client of the node; when the test ends, the node's
// logs are scanned for every token and cookie the client ever received.
func newClient(t *testing.T, n *testenv.Node) *client {
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, base: n.URL, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		scanLogs(t, n, c.secrets...)
	})
	return c
}

func (c *client) remember(r response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []map[string]any{r.body, r.result()} {
		for _, k := range []string{"access_token", "refresh_token"} {
			if s := str(m, k); s != "" {
				c.secrets = append(c.secrets, s)
			}
		}
	}
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Value != "" {
			c.secrets = append(c.secrets, ck.Value)
		}
	}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (c *client) do(method, path, contentType, body string, headers map[string]string) response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.from != "" {
		req.Header.Set("X-Forwarded-For", c.from)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	c.remember(r)
	recordExchange(req, body, r)
	return r
}

func (c *client) postJSON(path, body string, headers map[string]string) response {
	return c.do(http.MethodPost, path, "application/json", body, headers)
}

func (c *client) postForm(path string, form url.Values) response {
	return c.do(http.MethodPost, path, "application/x-www-form-urlencoded", form.Encode(), nil)
}

func (c *client) userinfo(at string) response {
	h := map[string]string{}
	if at != "" {
		h["Authorization"] = "Bearer " + at
	}
	return c.do(http.MethodGet, "/oauth2/userinfo", "", "", h)
}

func (r response) result() map[string]any {
	m, _ := r.body["result"].(map[string]any)
	return m
}

func (r response) reason() string {
	if e, ok := r.body["error"].(map[string]any); ok {
		s, _ := e["reason"].(string)
		return s
	}
	s, _ := r.body["reason"].(string)
	return s
}

func str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

const tokenSignup = `{"client_id":"idstream-dev","session_type":"refresh_token"}`
const cookieSignup = `{"client_id":"idstream-dev","session_type":"cookie"}`

func signup(t *testing.T, c *client) (at, rt string) {
	t.Helper()
	r := c.postJSON("/api/anonymous_user/signup", tokenSignup, nil)
	if r.status != 200 || str(r.result(), "access_token") == "" || str(r.result(), "refresh_token") == "" {
		t.Fatalf("signup: %d %s", r.status, r.raw)
	}
	return str(r.result(), "access_token"), str(r.result(), "refresh_token")
}

func refresh(c *client, rt string) response {
	return c.postForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}})
}

func lastSeq(t *testing.T, n *testenv.Node) uint64 {
	t.Helper()
	s, err := n.Store.LastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scanLogs fails the test if any secret appears in the node's logs.
func scanLogs(t *testing.T, n *testenv.Node, secrets ...string) {
	t.Helper()
	logs := n.Logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Fatalf("a token appears in the logs")
		}
		// The secret half of an opaque token, alone, must not appear either.
		if id, secret, ok := strings.Cut(s, "."); ok && len(id) == 36 && strings.Contains(logs, secret) {
			t.Fatalf("a token secret appears in the logs")
		}
	}
}

func TestTokenSessionLifecycle(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	at, rt := signup(t, c)

	info := c.userinfo(at)
	sub := str(info.body, "sub")
	if info.status != 200 || sub == "" || info.body["is_anonymous"] != true ||
		info.body["https://authgear.com/claims/user/is_anonymous"] != true || info.body["https://authgear.com/claims/user/is_verified"] != false {
		t.Fatalf("userinfo: %d %s", info.status, info.raw)
	}
	// The access token verifies with the published JWKS.
	jwks := c.do(http.MethodGet, "/oauth2/jwks", "", "", nil)
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(jwks.raw), &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("jwks: %s", jwks.raw)
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
	r1 := refresh(c, rt)
	if r1.status != 200 || str(r1.body, "refresh_token") == rt || r1.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("refresh: %d %s", r1.status, r1.raw)
	}
	rt2, at2 := str(r1.body, "refresh_token"), str(r1.body, "access_token")
	if str(c.userinfo(at2).body, "sub") != sub {
		t.Fatal("sub changed after refresh")
	}
	// Reuse of the rotated token revokes the whole session.
	reuse := refresh(c, rt)
	if reuse.status != 400 || reuse.body["error"] != "invalid_grant" || reuse.reason() != "RefreshTokenReused" {
		t.Fatalf("reuse: %d %s", reuse.status, reuse.raw)
	}
	if r := refresh(c, rt2); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Fatalf("after reuse, the current token must fail too: %d %s", r.status, r.raw)
	}
	if r := c.userinfo(at2); r.status != 401 || r.reason() != "SessionRevoked" {
		t.Fatalf("after reuse, access tokens of the session must fail: %d %s", r.status, r.raw)
	}
	if logs := n.Logs.String(); !strings.Contains(logs, "refresh token reuse detected") {
		t.Fatal("reuse detection was not logged")
	}
}

func TestConcurrentRefreshOneWinsThenRevoked(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	for round := range 10 {
		_, rt := signup(t, c)
		var wg sync.WaitGroup
		results := make([]response, 2)
		for i := range results {
			wg.Add(1)
			go func() { defer wg.Done(); results[i] = refresh(c, rt) }()
		}
		wg.Wait()
		ok := 0
		var winner string
		for _, r := range results {
			if r.status == 200 {
				ok++
				winner = str(r.body, "refresh_token")
			} else if r.body["error"] != "invalid_grant" {
				t.Fatalf("round %d: loser got %d %s", round, r.status, r.raw)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d of two concurrent uses succeeded", round, ok)
		}
		// The loser was a reuse: the winner's new token is dead too.
		if r := refresh(c, winner); r.status != 400 {
			t.Fatalf("round %d: session survived a concurrent reuse: %d %s", round, r.status, r.raw)
		}
	}
}

func TestCookieSessionLifecycle(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	r := c.postJSON("/api/anonymous_user/signup", cookieSignup, nil)
	if r.status != 200 || r.result() == nil || len(r.result()) != 0 {
		t.Fatalf("cookie signup: %d %s", r.status, r.raw)
	}
	sc := r.header.Get("Set-Cookie")
	for _, want := range []string{"idstream_session=", "HttpOnly", "SameSite=Lax", "Path=/"} {
		if !strings.Contains(sc, want) {
			t.Fatalf("cookie %q lacks %s", sc, want)
		}
	}
	if strings.Contains(sc, "Secure") {
		t.Fatalf("development cookies are not Secure (plain-http localhost): %q", sc)
	}
	info := c.userinfo("")
	sub := str(info.body, "sub")
	if info.status != 200 || sub == "" || info.body["is_anonymous"] != true {
		t.Fatalf("cookie userinfo: %d %s", info.status, info.raw)
	}
	// Signing up again with the cookie keeps the same guest.
	before := lastSeq(t, n)
	if r := c.postJSON("/api/anonymous_user/signup", cookieSignup, nil); r.status != 200 || str(c.userinfo("").body, "sub") != sub {
		t.Fatalf("second cookie signup: %d %s", r.status, r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("a second sign-up with a live cookie wrote events")
	}
	// Logout: end_session revokes, clears the cookie, returns to the app
	// (the SDK navigates there from the app, on the same site).
	sameSite := map[string]string{"Sec-Fetch-Site": "same-site"}
	out := c.do(http.MethodGet, "/oauth2/end_session?post_logout_redirect_uri="+url.QueryEscape("http://localhost:3000/after"), "", "", sameSite)
	if out.status != 302 || out.header.Get("Location") != "http://localhost:3000/after" || !strings.Contains(out.header.Get("Set-Cookie"), "Max-Age=0") {
		t.Fatalf("end_session: %d %v", out.status, out.header)
	}
	if r := c.userinfo(""); r.status != 401 {
		t.Fatalf("after logout: %d %s", r.status, r.raw)
	}
	// A redirect target no client allows is not followed.
	if r := c.do(http.MethodGet, "/oauth2/end_session?post_logout_redirect_uri="+url.QueryEscape("https://evil.example/"), "", "", sameSite); r.status != 200 || r.header.Get("Location") != "" {
		t.Fatalf("open redirect: %d %v", r.status, r.header)
	}
}

func TestRevocationEndsSession(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	at, rt := signup(t, c)
	if r := c.postForm("/oauth2/revoke", url.Values{"token": {rt}}); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := refresh(c, rt); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Fatalf("refresh after revoke: %d %s", r.status, r.raw)
	}
	if r := c.userinfo(at); r.status != 401 {
		t.Fatalf("userinfo after revoke: %d %s", r.status, r.raw)
	}
	// Unknown and malformed tokens answer 200 and change nothing.
	before := lastSeq(t, n)
	for _, tok := range []string{"nonsense", "00000000-0000-0000-0000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", rt} {
		if r := c.postForm("/oauth2/revoke", url.Values{"token": {tok}}); r.status != 200 {
			t.Fatalf("revoke %q: %d", tok, r.status)
		}
	}
	if lastSeq(t, n) != before {
		t.Fatal("revoking unknown or revoked tokens wrote events")
	}
}

func TestBadInput(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	before := lastSeq(t, n)
	cases := []struct {
		name   string
		resp   response
		status int
		reason string
	}{
		{"malformed JSON", c.postJSON("/api/anonymous_user/signup", `{"client_id":`, nil), 400, "InvalidJSON"},
		{"unknown field", c.postJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie","x":1}`, nil), 400, "InvalidJSON"},
		{"trailing data", c.postJSON("/api/anonymous_user/signup", tokenSignup+`{}`, nil), 400, "InvalidJSON"},
		{"wrong content type", c.do(http.MethodPost, "/api/anonymous_user/signup", "text/plain", tokenSignup, nil), 415, "UnsupportedMediaType"},
		{"oversized body", c.postJSON("/api/anonymous_user/signup", `{"client_id":"`+strings.Repeat("a", 70<<10)+`"}`, nil), 413, "RequestEntityTooLarge"},
		{"unknown client", c.postJSON("/api/anonymous_user/signup", `{"client_id":"nope","session_type":"cookie"}`, nil), 400, "UnknownClient"},
		{"missing client", c.postJSON("/api/anonymous_user/signup", `{"session_type":"cookie"}`, nil), 400, "InvalidRequest"},
		{"bad session type", c.postJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"jwt"}`, nil), 400, "InvalidRequest"},
		{"bad bearer on signup", c.postJSON("/api/anonymous_user/signup", tokenSignup, map[string]string{"Authorization": "Bearer x.y.z"}), 401, "InvalidToken"},
		{"unsupported grant", c.postForm("/oauth2/token", url.Values{"grant_type": {"password"}}), 400, "UnsupportedGrantType"},
		{"missing grant", c.postForm("/oauth2/token", url.Values{}), 400, "InvalidRequest"},
		{"token as JSON", c.postJSON("/oauth2/token", `{}`, nil), 400, "UnsupportedMediaType"}, // OAuth errors are 400
		{"garbage refresh token", refresh(c, "garbage"), 400, "InvalidToken"},
		{"unknown session", refresh(c, "7d8f3c4e-0000-4000-8000-000000000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), 400, "InvalidToken"},
		{"userinfo without token", c.userinfo(""), 401, "InvalidToken"},
		{"userinfo garbage token", c.userinfo("abc"), 401, "InvalidToken"},
		{"unknown path", c.do(http.MethodGet, "/nope", "", "", nil), 404, "NotFound"},
		{"wrong method", c.do(http.MethodGet, "/oauth2/token", "", "", nil), 405, "MethodNotAllowed"},
	}
	for _, tc := range cases {
		if tc.resp.status != tc.status || tc.resp.reason() != tc.reason {
			t.Errorf("%s: got %d %q, want %d %s (%s)", tc.name, tc.resp.status, tc.resp.reason(), tc.status, tc.reason, tc.resp.raw)
		}
	}
	if lastSeq(t, n) != before {
		t.Fatal("bad requests wrote events")
	}
}

func TestAnonymousUsersDisabled(t *testing.T) {
	off := false
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) { c.Anonymous.Enabled = &off }})
	c := newClient(t, n)
	before := lastSeq(t, n) // the settings, written when the node started
	for _, body := range []string{tokenSignup, cookieSignup} {
		r := c.postJSON("/api/anonymous_user/signup", body, nil)
		if r.status != 403 || r.reason() != "AnonymousUserDisabled" {
			t.Fatalf("disabled: %d %s", r.status, r.raw)
		}
	}
	if lastSeq(t, n) != before {
		t.Fatal("a rejected sign-up wrote events")
	}
}

func TestIdleTimeoutAndLifetime(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	day := 24 * time.Hour

	// Refresh tokens: idle 30 days.
	_, rt := signup(t, c)
	n.Clock.Advance(29 * day)
	r := refresh(c, rt)
	if r.status != 200 {
		t.Fatalf("refresh within idle timeout: %d %s", r.status, r.raw)
	}
	n.Clock.Advance(30*day + time.Second)
	if r := refresh(c, str(r.body, "refresh_token")); r.status != 400 || r.reason() != "SessionExpired" {
		t.Fatalf("refresh after idle timeout: %d %s", r.status, r.raw)
	}

	// Lifetime 52 weeks, however active.
	_, rt = signup(t, c)
	for range 12 {
		n.Clock.Advance(29 * day)
		r := refresh(c, rt)
		if r.status != 200 {
			t.Fatalf("active session refused early: %d %s", r.status, r.raw)
		}
		rt = str(r.body, "refresh_token")
	}
	n.Clock.Advance(52*7*day - 12*29*day)
	if r := refresh(c, rt); r.status != 400 || r.reason() != "SessionExpired" {
		t.Fatalf("refresh after lifetime: %d %s", r.status, r.raw)
	}

	// Access tokens: 30 minutes.
	at, _ := signup(t, c)
	n.Clock.Advance(31 * time.Minute)
	if r := c.userinfo(at); r.status != 401 || r.reason() != "AccessTokenExpired" {
		t.Fatalf("expired access token: %d %s", r.status, r.raw)
	}

	// Cookies: activity (coalesced) keeps the session alive; idleness ends it.
	if r := c.postJSON("/api/anonymous_user/signup", cookieSignup, nil); r.status != 200 {
		t.Fatal(r.raw)
	}
	for range 3 {
		n.Clock.Advance(20 * day)
		if r := c.userinfo(""); r.status != 200 {
			t.Fatalf("active cookie session refused: %d %s", r.status, r.raw)
		}
	}
	n.Clock.Advance(30*day + time.Minute)
	if r := c.userinfo(""); r.status != 401 || r.reason() != "SessionExpired" {
		t.Fatalf("idle cookie session: %d %s", r.status, r.raw)
	}
}

func TestIdempotencyKey(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	h := map[string]string{"Idempotency-Key": "k-123"}
	if r := c.postJSON("/api/anonymous_user/signup", tokenSignup, h); r.status != 200 {
		t.Fatal(r.raw)
	}
	before := lastSeq(t, n)
	if r := c.postJSON("/api/anonymous_user/signup", tokenSignup, h); r.status != 409 || r.reason() != "DuplicateRequest" {
		t.Fatalf("repeated key: %d %s", r.status, r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("a duplicate request wrote events")
	}
	if r := c.postJSON("/api/anonymous_user/signup", tokenSignup, map[string]string{"Idempotency-Key": "k-124"}); r.status != 200 {
		t.Fatal(r.raw)
	}
}

func TestExistingGuestKeepsSub(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	at, _ := signup(t, c)
	sub := str(c.userinfo(at).body, "sub")
	r := c.postJSON("/api/anonymous_user/signup", tokenSignup, map[string]string{"Authorization": "Bearer " + at})
	at2 := str(r.result(), "access_token")
	if r.status != 200 || at2 == "" || str(r.result(), "refresh_token") != "" || str(c.userinfo(at2).body, "sub") != sub {
		t.Fatalf("existing guest: %d %s", r.status, r.raw)
	}
}

func TestKeyRotationAcrossNodes(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	// Nodes behind one load balancer share the public URL (the issuer).
	public := func(c *config.Config) { c.PublicURL = "https://id.example.test" }
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: public})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: public})
	ca, cb := newClient(t, a), newClient(t, b)
	at, _ := signup(t, ca)
	if r := cb.userinfo(at); r.status != 200 {
		t.Fatalf("node B rejects node A's token: %d %s", r.status, r.raw)
	}
	if _, err := a.Keys.Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	at2, _ := signup(t, ca)
	// B has not reloaded yet: an unknown kid makes it reload.
	if r := cb.userinfo(at2); r.status != 200 {
		t.Fatalf("node B rejects a token signed with the new key: %d %s", r.status, r.raw)
	}
	if r := cb.userinfo(at); r.status != 200 {
		t.Fatalf("the old key's tokens must verify until they expire: %d %s", r.status, r.raw)
	}
	var set jose.JSONWebKeySet
	_ = json.Unmarshal([]byte(cb.do(http.MethodGet, "/oauth2/jwks", "", "", nil).raw), &set)
	if len(set.Keys) != 2 {
		t.Fatalf("JWKS has %d keys after rotation, want old and new", len(set.Keys))
	}
}

func TestDiscoveryCORSAndOperations(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	d := c.do(http.MethodGet, "/.well-known/openid-configuration", "", "", nil)
	for _, k := range []string{"authorization_endpoint", "token_endpoint", "userinfo_endpoint", "revocation_endpoint", "end_session_endpoint", "jwks_uri"} {
		if !strings.HasPrefix(str(d.body, k), n.URL+"/") {
			t.Fatalf("discovery %s = %q", k, str(d.body, k))
		}
	}
	pre := c.do(http.MethodOptions, "/oauth2/token", "", "", map[string]string{
		"Origin": "http://localhost:5173", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"})
	if pre.status != 204 || pre.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
		pre.header.Get("Access-Control-Allow-Credentials") != "true" || !strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", pre.status, pre.header)
	}
	bad := c.do(http.MethodOptions, "/oauth2/token", "", "", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	if bad.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("CORS allowed an unknown origin")
	}
	if r := c.do(http.MethodGet, "/healthz", "", "", nil); r.status != 200 {
		t.Fatal(r.raw)
	}
	signup(t, c)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.do(http.MethodGet, "/readyz", "", "", nil)
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %s", r.raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A projection's position appears once it has applied the sign-up,
	// which /readyz (within its lag bound) does not wait for.
	deadline = time.Now().Add(10 * time.Second)
	for _, name := range []string{"idstream_http_request_duration_seconds", "idstream_eventstore_append_seconds", "idstream_projection_position", "idstream_commands_total"} {
		for !strings.Contains(c.do(http.MethodGet, "/metrics", "", "", nil).raw, name) {
			if time.Now().After(deadline) {
				t.Fatalf("metrics lack %s", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}
