package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
)

// The relying parties of these tests: two confidential server-side apps
// (one per secret method) and the development client, a public one.
const (
	rpBasic       = "rp-basic"
	rpPost        = "rp-post"
	rpCallback    = "http://rp.example/callback"
	rpLoggedOut   = "http://rp.example/logged-out"
	rpLoginID     = "rp-user@example.com"
	rpOtherUserID = "rp-other@example.com"
)

func relyingParties(c *config.Config) {
	apitest.CheapHashes(c)
	c.AdminAPIKeys = []string{apitest.AdminKey}
	for _, rp := range []struct{ id, method string }{{rpBasic, domain.AuthMethodBasic}, {rpPost, domain.AuthMethodPost}} {
		cl := c.Clients[0]
		cl.ClientID, cl.Name, cl.SessionType = rp.id, rp.id, domain.SessionTypeRefreshToken
		cl.AllowedOrigins, cl.RedirectURIs = nil, []string{rpCallback}
		cl.TokenEndpointAuthMethod, cl.PostLogoutRedirectURIs = rp.method, []string{rpLoggedOut}
		c.Clients = append(c.Clients, cl)
	}
}

// rotateSecret issues a client secret through the admin API.
func rotateSecret(t *testing.T, c *apitest.Client, clientID, body string) (secret, id string) {
	t.Helper()
	r := c.Do(http.MethodPost, "/admin/clients/"+clientID+"/secrets", "application/json", body, map[string]string{"Authorization": "Bearer " + apitest.AdminKey})
	secret = apitest.Str(r.Body, "client_secret")
	sec, _ := r.Body["secret"].(map[string]any)
	if r.Status != 201 || len(secret) != 43 || sec == nil || apitest.Str(sec, "secret_id") == "" {
		t.Fatalf("rotate %s: %d %s", clientID, r.Status, r.Raw)
	}
	testenv.RecordSecret("client secret", secret)
	return secret, apitest.Str(sec, "secret_id")
}

// rp is one relying party as go-oidc and x/oauth2 make it.
type rp struct {
	conf     oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newRP(t *testing.T, ctx context.Context, n *testenv.Node, clientID, secret string, style oauth2.AuthStyle) rp {
	t.Helper()
	provider, err := oidc.NewProvider(ctx, n.URL)
	if err != nil {
		t.Fatal(err)
	}
	return rp{
		conf: oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: rpCallback,
			Endpoint: oauth2.Endpoint{AuthURL: provider.Endpoint().AuthURL, TokenURL: provider.Endpoint().TokenURL, AuthStyle: style},
			Scopes:   []string{oidc.ScopeOpenID, "email", oidc.ScopeOfflineAccess}},
		verifier: provider.Verifier(&oidc.Config{ClientID: clientID, Now: n.Clock.Now}),
	}
}

