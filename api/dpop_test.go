package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// dpop signs a proof with key for method and path on c's node; ath when at
// is set. Proofs are secrets to the log scan.
func (c *client) dpop(key device, method, path, at string, now time.Time) string {
	c.t.Helper()
	base := c.base
	if c.public != "" {
		base = c.public
	}
	p := key.Proof(c.t, method, base+path, at, now)
	testenv.RecordSecret("DPoP proof", p)
	return p
}

func (c *client) keyGrantWith(jwt string, headers map[string]string) response {
	form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {"idstream-dev"}, "jwt": {jwt}}
	return c.do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), headers)
}

func (c *client) refreshWith(rt string, headers map[string]string) response {
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}}
	return c.do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), headers)
}

func (c *client) userinfoWith(headers map[string]string) response {
	return c.do(http.MethodGet, "/oauth2/userinfo", "", "", headers)
}

// oauthReason is an OAuth error answer's error and reason.
func oauthReason(r response) string { return str(r.body, "error") + "/" + r.reason() }

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
	dbURL, _ := testenv.Database(t)
	// Two nodes behind one public URL, as behind a load balancer: a
	// proof's htu is that URL.
	const public = "http://id.example.test"
	behind := func(c *config.Config) { c.PublicURL = public }
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: behind})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Clock: a.Clock, Configure: behind})
	ca, cb := newClient(t, a), newClient(t, b)
	ca.public, cb.public = public, public
	now := a.Clock.Now
	d := newDevice(t, jose.RS256)
	// The SDKs keep a DPoP key apart from the anonymous key: ES256 on iOS
	// (Secure Enclave), RS256 elsewhere.
	key := newDevice(t, jose.ES256)
	other := newDevice(t, jose.RS256)

	proof := ca.dpop(key, "POST", "/oauth2/token", "", now())
	r := ca.keyGrantWith(d.JWT(t, ca.challenge(), true, now()), map[string]string{"DPoP": proof})
	if r.status != 200 || str(r.body, "token_type") != "DPoP" {
		t.Fatalf("bound key-pair sign-in: %d %s", r.status, r.raw)
	}
	ca.remember(r)
	at, rt := str(r.body, "access_token"), str(r.body, "refresh_token")
	if got := cnfOf(t, at); got != key.Thumbprint(t) {
		t.Fatalf("cnf.jkt %q, want %q", got, key.Thumbprint(t))
	}
	// The proof is spent: replayed on the other node, it is refused.
	if r := cb.keyGrantWith(d.JWT(t, cb.challenge(), false, now()), map[string]string{"DPoP": proof}); r.status != 400 || oauthReason(r) != "invalid_dpop_proof/DPoPReplayed" {
		t.Fatalf("replayed proof on node B: %d %s", r.status, r.raw)
	}
	// The bound session records the thumbprint on session.started.v1.
	sub := str(ca.userinfoWith(map[string]string{"Authorization": "DPoP " + at, "DPoP": ca.dpop(key, "GET", "/oauth2/userinfo", at, now())}).body, "sub")
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
		{"another key", map[string]string{"DPoP": ca.dpop(other, "POST", "/oauth2/token", "", now())}, "invalid_dpop_proof/DPoPKeyMismatch"},
		{"wrong htm", map[string]string{"DPoP": ca.dpop(key, "GET", "/oauth2/token", "", now())}, "invalid_dpop_proof/DPoPMethod"},
		{"wrong htu", map[string]string{"DPoP": ca.dpop(key, "POST", "/oauth2/revoke", "", now())}, "invalid_dpop_proof/DPoPURL"},
		{"stale iat", map[string]string{"DPoP": ca.dpop(key, "POST", "/oauth2/token", "", now().Add(-10*time.Minute))}, "invalid_dpop_proof/DPoPTime"},
		{"iat ahead", map[string]string{"DPoP": ca.dpop(key, "POST", "/oauth2/token", "", now().Add(5*time.Minute))}, "invalid_dpop_proof/DPoPTime"},
		{"bad signature", map[string]string{"DPoP": tamper(ca.dpop(key, "POST", "/oauth2/token", "", now()))}, "invalid_dpop_proof/DPoPSignature"},
		{"not a JWT", map[string]string{"DPoP": "nonsense"}, "invalid_dpop_proof/InvalidDPoPProof"},
	} {
		if r := ca.refreshWith(rt, c.headers); r.status != 400 || oauthReason(r) != c.want {
			t.Errorf("refresh, %s: %d %s, want %s", c.name, r.status, r.raw, c.want)
		}
	}
	before := lastSeq(t, a)
	r = cb.refreshWith(rt, map[string]string{"DPoP": cb.dpop(key, "POST", "/oauth2/token", "", now())})
	if r.status != 200 || str(r.body, "token_type") != "DPoP" {
		t.Fatalf("refresh with the key on node B: %d %s", r.status, r.raw)
	}
	cb.remember(r)
	if after := lastSeq(t, a); after != before+1 {
		t.Fatalf("the refused refreshes wrote to the log: %d events for one refresh", after-before)
	}
	at = str(r.body, "access_token")

	// Userinfo (a protected resource).
	ui := func(c *client, h map[string]string) response { return c.userinfoWith(h) }
	for _, c := range []struct {
		name    string
		headers map[string]string
		want    string
	}{
		{"bound token as Bearer without a proof", map[string]string{"Authorization": "Bearer " + at}, "invalid_dpop_proof/DPoPProofRequired"},
		{"DPoP scheme without a proof", map[string]string{"Authorization": "DPoP " + at}, "invalid_dpop_proof/DPoPProofRequired"},
		{"DPoP scheme, proof without ath", map[string]string{"Authorization": "DPoP " + at, "DPoP": ca.dpop(key, "GET", "/oauth2/userinfo", "", now())}, "invalid_dpop_proof/DPoPAccessTokenHash"},
		{"DPoP scheme, ath of another token", map[string]string{"Authorization": "DPoP " + at, "DPoP": ca.dpop(key, "GET", "/oauth2/userinfo", "other", now())}, "invalid_dpop_proof/DPoPAccessTokenHash"},
		{"another key", map[string]string{"Authorization": "DPoP " + at, "DPoP": ca.dpop(other, "GET", "/oauth2/userinfo", at, now())}, "invalid_dpop_proof/DPoPKeyMismatch"},
		{"wrong htm", map[string]string{"Authorization": "DPoP " + at, "DPoP": ca.dpop(key, "POST", "/oauth2/userinfo", at, now())}, "invalid_dpop_proof/DPoPMethod"},
	} {
		r := ui(ca, c.headers)
		if r.status != 401 || oauthReason(r) != c.want || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("userinfo, %s: %d %s %q, want %s", c.name, r.status, r.raw, r.header.Get("WWW-Authenticate"), c.want)
		}
	}
	// Two DPoP headers are refused.
	req, _ := http.NewRequest(http.MethodGet, ca.base+"/oauth2/userinfo", nil)
	req.Header.Set("Authorization", "DPoP "+at)
	req.Header.Add("DPoP", ca.dpop(key, "GET", "/oauth2/userinfo", at, now()))
	req.Header.Add("DPoP", ca.dpop(key, "GET", "/oauth2/userinfo", at, now()))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
		t.Fatalf("two DPoP headers: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	// Accepted: the RFC's DPoP scheme with ath (on node B), and the
	// Authgear SDKs' Bearer with a proof without ath.
	for _, c := range []struct {
		name    string
		cl      *client
		headers map[string]string
	}{
		{"DPoP scheme with ath", cb, map[string]string{"Authorization": "DPoP " + at, "DPoP": cb.dpop(key, "GET", "/oauth2/userinfo", at, now())}},
		{"Bearer with the SDK's proof", ca, map[string]string{"Authorization": "Bearer " + at, "DPoP": ca.dpop(key, "GET", "/oauth2/userinfo", "", now())}},
	} {
		if r := ui(c.cl, c.headers); r.status != 200 || str(r.body, "sub") != sub {
			t.Errorf("userinfo, %s: %d %s", c.name, r.status, r.raw)
		}
	}

	// The web SDK sends no proof: its tokens stay Bearer; a bearer token
	// sent with the DPoP scheme is refused; a proof beside it is ignored.
	wat, wrt := signup(t, ca)
	if r := ca.userinfo(wat); r.status != 200 {
		t.Fatalf("web bearer token: %d %s", r.status, r.raw)
	}
	if r := ui(ca, map[string]string{"Authorization": "DPoP " + wat, "DPoP": ca.dpop(key, "GET", "/oauth2/userinfo", wat, now())}); r.status != 401 || r.reason() != "TokenNotBound" {
		t.Fatalf("bearer token with the DPoP scheme: %d %s", r.status, r.raw)
	}
	if r := refresh(ca, wrt); r.status != 200 || str(r.body, "token_type") != "Bearer" {
		t.Fatalf("web refresh: %d %s", r.status, r.raw)
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
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	d := newDevice(t, jose.RS256)
	key := newDevice(t, jose.RS256)
	other := newDevice(t, jose.RS256)
	sub := keySignIn(t, c, n, d, true)
	if r := c.do("GET", "/oauth2/authorize?"+withParam(authorizeParams("x", ""), "dpop_jkt", "short").Encode(), "", "", nil); !strings.Contains(r.header.Get("Location"), "error=invalid_request") {
		t.Fatalf("malformed dpop_jkt: %d %v", r.status, r.header)
	}
	verifier, challenge := pkce()
	hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {d.Request(t, c.challenge(), "promote", false, n.Clock.Now())}}.Encode()
	page, csrf, _ := c.hostedFlow(withParam(authorizeParams(challenge, hint), "dpop_jkt", key.Thumbprint(t)))
	r := c.submit(page, csrf, url.Values{"login_id": {"bound.owner"}, "password": {goodPassword}})
	loc, _ := url.Parse(r.header.Get("Location"))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("submit: %d %s", r.status, r.raw)
	}
	exchange := func(h map[string]string) response {
		form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"}, "code": {code},
			"redirect_uri": {"http://localhost:3000/after"}, "code_verifier": {verifier}}
		return c.do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), h)
	}
	if r := exchange(nil); oauthReason(r) != "invalid_dpop_proof/DPoPProofRequired" {
		t.Fatalf("exchange without a proof: %d %s", r.status, r.raw)
	}
	if r := exchange(map[string]string{"DPoP": c.dpop(other, "POST", "/oauth2/token", "", n.Clock.Now())}); oauthReason(r) != "invalid_dpop_proof/DPoPKeyMismatch" {
		t.Fatalf("exchange with another key: %d %s", r.status, r.raw)
	}
	tok := exchange(map[string]string{"DPoP": c.dpop(key, "POST", "/oauth2/token", "", n.Clock.Now())})
	if tok.status != 200 || str(tok.body, "token_type") != "DPoP" {
		t.Fatalf("exchange with the key: %d %s", tok.status, tok.raw)
	}
	c.remember(tok)
	at := str(tok.body, "access_token")
	info := c.userinfoWith(map[string]string{"Authorization": "Bearer " + at, "DPoP": c.dpop(key, "GET", "/oauth2/userinfo", "", n.Clock.Now())})
	if str(info.body, "sub") != sub || info.body["is_anonymous"] != false {
		t.Fatalf("after the bound promotion: %s", info.raw)
	}
	// Discovery says which proof algorithms are taken.
	disc := c.do("GET", "/.well-known/openid-configuration", "", "", nil)
	algs, _ := disc.body["dpop_signing_alg_values_supported"].([]any)
	if len(algs) != len(tokens.DPoPAlgorithms) {
		t.Fatalf("dpop_signing_alg_values_supported: %v", disc.body["dpop_signing_alg_values_supported"])
	}
}

func withParam(v url.Values, k, val string) url.Values {
	v.Set(k, val)
	return v
}
