package sdk_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// dpop signs a proof with key for method and path on c's node; ath when at
// is set.
func dpop(c *apitest.Client, key device, method, path, at string, now time.Time) string {
	return dpopNonce(c, key, method, path, at, "", now)
}

// dpopNonce signs a proof, with a server-provided nonce when nonce is set.
// Proofs are secrets to the log scan.
func dpopNonce(c *apitest.Client, key device, method, path, at, nonce string, now time.Time) string {
	base := c.Base
	if c.Public != "" {
		base = c.Public
	}
	p, err := tokens.SignDPoPProof(tokens.DeviceProof{Key: key.Key, Algorithm: key.Alg, KeyID: key.KeyID, Method: method, URL: base + path,
		JTI: uuid.NewString(), IssuedAt: now, AccessToken: at, Nonce: nonce})
	if err != nil {
		panic(err)
	}
	testenv.RecordSecret("DPoP proof", p)
	return p
}

// nodesBehindOneURL starts two nodes on one log, database and clock,
// behind one public URL as behind a load balancer (a proof's htu is that
// URL), with a client of each.
func nodesBehindOneURL(t *testing.T, ns *testenv.NATS, configure func(*config.Config)) (a, b *testenv.Node, ca, cb *apitest.Client) {
	t.Helper()
	dbURL, _ := testenv.Database(t)
	const public = "http://id.example.test"
	behind := func(c *config.Config) {
		c.PublicURL = public
		configure(c)
	}
	a = testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: behind})
	b = testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Clock: a.Clock, Configure: behind})
	ca, cb = apitest.NewClient(t, a), apitest.NewClient(t, b)
	ca.Public, cb.Public = public, public
	return a, b, ca, cb
}

func keyGrantWith(c *apitest.Client, jwt string, headers map[string]string) apitest.Response {
	form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {"idstream-dev"}, "jwt": {jwt}}
	return c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), headers)
}

func refreshWith(c *apitest.Client, rt string, headers map[string]string) apitest.Response {
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}}
	return c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), headers)
}

func userinfoWith(c *apitest.Client, headers map[string]string) apitest.Response {
	return c.Do(http.MethodGet, "/oauth2/userinfo", "", "", headers)
}

// oauthReason is an OAuth error answer's error and reason.
func oauthReason(r apitest.Response) string { return apitest.Str(r.Body, "error") + "/" + r.Reason() }

// cnfOf reads an access token's cnf.jkt (without verifying: the server
// does that).
func cnfOf(t *testing.T, at string) string {
	t.Helper()
	tok, err := jose.ParseSigned(at, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Cnf struct {
			JKT string `json:"jkt"`
		} `json:"cnf"`
	}
	_ = json.Unmarshal(tok.UnsafePayloadWithoutVerification(), &c)
	return c.Cnf.JKT
}