// authorize runs the browser's part of the code flow: the authorization
// URL, then (unless the answer comes at once) the hosted sign-in page. It
// returns the callback's query.
func authorizeFlow(t *testing.T, c *apitest.Client, authURL, loginID string) url.Values {
	t.Helper()
	r := c.Do(http.MethodGet, strings.TrimPrefix(authURL, c.Base), "", "", nil)
	if r.Status != 302 {
		t.Fatalf("authorize: %d %s", r.Status, r.Raw)
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	if strings.HasPrefix(loc.Path, "/flows/") {
		if loginID == "" {
			t.Fatalf("authorize asked to sign in: %s", loc)
		}
		p := c.Do(http.MethodGet, loc.String(), "", "", nil)
		m := apitest.CSRFRe.FindStringSubmatch(p.Raw)
		if p.Status != 200 || m == nil || !strings.Contains(p.Raw, "Sign in") {
			t.Fatalf("sign-in page: %d %s", p.Status, p.Raw)
		}
		r = c.Submit(loc.String(), html.UnescapeString(m[1]), url.Values{"login_id": {loginID}, "password": {apitest.GoodPassword}})
		if loc, _ = url.Parse(r.Header.Get("Location")); r.Status != 302 || loc == nil {
			t.Fatalf("sign in: %d %s", r.Status, r.Raw)
		}
	} else if loginID != "" {
		t.Fatalf("authorize did not ask to sign in: %s", loc)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != rpCallback {
		t.Fatalf("callback %s", loc)
	}
	return loc.Query()
}

type idClaims struct {
	Email         string   `json:"email"`
	EmailVerified *bool    `json:"email_verified"`
	SID           string   `json:"sid"`
	AMR           []string `json:"amr"`
	AuthTime      int64    `json:"auth_time"`
	IsAnonymous   *bool    `json:"https://authgear.com/claims/user/is_anonymous"`
	IsVerified    *bool    `json:"https://authgear.com/claims/user/is_verified"`
	CanReauth     *bool    `json:"https://authgear.com/claims/user/can_reauthenticate"`
}

// login runs the whole code flow and verifies the ID token the way a
// relying party must: signature, issuer, audience, expiry, nonce, at_hash.
func (p rp) login(t *testing.T, ctx context.Context, c *apitest.Client, loginID string, opts ...oauth2.AuthCodeOption) (*oauth2.Token, *oidc.IDToken, idClaims) {
	t.Helper()
	state, nonce, verifier := "state-"+oauth2.GenerateVerifier()[:8], "nonce-"+oauth2.GenerateVerifier()[:12], oauth2.GenerateVerifier()
	opts = append(opts, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	q := authorizeFlow(t, c, p.conf.AuthCodeURL(state, opts...), loginID)
	if q.Get("state") != state || q.Get("code") == "" {
		t.Fatalf("callback: %v", q)
	}
	testenv.RecordSecret("authorization code", q.Get("code"))
	testenv.RecordSecret("PKCE verifier", verifier)
	tok, err := p.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	idt, claims := p.verify(t, ctx, tok)
	if idt.Nonce != nonce {
		t.Fatalf("nonce %q, want %q", idt.Nonce, nonce)
	}
	return tok, idt, claims
}

func (p rp) verify(t *testing.T, ctx context.Context, tok *oauth2.Token) (*oidc.IDToken, idClaims) {
	t.Helper()
	testenv.RecordSecret("access token", tok.AccessToken)
	testenv.RecordSecret("refresh token", tok.RefreshToken)
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatal("no id_token in the token apitest.Response")
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify ID token: %v", err)
	}
	if idt.AccessTokenHash == "" {
		t.Fatal("no at_hash")
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Fatalf("at_hash: %v", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken + "x"); err == nil {
		t.Fatal("at_hash matched another access token")
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return idt, c
}

// TestRelyingPartyGoOIDC drives the authorization code flow as go-oidc
// and x/oauth2 do, with confidential clients of both secret methods:
// ID tokens (nonce, at_hash, auth_time, claims by scope), prompt=none and
// login, max_age, refresh, introspection, secret rotation with an overlap,
// and RP-initiated logout.
func TestRelyingPartyGoOIDC(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: relyingParties})
	c := apitest.NewClient(t, n)
	ctx := context.Background()
	sub := apitest.RegularUser(t, c, rpLoginID)
	apitest.RegularUser(t, apitest.NewClient(t, n), rpOtherUserID)
	basicSecret, basicID := rotateSecret(t, c, rpBasic, "")
	postSecret, _ := rotateSecret(t, c, rpPost, `{"overlap_seconds": 0}`)

	// Discovery says what is true.
	d := c.Do(http.MethodGet, "/.well-known/openid-configuration", "", "", nil)
	if methods, _ := json.Marshal(d.Body["token_endpoint_auth_methods_supported"]); string(methods) != `["none","client_secret_basic","client_secret_post"]` ||
		apitest.Str(d.Body, "introspection_endpoint") != n.URL+"/oauth2/introspect" || apitest.Str(d.Body, "end_session_endpoint") != n.URL+"/oauth2/end_session" {
		t.Fatalf("discovery: %s", d.Raw)
	}

	basic := newRP(t, ctx, n, rpBasic, basicSecret, oauth2.AuthStyleInHeader)
	browser := apitest.NewClient(t, n)
	tok, idt, claims := basic.login(t, ctx, browser, rpLoginID)
	if idt.Subject != sub || claims.Email != rpLoginID || claims.EmailVerified == nil || *claims.EmailVerified ||
		claims.SID == "" || len(claims.AMR) != 1 || claims.AMR[0] != "pwd" || claims.AuthTime != n.Clock.Now().Unix() ||
		claims.IsAnonymous == nil || *claims.IsAnonymous || claims.IsVerified == nil || *claims.IsVerified || claims.CanReauth == nil {
		t.Fatalf("ID token claims: sub %s, %+v", idt.Subject, claims)
	}
	info := c.Userinfo(tok.AccessToken)
	if apitest.Str(info.Body, "sub") != sub || apitest.Str(info.Body, "email") != rpLoginID || info.Body["email_verified"] != false {
		t.Fatalf("userinfo by scope: %s", info.Raw)
	}
	// An ID token is no access token.
	if r := c.Userinfo(tok.Extra("id_token").(string)); r.Status != 401 {
		t.Fatalf("ID token taken as an access token: %d %s", r.Status, r.Raw)
	}

	// Refresh: a fresh ID token of the same user and session, no nonce.
	n.Clock.Advance(time.Minute)
	refreshed, err := basic.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	idt2, claims2 := basic.verify(t, ctx, refreshed)
	if idt2.Subject != sub || claims2.SID != claims.SID || idt2.Nonce != "" || claims2.AuthTime != claims.AuthTime || !idt2.IssuedAt.After(idt.IssuedAt) {
		t.Fatalf("refreshed ID token: %+v %+v", idt2, claims2)
	}

	// The wrong method or secret: 401 invalid_client.
	wrong := newRP(t, ctx, n, rpBasic, basicSecret, oauth2.AuthStyleInParams)
	var re *oauth2.RetrieveError
	if _, err := wrong.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); !errors.As(err, &re) ||
		re.Response.StatusCode != 401 || re.ErrorCode != "invalid_client" {
		t.Fatalf("client_secret_post for a client_secret_basic client: %v", err)
	}
	bad := newRP(t, ctx, n, rpBasic, postSecret, oauth2.AuthStyleInHeader)
	if _, err := bad.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); !errors.As(err, &re) ||
		re.Response.StatusCode != 401 || re.ErrorCode != "invalid_client" {
		t.Fatalf("another client's secret: %v", err)
	}

	// client_secret_post, with prompt=login and max_age: asked to sign in,
	// and auth_time is in the ID token.
	post := newRP(t, ctx, n, rpPost, postSecret, oauth2.AuthStyleInParams)
	n.Clock.Advance(time.Minute)
	_, idtPost, claimsPost := post.login(t, ctx, browser, rpLoginID, oauth2.SetAuthURLParam("prompt", "login"), oauth2.SetAuthURLParam("max_age", "0"))
	if idtPost.Subject != sub || claimsPost.AuthTime != n.Clock.Now().Unix() || idtPost.Audience[0] != rpPost {
		t.Fatalf("prompt=login: %+v %+v", idtPost, claimsPost)
	}

	// A confidential client may do without PKCE (its nonce binds the code);
	// a verifier sent for a code without a challenge, or a public client
	// without PKCE, is refused.
	npState, npNonce := "np-state", "np-nonce-0123456789"
	q := authorizeFlow(t, browser, post.conf.AuthCodeURL(npState, oidc.Nonce(npNonce)), rpLoginID)
	testenv.RecordSecret("authorization code", q.Get("code"))
	npTok, err := post.conf.Exchange(ctx, q.Get("code"))
	if err != nil {
		t.Fatalf("exchange without PKCE: %v", err)
	}
	if npIDT, _ := post.verify(t, ctx, npTok); npIDT.Nonce != npNonce || npIDT.Subject != sub {
		t.Fatalf("ID token without PKCE: %+v", npIDT)
	}
	q = authorizeFlow(t, browser, post.conf.AuthCodeURL(npState, oidc.Nonce(npNonce)), rpLoginID)
	testenv.RecordSecret("authorization code", q.Get("code"))
	if _, err := post.conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); !errors.As(err, &re) || re.ErrorCode != "invalid_grant" {
		t.Fatalf("a verifier for a code without a challenge: %v", err)
	}
	if r := c.Do(http.MethodGet, "/oauth2/authorize?"+url.Values{"response_type": {"code"}, "client_id": {config.DevClientID},
		"redirect_uri": {"http://localhost:3000/after"}, "scope": {"openid"}, "state": {"s"}}.Encode(), "", "", nil); r.Status != 302 ||
		!strings.Contains(r.Header.Get("Location"), "error=invalid_request") {
		t.Fatalf("a public client without PKCE: %d %v", r.Status, r.Header)
	}

	// prompt=none: no browser session is login_required; on a session (the
	// cookie a cookie-mode sign-in set) a code at once, with that session's
	// auth_time, until max_age has passed.
	st := "st-none"
	none := func(extra ...oauth2.AuthCodeOption) url.Values {
		_, challenge := apitest.PKCE()
		opts := append([]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none"),
			oauth2.SetAuthURLParam("code_challenge_method", "S256"), oauth2.SetAuthURLParam("code_challenge", challenge)}, extra...)
		return authorizeFlow(t, browser, basic.conf.AuthCodeURL(st, opts...), "")
	}
	if q := none(); q.Get("error") != "login_required" || q.Get("state") != st {
		t.Fatalf("prompt=none without a session: %v", q)
	}
	page, csrf, _ := browser.HostedFlow(url.Values{"response_type": {"none"}, "client_id": {config.DevClientID}, "redirect_uri": {"http://localhost:3000/after"}})
	if r := browser.Submit(page, csrf, url.Values{"login_id": {rpLoginID}, "password": {apitest.GoodPassword}}); r.Status != 302 {
		t.Fatalf("cookie-mode sign-in: %d %s", r.Status, r.Raw)
	}
	cookieAuth := n.Clock.Now()
	n.Clock.Advance(2 * time.Minute)
	tokNone, idtNone, claimsNone := basic.login(t, ctx, browser, "", oauth2.SetAuthURLParam("prompt", "none"), oauth2.SetAuthURLParam("max_age", "600"))
	if idtNone.Subject != sub || claimsNone.AuthTime != cookieAuth.Unix() || tokNone.RefreshToken == "" {
		t.Fatalf("prompt=none on a session: %+v %+v", idtNone, claimsNone)
	}
	if q := none(oauth2.SetAuthURLParam("max_age", "60")); q.Get("error") != "login_required" {
		t.Fatalf("prompt=none past max_age: %v", q)
	}
	if q := none(oauth2.SetAuthURLParam("prompt", "none login")); q.Get("error") != "invalid_request" {
		t.Fatalf("prompt=none login: %v", q)
	}
	// Re-authentication with an id_token_hint must be by its user.
	hint := tokNone.Extra("id_token").(string)
	flowPage, flowCSRF, _ := browser.HostedFlow(url.Values{"response_type": {"code"}, "client_id": {rpBasic}, "redirect_uri": {rpCallback},
		"code_challenge_method": {"S256"}, "code_challenge": {strings.Repeat("c", 43)}, "scope": {"openid"}, "prompt": {"login"}, "id_token_hint": {hint}})
	if r := browser.Submit(flowPage, flowCSRF, url.Values{"login_id": {rpOtherUserID}, "password": {apitest.GoodPassword}}); r.Status != 400 ||
		!strings.Contains(r.Raw, "re-authenticating") {
		t.Fatalf("re-authentication as another user: %d %s", r.Status, r.Raw)
	}
	// ... and makes no account: a sign-up there is a sign-in.
	if r := browser.Submit(flowPage, flowCSRF, url.Values{"mode": {"signup"}, "login_id": {"new-in-reauth@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 401 {
		t.Fatalf("sign-up in a re-authentication: %d %s", r.Status, r.Raw)
	}
	// By its user, it re-authenticates the hint's session: the same sid, a
	// new auth_time (kept by the session's later refreshes), no new
	// session or refresh token.
	if claimsNone.CanReauth == nil || !*claimsNone.CanReauth {
		t.Fatalf("a user with a password cannot re-authenticate: %+v", claimsNone)
	}
	n.Clock.Advance(time.Minute)
	reauthAt := n.Clock.Now()
	reVerifier, reChallenge := apitest.PKCE()
	rePage, reCSRF, _ := browser.HostedFlow(url.Values{"response_type": {"code"}, "client_id": {rpBasic}, "redirect_uri": {rpCallback},
		"code_challenge_method": {"S256"}, "code_challenge": {reChallenge}, "scope": {"openid"}, "max_age": {"0"}, "id_token_hint": {hint},
		"nonce": {"re-nonce"}, "state": {"re"}})
	reR := browser.Submit(rePage, reCSRF, url.Values{"login_id": {rpLoginID}, "password": {apitest.GoodPassword}})
	reLoc, _ := url.Parse(reR.Header.Get("Location"))
	if reR.Status != 302 || reLoc == nil || reLoc.Query().Get("code") == "" {
		t.Fatalf("re-authentication: %d %s", reR.Status, reR.Raw)
	}
	testenv.RecordSecret("PKCE verifier", reVerifier)
	reTok, err := basic.conf.Exchange(ctx, reLoc.Query().Get("code"), oauth2.VerifierOption(reVerifier))
	if err != nil {
		t.Fatalf("re-authentication exchange: %v", err)
	}
	reIDT, reClaims := basic.verify(t, ctx, reTok)
	if reTok.RefreshToken != "" || reIDT.Nonce != "re-nonce" || reClaims.SID != claimsNone.SID || reClaims.AuthTime != reauthAt.Unix() {
		t.Fatalf("re-authenticated: refresh token %v, %+v %+v", reTok.RefreshToken != "", reIDT, reClaims)
	}
	n.Clock.Advance(time.Minute)
	afterRe, err := basic.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tokNone.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh after re-authentication: %v", err)
	}
	if _, c := basic.verify(t, ctx, afterRe); c.AuthTime != reauthAt.Unix() || c.SID != claimsNone.SID {
		t.Fatalf("refreshed after re-authentication: %+v", c)
	}
	tokNone = afterRe

	// Parameters OpenID Connect lets idstream refuse, and a bad response_mode.
	for param, want := range map[string]string{"request": "request_not_supported", "request_uri": "request_uri_not_supported",
		"registration": "registration_not_supported", "response_mode": "invalid_request", "max_age": "invalid_request",
		"scope": "invalid_scope"} {
		v := map[string]string{"response_mode": "fragment", "max_age": "-1", "scope": "openid " + strings.Repeat("s", 1024)}[param]
		if v == "" {
			v = "x"
		}
		if q := authorizeFlow(t, browser, basic.conf.AuthCodeURL(st, oauth2.SetAuthURLParam(param, v),
			oauth2.SetAuthURLParam("code_challenge_method", "S256"), oauth2.SetAuthURLParam("code_challenge", strings.Repeat("c", 43))), ""); q.Get("error") != want || q.Get("state") != st {
			t.Errorf("%s=%s: %v, want %s", param, v, q, want)
		}
	}
	// The SDKs' anonymous grants are not for confidential clients.
	if r := c.PostJSON("/api/anonymous_user/signup", `{"client_id":"rp-basic","session_type":"refresh_token"}`, nil); r.Status != 400 || r.Reason() != "ConfidentialClient" {
		t.Fatalf("guest sign-up for a confidential client: %d %s", r.Status, r.Raw)
	}

	// Introspection, by confidential clients only.
	introspect := func(id, secret, token string) apitest.Response {
		req := url.Values{"token": {token}}
		h := map[string]string{}
		if secret != "" {
			h["Authorization"] = "Basic " + apitest.BasicAuth(id, secret)
		} else {
			req.Set("client_id", id)
		}
		return c.Do(http.MethodPost, "/oauth2/introspect", "application/x-www-form-urlencoded", req.Encode(), h)
	}
	if r := introspect(rpBasic, basicSecret, refreshed.AccessToken); r.Body["active"] != true || apitest.Str(r.Body, "sub") != sub ||
		apitest.Str(r.Body, "client_id") != rpBasic || apitest.Str(r.Body, "token_type") != "access_token" || !strings.Contains(apitest.Str(r.Body, "scope"), "email") {
		t.Fatalf("introspect an access token: %s", r.Raw)
	}
	if r := introspect(rpBasic, basicSecret, refreshed.RefreshToken); r.Body["active"] != true || apitest.Str(r.Body, "token_type") != "refresh_token" {
		t.Fatalf("introspect a refresh token: %s", r.Raw)
	}
	if r := introspect(rpBasic, basicSecret, "not-a-token"); r.Status != 200 || r.Raw != `{"active":false}`+"\n" && r.Raw != `{"active":false}` {
		t.Fatalf("introspect garbage: %d %q", r.Status, r.Raw)
	}
	if r := introspect(config.DevClientID, "", refreshed.AccessToken); r.Status != 401 || apitest.Str(r.Body, "error") != "invalid_client" {
		t.Fatalf("a public client introspected: %d %s", r.Status, r.Raw)
	}

	// Revocation of a confidential client's token needs that client's
	// authentication: without it nothing happens (and the answer says
	// nothing); a wrong secret is 401.
	if r := c.PostForm("/oauth2/revoke", url.Values{"token": {refreshed.RefreshToken}}); r.Status != 200 {
		t.Fatalf("unauthenticated revoke: %d %s", r.Status, r.Raw)
	}
	if r := introspect(rpBasic, basicSecret, refreshed.RefreshToken); r.Body["active"] != true {
		t.Fatalf("an unauthenticated request revoked a confidential client's token: %s", r.Raw)
	}
	if r := c.Do(http.MethodPost, "/oauth2/revoke", "application/x-www-form-urlencoded", url.Values{"token": {refreshed.RefreshToken}}.Encode(),
		map[string]string{"Authorization": "Basic " + apitest.BasicAuth(rpBasic, postSecret)}); r.Status != 401 {
		t.Fatalf("revoke with a wrong secret: %d %s", r.Status, r.Raw)
	}

	// Rotation with an overlap: both secrets work, then only the new one.
	newSecret, _ := rotateSecret(t, c, rpBasic, `{"overlap_seconds": 3600}`)
	if r := introspect(rpBasic, basicSecret, refreshed.AccessToken); r.Status != 200 {
		t.Fatalf("old secret within the overlap: %d %s", r.Status, r.Raw)
	}
	n.Clock.Advance(time.Hour + time.Second)
	if r := introspect(rpBasic, basicSecret, "x"); r.Status != 401 {
		t.Fatalf("old secret after the overlap: %d %s", r.Status, r.Raw)
	}
	if r := introspect(rpBasic, newSecret, "x"); r.Status != 200 {
		t.Fatalf("new secret: %d %s", r.Status, r.Raw)
	}
	list := c.Do(http.MethodGet, "/admin/clients/"+rpBasic+"/secrets", "", "", map[string]string{"Authorization": "Bearer " + apitest.AdminKey})
	if secrets, _ := list.Body["secrets"].([]any); len(secrets) != 2 || strings.Contains(list.Raw, newSecret) || !strings.Contains(list.Raw, basicID) {
		t.Fatalf("secrets list: %s", list.Raw)
	}

	// RP-initiated logout from another site, with the ID token as hint:
	// the session ends and the browser returns to the registered URI.
	n.Clock.Advance(time.Minute)
	// (basic still holds the expired secret: the token endpoint refuses it
	// too.)
	if _, err := basic.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tokNone.RefreshToken}).Token(); !errors.As(err, &re) || re.ErrorCode != "invalid_client" {
		t.Fatalf("refresh with the expired secret: %v", err)
	}
	basic = newRP(t, ctx, n, rpBasic, newSecret, oauth2.AuthStyleInHeader)
	fresh, err := basic.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tokNone.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh with the new secret: %v", err)
	}
	if r := c.Do(http.MethodGet, "/oauth2/end_session?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"http://evil.example/"}}.Encode(),
		"", "", map[string]string{"Sec-Fetch-Site": "cross-site"}); r.Status == 302 {
		t.Fatalf("logout went to an unregistered URI: %v", r.Header)
	}
	if _, err := basic.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: fresh.RefreshToken}).Token(); err == nil {
		t.Fatal("the hinted session survived logout")
	}
	// A hint that does not verify is no hint: the person is asked.
	if r := c.Do(http.MethodGet, "/oauth2/end_session?"+url.Values{"id_token_hint": {hint[:len(hint)-4] + "AAAA"}, "post_logout_redirect_uri": {rpLoggedOut}}.Encode(),
		"", "", map[string]string{"Sec-Fetch-Site": "cross-site"}); r.Status != 200 || !strings.Contains(r.Raw, "Sign out?") {
		t.Fatalf("logout with a forged hint: %d %s", r.Status, r.Raw)
	}
	out := c.Do(http.MethodGet, "/oauth2/end_session?"+url.Values{"id_token_hint": {idt2Raw(refreshed)}, "post_logout_redirect_uri": {rpLoggedOut},
		"state": {"bye"}}.Encode(), "", "", map[string]string{"Sec-Fetch-Site": "cross-site"})
	if out.Status != 302 || out.Header.Get("Location") != rpLoggedOut+"?state=bye" {
		t.Fatalf("RP-initiated logout: %d %v %s", out.Status, out.Header, out.Raw)
	}
	if r := introspect(rpBasic, newSecret, refreshed.AccessToken); r.Body["active"] != false {
		t.Fatalf("access token active after logout: %s", r.Raw)
	}
	// An authenticated revocation ends the client's session.
	last, _, _ := post.login(t, ctx, browser, rpLoginID, oauth2.SetAuthURLParam("prompt", "login"))
	if r := c.PostForm("/oauth2/revoke", url.Values{"token": {last.RefreshToken}, "client_id": {rpPost}, "client_secret": {postSecret}}); r.Status != 200 {
		t.Fatalf("authenticated revoke: %d %s", r.Status, r.Raw)
	}
	if _, err := post.conf.TokenSource(ctx, &oauth2.Token{RefreshToken: last.RefreshToken}).Token(); err == nil {
		t.Fatal("a revoked refresh token still works")
	}
}

func idt2Raw(tok *oauth2.Token) string { s, _ := tok.Extra("id_token").(string); return s }

// TestIDTokensOnTheSDKsGrants: the Authgear SDKs' own sessions are openid
// sessions: guest sign-up (token mode), the key-pair grant and their
// refreshes answer with an ID token a relying party library verifies (aud
// the SDK's client, sid the session, the Authgear claims, amr by method);
// cookie-mode sign-up answers no tokens at all.
func TestIDTokensOnTheSDKsGrants(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, n.URL)
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: config.DevClientID, Now: n.Clock.Now})
	check := func(what string, body map[string]any, anonymous bool, amr string) idClaims {
		t.Helper()
		raw := apitest.Str(body, "id_token")
		if raw == "" {
			t.Fatalf("%s: no id_token: %v", what, body)
		}
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := idt.VerifyAccessToken(apitest.Str(body, "access_token")); err != nil {
			t.Fatalf("%s: at_hash: %v", what, err)
		}
		var cl idClaims
		_ = idt.Claims(&cl)
		if cl.SID == "" || cl.IsAnonymous == nil || *cl.IsAnonymous != anonymous || cl.AuthTime == 0 || cl.Email != "" ||
			(amr == "") != (len(cl.AMR) == 0) || (amr != "" && cl.AMR[0] != amr) {
			t.Fatalf("%s: claims %+v", what, cl)
		}
		return cl
	}
	r := c.PostJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, nil)
	guest := check("guest sign-up", r.Result(), true, "")
	n.Clock.Advance(time.Minute)
	again := apitest.Refresh(c, apitest.Str(r.Result(), "refresh_token"))
	if cl := check("guest refresh", again.Body, true, ""); cl.SID != guest.SID || cl.AuthTime != guest.AuthTime {
		t.Fatalf("refreshed: %+v, first %+v", cl, guest)
	}
	d := apitest.NewDevice(t, "ES256")
	key := c.KeyGrant(d.JWT(t, c.Challenge(), true, n.Clock.Now()))
	check("key-pair grant", key.Body, true, "swk")
	if r := c.PostJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie"}`, nil); r.Status != 200 || strings.Contains(r.Raw, "id_token") {
		t.Fatalf("cookie-mode sign-up: %d %s", r.Status, r.Raw)
	}
}