// Issue 17, DPoP (RFC 9449): a key-pair sign-in with a proof binds the
// session to the proof's key, across nodes; every check of the proof has
// its reason; a bound refresh token or access token is worth nothing
// without the key; clients without DPoP (the web SDK) are unchanged.
func TestDPoPBindsSessionsAcrossNodes(t *testing.T) {
	ns := testenv.StartNATS(t)
	a, _, ca, cb := nodesBehindOneURL(t, ns, func(*config.Config) {})
	now := a.Clock.Now
	d := apitest.NewDevice(t, jose.RS256)
	// The SDKs keep a DPoP key apart from the anonymous key: ES256 on iOS
	// (Secure Enclave), RS256 elsewhere.
	key := apitest.NewDevice(t, jose.ES256)
	other := apitest.NewDevice(t, jose.RS256)

	proof := dpop(ca, key, "POST", "/oauth2/token", "", now())
	r := keyGrantWith(ca, d.JWT(t, ca.Challenge(), true, now()), map[string]string{"DPoP": proof})
	if r.Status != 200 || apitest.Str(r.Body, "token_type") != "DPoP" {
		t.Fatalf("bound key-pair sign-in: %d %s", r.Status, r.Raw)
	}
	at, rt := apitest.Str(r.Body, "access_token"), apitest.Str(r.Body, "refresh_token")
	if got := cnfOf(t, at); got != key.Thumbprint(t) {
		t.Fatalf("cnf.jkt %q, want %q", got, key.Thumbprint(t))
	}
	// The proof is spent: replayed on the other node, it is refused.
	if r := keyGrantWith(cb, d.JWT(t, cb.Challenge(), false, now()), map[string]string{"DPoP": proof}); r.Status != 400 || oauthReason(r) != "invalid_dpop_proof/DPoPReplayed" {
		t.Fatalf("replayed proof on node B: %d %s", r.Status, r.Raw)
	}
	// The bound session records the thumbprint on session.started.v1.
	sub := apitest.Str(userinfoWith(ca, map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(ca, key, "GET", "/oauth2/userinfo", at, now())}).Body, "sub")
	if sub == "" {
		t.Fatal("userinfo with the DPoP scheme failed")
	}
	if !loggedSessionBound(t, a, sub, key.Thumbprint(t)) {
		t.Fatal("session.started.v1 does not record the DPoP key")
	}

	// Refresh: without a proof, or with another key's, refused, and the
	// session is untouched (not revoked as reuse): the right key then
	// refreshes on node B.
	for _, c := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"no proof", nil, "invalid_dpop_proof/DPoPProofRequired"},
		{"another key", map[string]string{"DPoP": dpop(ca, other, "POST", "/oauth2/token", "", now())}, "invalid_dpop_proof/DPoPKeyMismatch"},
		{"wrong htm", map[string]string{"DPoP": dpop(ca, key, "GET", "/oauth2/token", "", now())}, "invalid_dpop_proof/DPoPMethod"},
		{"wrong htu", map[string]string{"DPoP": dpop(ca, key, "POST", "/oauth2/revoke", "", now())}, "invalid_dpop_proof/DPoPURL"},
		{"stale iat", map[string]string{"DPoP": dpop(ca, key, "POST", "/oauth2/token", "", now().Add(-10*time.Minute))}, "invalid_dpop_proof/DPoPTime"},
		{"iat ahead", map[string]string{"DPoP": dpop(ca, key, "POST", "/oauth2/token", "", now().Add(5*time.Minute))}, "invalid_dpop_proof/DPoPTime"},
		{"bad signature", map[string]string{"DPoP": tamper(dpop(ca, key, "POST", "/oauth2/token", "", now()))}, "invalid_dpop_proof/DPoPSignature"},
		{"not a JWT", map[string]string{"DPoP": "nonsense"}, "invalid_dpop_proof/InvalidDPoPProof"},
	} {
		if r := refreshWith(ca, rt, c.headers); r.Status != 400 || oauthReason(r) != c.want {
			t.Errorf("refresh, %s: %d %s, want %s", c.name, r.Status, r.Raw, c.want)
		}
	}
	before := apitest.LastSeq(t, a)
	r = refreshWith(cb, rt, map[string]string{"DPoP": dpop(cb, key, "POST", "/oauth2/token", "", now())})
	if r.Status != 200 || apitest.Str(r.Body, "token_type") != "DPoP" {
		t.Fatalf("refresh with the key on node B: %d %s", r.Status, r.Raw)
	}
	if after := apitest.LastSeq(t, a); after != before+1 {
		t.Fatalf("the refused refreshes wrote to the log: %d events for one refresh", after-before)
	}
	at = apitest.Str(r.Body, "access_token")

	// Userinfo (a protected resource).
	ui := func(c *apitest.Client, h map[string]string) apitest.Response { return userinfoWith(c, h) }
	for _, c := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"bound token as Bearer without a proof", map[string]string{"Authorization": "Bearer " + at}, "invalid_dpop_proof/DPoPProofRequired"},
		{"DPoP scheme without a proof", map[string]string{"Authorization": "DPoP " + at}, "invalid_dpop_proof/DPoPProofRequired"},
		{"DPoP scheme, proof without ath", map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(ca, key, "GET", "/oauth2/userinfo", "", now())}, "invalid_dpop_proof/DPoPAccessTokenHash"},
		{"DPoP scheme, ath of another token", map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(ca, key, "GET", "/oauth2/userinfo", "other", now())}, "invalid_dpop_proof/DPoPAccessTokenHash"},
		{"another key", map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(ca, other, "GET", "/oauth2/userinfo", at, now())}, "invalid_dpop_proof/DPoPKeyMismatch"},
		{"wrong htm", map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(ca, key, "POST", "/oauth2/userinfo", at, now())}, "invalid_dpop_proof/DPoPMethod"},
	} {
		r := ui(ca, c.headers)
		if r.Status != 401 || oauthReason(r) != c.want || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("userinfo, %s: %d %s %q, want %s", c.name, r.Status, r.Raw, r.Header.Get("WWW-Authenticate"), c.want)
		}
	}
	// Two DPoP headers are refused.
	req, _ := http.NewRequest(http.MethodGet, ca.Base+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "DPoP "+at)
	req.Header.Add("DPoP", dpop(ca, key, "GET", "/oauth2/userinfo", at, now()))
	req.Header.Add("DPoP", dpop(ca, key, "GET", "/oauth2/userinfo", at, now()))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("two DPoP headers: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Accepted: the RFC's DPoP scheme with ath (on node B), and the
	// Authgear SDKs' Bearer with a proof without ath.
	for _, c := range []struct {
		name    string
		cl      *apitest.Client
		headers map[string]string
	}{
		{"DPoP scheme with ath", cb, map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(cb, key, "GET", "/oauth2/userinfo", at, now())}},
		{"Bearer with the SDK's proof", ca, map[string]string{"Authorization": "Bearer " + at, "DPoP": dpop(ca, key, "GET", "/oauth2/userinfo", "", now())}},
	} {
		if r := ui(c.cl, c.headers); r.Status != 200 || apitest.Str(r.Body, "sub") != sub {
			t.Errorf("userinfo, %s: %d %s", c.name, r.Status, r.Raw)
		}
	}

	// The web SDK sends no proof: its tokens stay Bearer; a bearer token
	// sent with the DPoP scheme is refused; a proof beside it is ignored.
	wat, wrt := apitest.Signup(t, ca)
	if r := ca.Userinfo(wat); r.Status != 200 {
		t.Fatalf("web bearer token: %d %s", r.Status, r.Raw)
	}
	if r := ui(ca, map[string]string{"Authorization": "DPoP " + wat, "DPoP": dpop(ca, key, "GET", "/oauth2/userinfo", wat, now())}); r.Status != 401 || r.Reason() != "TokenNotBound" {
		t.Fatalf("bearer token with the DPoP scheme: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(ca, wrt); r.Status != 200 || apitest.Str(r.Body, "token_type") != "Bearer" {
		t.Fatalf("web refresh: %d %s", r.Status, r.Raw)
	}
}

// tamper changes a JWS's signature.
func tamper(jws string) string {
	i := strings.LastIndexByte(jws, '.')
	sig := []byte(jws[i+1:])
	if sig[0] == 'A' {
		sig[0] = 'B'
	} else {
		sig[0] = 'A'
	}
	return jws[:i+1] + string(sig)
}

// loggedSessionBound reports whether the user's sign-in session started
// bound to jkt, as the log says.
func loggedSessionBound(t *testing.T, n *testenv.Node, sub, jkt string) bool {
	t.Helper()
	recs, _, err := n.Store.Load(context.Background(), n.Store.Subject("user", sub))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		ev, err := domain.DecodeEvent(rec.Type, rec.Data)
		if err != nil {
			t.Fatal(err)
		}
		var sid string
		switch e := ev.(type) {
		case domain.UserSignedIn:
			sid = e.SessionID
		case domain.AnonymousUserCreated:
			sid = e.SessionID
		}
		if sid == "" {
			continue
		}
		srecs, _, err := n.Store.Load(context.Background(), n.Store.Subject("session", sid))
		if err != nil {
			t.Fatal(err)
		}
		for _, sr := range srecs {
			if sev, err := domain.DecodeEvent(sr.Type, sr.Data); err == nil {
				if st, ok := sev.(domain.SessionStarted); ok && st.DPoPJKT == jkt {
					return true
				}
			}
		}
	}
	return false
}

// Issue 17: dpop_jkt on authorize binds the authorization code (RFC 9449
// §10), as the mobile SDKs send it on the hosted promotion of a key-pair
// guest: the exchange needs a proof by that key, and the session it gives
// is bound to it.
func TestDPoPBindsTheAuthorizationCode(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	d := apitest.NewDevice(t, jose.RS256)
	key := apitest.NewDevice(t, jose.RS256)
	other := apitest.NewDevice(t, jose.RS256)
	sub := keySignIn(t, c, n, d, true)
	if r := c.Do("GET", "/oauth2/authorize?"+withParam(apitest.AuthorizeParams("x", ""), "dpop_jkt", "short").Encode(), "", "", nil); !strings.Contains(r.Header.Get("Location"), "error=invalid_request") {
		t.Fatalf("malformed dpop_jkt: %d %v", r.Status, r.Header)
	}
	verifier, challenge := apitest.PKCE()
	hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {d.Request(t, c.Challenge(), "promote", false, n.Clock.Now())}}.Encode()
	page, csrf, _ := c.HostedFlow(withParam(apitest.AuthorizeParams(challenge, hint), "dpop_jkt", key.Thumbprint(t)))
	r := c.Submit(page, csrf, url.Values{"login_id": {"bound.owner"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("submit: %d %s", r.Status, r.Raw)
	}
	exchangeWith := func(verifier string, h map[string]string) apitest.Response {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"}, "code": {code},
			"redirect_uri": {"http://localhost:3000/after"}, "code_verifier": {verifier}}
		return c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), h)
	}
	exchange := func(h map[string]string) apitest.Response { return exchangeWith(verifier, h) }
	if r := exchange(nil); oauthReason(r) != "invalid_dpop_proof/DPoPProofRequired" {
		t.Fatalf("exchange without a proof: %d %s", r.Status, r.Raw)
	}
	if r := exchange(map[string]string{"DPoP": dpop(c, other, "POST", "/oauth2/token", "", n.Clock.Now())}); oauthReason(r) != "invalid_dpop_proof/DPoPKeyMismatch" {
		t.Fatalf("exchange with another key: %d %s", r.Status, r.Raw)
	}
	// A proof sent with a verifier that does not match is not spent (the
	// grant was not given): the same proof then exchanges the code.
	p := dpop(c, key, "POST", "/oauth2/token", "", n.Clock.Now())
	if r := exchangeWith(verifier+"x", map[string]string{"DPoP": p}); r.Reason() != "PKCEMismatch" {
		t.Fatalf("exchange with another verifier: %d %s", r.Status, r.Raw)
	}
	tok := exchange(map[string]string{"DPoP": p})
	if tok.Status != 200 || apitest.Str(tok.Body, "token_type") != "DPoP" {
		t.Fatalf("exchange with the key: %d %s", tok.Status, tok.Raw)
	}
	at := apitest.Str(tok.Body, "access_token")
	userinfo := func() apitest.Response {
		return userinfoWith(c, map[string]string{"Authorization": "Bearer " + at, "DPoP": dpop(c, key, "GET", "/oauth2/userinfo", "", n.Clock.Now())})
	}
	if info := userinfo(); apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false {
		t.Fatalf("after the bound promotion: %s", info.Raw)
	}
	// The exchange replayed as it was sent is refused for its proof,
	// before the code's reuse could revoke what it gave.
	if r := exchange(map[string]string{"DPoP": p}); oauthReason(r) != "invalid_dpop_proof/DPoPReplayed" {
		t.Fatalf("the exchange replayed: %d %s", r.Status, r.Raw)
	}
	if info := userinfo(); apitest.Str(info.Body, "sub") != sub {
		t.Fatalf("after the replay: %d %s", info.Status, info.Raw)
	}
	// Discovery says which proof algorithms are taken.
	disc := c.Do("GET", "/.well-known/openid-configuration", "", "", nil)
	algs, _ := disc.Body["dpop_signing_alg_values_supported"].([]any)
	if len(algs) != len(tokens.DPoPAlgorithms) {
		t.Fatalf("dpop_signing_alg_values_supported: %v", disc.Body["dpop_signing_alg_values_supported"])
	}
}

func withParam(v url.Values, k, val string) url.Values {
	v.Set(k, val)
	return v
}

// A headless promotion of a DPoP-bound guest keeps the binding: the
// regular session's tokens are bound to the guest's key, not bearer.
func TestHeadlessPromotionKeepsTheDPoPBinding(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	d, key := apitest.NewDevice(t, jose.RS256), apitest.NewDevice(t, jose.ES256)
	r := keyGrantWith(c, d.JWT(t, c.Challenge(), true, n.Clock.Now()), map[string]string{"DPoP": dpop(c, key, "POST", "/oauth2/token", "", n.Clock.Now())})
	if r.Status != 200 || apitest.Str(r.Body, "token_type") != "DPoP" {
		t.Fatalf("bound sign-in: %d %s", r.Status, r.Raw)
	}
	at := apitest.Str(r.Body, "access_token")
	p := c.Do(http.MethodPost, "/api/anonymous_user/promote", "application/json", apitest.PromoteBody("bound.headless", apitest.GoodPassword),
		map[string]string{"Authorization": "Bearer " + at, "DPoP": dpop(c, key, "POST", "/api/anonymous_user/promote", "", n.Clock.Now())})
	if p.Status != 200 || apitest.Str(p.Result(), "token_type") != "DPoP" || cnfOf(t, apitest.Str(p.Result(), "access_token")) != key.Thumbprint(t) {
		t.Fatalf("headless promotion of a bound guest: %d %s", p.Status, p.Raw)
	}
	rt := apitest.Str(p.Result(), "refresh_token")
	if r := refreshWith(c, rt, nil); r.Status != 400 || oauthReason(r) != "invalid_dpop_proof/DPoPProofRequired" {
		t.Fatalf("the regular session's refresh without the key: %d %s", r.Status, r.Raw)
	}
	if r := refreshWith(c, rt, map[string]string{"DPoP": dpop(c, key, "POST", "/oauth2/token", "", n.Clock.Now())}); r.Status != 200 {
		t.Fatalf("the regular session's refresh with the key: %d %s", r.Status, r.Raw)
	}
}
