package sdk_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

type device = testenv.Device

// keySignIn signs in with a device and returns the sub.
func keySignIn(t *testing.T, c *apitest.Client, n *testenv.Node, d device, withJWK bool) string {
	t.Helper()
	r := c.KeyGrant(d.JWT(t, c.Challenge(), withJWK, n.Clock.Now()))
	if r.Status != 200 || apitest.Str(r.Body, "refresh_token") == "" {
		t.Fatalf("key sign-in (%s, jwk %v): %d %s", d.Alg, withJWK, r.Status, r.Raw)
	}
	info := c.Userinfo(apitest.Str(r.Body, "access_token"))
	if info.Status != 200 || info.Body["is_anonymous"] != true {
		t.Fatalf("userinfo: %s", info.Raw)
	}
	return apitest.Str(info.Body, "sub")
}

func TestKeyPairSignUpAndBackEachAlgorithm(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		d := apitest.NewDevice(t, alg)
		sub := keySignIn(t, c, n, d, true)
		for range 2 {
			if again := keySignIn(t, c, n, d, false); again != sub {
				t.Fatalf("%s: re-login gave %s, want %s", alg, again, sub)
			}
		}
		// With the key in the header again, it is still the same guest.
		if again := keySignIn(t, c, n, d, true); again != sub {
			t.Fatalf("%s: re-login with jwk gave another user", alg)
		}
		// The identity read model shows the key and its last use.
		waitRow(t, n, `SELECT count(*) FROM identities WHERE key_id = $1 AND user_id::text = $2 AND last_used_at IS NOT NULL
			AND thumbprint <> '' AND alg = $3`, d.KeyID, sub, string(alg))
		waitRow(t, n, `SELECT count(*) FROM users WHERE id::text = $1 AND has_anonymous_key AND last_sign_in_at IS NOT NULL`, sub)
	}
}

func waitRow(t *testing.T, n *testenv.Node, query string, args ...any) {
	t.Helper()
	testenv.WaitFor(t, fmt.Sprintf("a row for %s %v", query, args), 10*time.Second, func() bool {
		var c int
		if err := n.Pool.QueryRow(context.Background(), query, args...).Scan(&c); err != nil {
			t.Fatal(err)
		}
		return c == 1
	})
}

func TestKeyPairSurvivesRestartAndWorksAcrossNodes(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL})
	ca := apitest.NewClient(t, a)
	d := apitest.NewDevice(t, jose.ES256)
	sub := keySignIn(t, ca, a, d, true)

	// A challenge taken on node A cannot be used on node B, and the reverse.
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Clock: a.Clock})
	cb := apitest.NewClient(t, b)
	ch := ca.Challenge()
	if r := cb.KeyGrant(d.JWT(t, ch, false, a.Clock.Now())); r.Status != 200 {
		t.Fatalf("challenge from A on B: %d %s", r.Status, r.Raw)
	}
	if r := ca.KeyGrant(d.JWT(t, ch, false, a.Clock.Now())); r.Reason() != "InvalidChallenge" {
		t.Fatalf("challenge replayed on A after B used it: %d %s", r.Status, r.Raw)
	}

	// After a restart of node A, the device is the same guest.
	a.Close(context.Background())
	a2 := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Clock: a.Clock})
	if again := keySignIn(t, apitest.NewClient(t, a2), a2, d, false); again != sub {
		t.Fatalf("after restart: %s, want %s", again, sub)
	}
}

func TestKeyPairRejections(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	now := n.Clock.Now()
	known := apitest.NewDevice(t, jose.ES256)
	keySignIn(t, c, n, known, true)
	before := apitest.LastSeq(t, n)

	impostor := apitest.NewDevice(t, jose.ES256)
	impostor.KeyID = known.KeyID // same kid, another key
	rsaDev := apitest.NewDevice(t, jose.RS256)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)

	sign := func(d device, withJWK bool, mutate func(*tokens.DeviceRequest)) string {
		r := tokens.DeviceRequest{Key: d.Key, Algorithm: d.Alg, KeyID: d.KeyID, IncludeJWK: withJWK, Challenge: c.Challenge(), Action: "auth", IssuedAt: now}
		if mutate != nil {
			mutate(&r)
		}
		tok, err := tokens.SignAnonymousRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	cases := []struct {
		name, jwt, reason string
	}{
		{"wrong key for a known kid", sign(impostor, false, nil), "InvalidSignature"},
		{"header jwk differs from the stored key", sign(impostor, true, nil), "KeyMismatch"},
		{"unknown kid without jwk", sign(apitest.NewDevice(t, jose.ES256), false, nil), "UnknownKey"},
		{"expired", sign(known, false, func(r *tokens.DeviceRequest) { r.IssuedAt = now.Add(-10 * time.Minute) }), "JWTExpired"},
		{"issued in the future", sign(known, false, func(r *tokens.DeviceRequest) { r.IssuedAt = now.Add(10 * time.Minute) }), "JWTNotYetValid"},
		{"too long-lived", sign(known, false, func(r *tokens.DeviceRequest) { r.ExpiresAt = now.Add(time.Hour) }), "JWTLifetime"},
		{"promote action at the token endpoint", sign(known, false, func(r *tokens.DeviceRequest) { r.Action = "promote" }), "InvalidAction"},
		{"bad kid", sign(known, false, func(r *tokens.DeviceRequest) { r.KeyID = "short" }), "InvalidKeyID"},
		{"kid with a dot", sign(known, false, func(r *tokens.DeviceRequest) { r.KeyID = "abc.defgh.ij" }), "InvalidKeyID"},
		{"unknown challenge", sign(known, false, func(r *tokens.DeviceRequest) { r.Challenge = "never-issued" }), "InvalidChallenge"},
		{"RSA key under 2048 bits", sign(device{Key: weak, Alg: jose.RS256, KeyID: "weak-key-0001"}, true, nil), "InvalidKey"},
		{"alg none", forge(t, map[string]any{"alg": "none", "typ": "vnd.authgear.anonymous-request", "kid": known.KeyID}, c.Challenge(), now, nil), "UnsupportedAlgorithm"},
		{"HS256 keyed with the RSA public key", forge(t, map[string]any{"alg": "HS256", "typ": "vnd.authgear.anonymous-request", "kid": rsaDev.KeyID},
			c.Challenge(), now, x509.MarshalPKCS1PublicKey(&rsaDev.Key.(*rsa.PrivateKey).PublicKey)), "UnsupportedAlgorithm"},
		{"wrong typ", forgeSigned(t, known, "JWT", c.Challenge(), now), "InvalidJWTType"},
		{"garbage", "not-a-jwt", "InvalidJWT"},
		{"two segments", "eyJhbGciOiJFUzI1NiJ9.e30", "InvalidJWT"},
		{"bad base64 header", "@@@.e30.sig", "InvalidJWT"},
	}
	for _, tc := range cases {
		r := c.KeyGrant(tc.jwt)
		if r.Status != 400 || r.Reason() != tc.reason {
			t.Errorf("%s: %d %q, want 400 %s (%s)", tc.name, r.Status, r.Reason(), tc.reason, r.Raw)
		}
	}
	// A challenge is spent by its first use, even a failed one.
	ch := c.Challenge()
	bad, _ := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: impostor.Key, Algorithm: jose.ES256, KeyID: known.KeyID, Challenge: ch, Action: "auth", IssuedAt: now})
	if r := c.KeyGrant(bad); r.Reason() != "InvalidSignature" {
		t.Fatalf("bad signature: %s", r.Raw)
	}
	good := known.JWT(t, ch, false, now)
	if r := c.KeyGrant(good); r.Reason() != "InvalidChallenge" {
		t.Fatalf("challenge reused after a failed use: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/oauth2/challenge", `{"purpose":"other"}`, nil); r.Status != 400 || r.Reason() != "InvalidPurpose" {
		t.Fatalf("bad purpose: %s", r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a rejected key sign-in wrote events")
	}
	// An expired challenge.
	ch = c.Challenge()
	n.Clock.Advance(6 * time.Minute)
	if r := c.KeyGrant(known.JWT(t, ch, false, n.Clock.Now())); r.Reason() != "InvalidChallenge" {
		t.Fatalf("expired challenge: %s", r.Raw)
	}
}

// forge builds a JWT by hand (for algorithms the JOSE library refuses to make).
func forge(t *testing.T, header map[string]any, challenge string, now time.Time, hmacKey []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(map[string]any{"challenge": challenge, "action": "auth", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sig := ""
	if hmacKey != nil {
		m := hmac.New(sha256.New, hmacKey)
		m.Write([]byte(input))
		sig = base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	return input + "." + sig
}

func forgeSigned(t *testing.T, d device, typ, challenge string, now time.Time) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", d.KeyID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: d.Alg, Key: d.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(map[string]any{"challenge": challenge, "action": "auth", "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	jws, err := signer.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func TestConcurrentRegistrationOfOneKey(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	// The same device retrying in parallel: one guest, every attempt in.
	d := apitest.NewDevice(t, jose.ES256)
	subs := make([]string, 8)
	var wg sync.WaitGroup
	for i := range subs {
		jwt := d.JWT(t, c.Challenge(), true, n.Clock.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.KeyGrant(jwt)
			if r.Status != 200 {
				t.Errorf("attempt %d: %d %s", i, r.Status, r.Raw)
				return
			}
			subs[i] = apitest.Str(c.Userinfo(apitest.Str(r.Body, "access_token")).Body, "sub")
		}()
	}
	wg.Wait()
	for _, s := range subs {
		if s != subs[0] || s == "" {
			t.Fatalf("one key became several users: %v", subs)
		}
	}
	// Different devices racing for one kid: one wins, the rest are refused.
	kid := "race-" + uuid.NewString()[:12]
	var ok, refused int
	var mu sync.Mutex
	for range 8 {
		dev := apitest.NewDevice(t, jose.ES256)
		dev.KeyID = kid
		jwt := dev.JWT(t, c.Challenge(), true, n.Clock.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.KeyGrant(jwt)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.Status == 200:
				ok++
			case r.Reason() == "KeyMismatch" || r.Reason() == "InvalidSignature":
				refused++
			default:
				t.Errorf("racing device: %d %s", r.Status, r.Raw)
			}
		}()
	}
	wg.Wait()
	if ok != 1 || refused != 7 {
		t.Fatalf("%d devices got the kid, %d were refused", ok, refused)
	}
}

func TestKeyPairAnonymousDisabled(t *testing.T) {
	off := false
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) { c.Anonymous.Enabled = &off }})
	c := apitest.NewClient(t, n)
	before := apitest.LastSeq(t, n) // the settings, written when the node started
	r := c.KeyGrant(apitest.NewDevice(t, jose.EdDSA).JWT(t, c.Challenge(), true, n.Clock.Now()))
	if r.Status != 400 || r.Reason() != "AnonymousUserDisabled" || apitest.LastSeq(t, n) != before {
		t.Fatalf("disabled: %d %s", r.Status, r.Raw)
	}
}

func TestKeyPairGuestPromotesOnTheHostedPage(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	d := apitest.NewDevice(t, jose.EdDSA)
	sub := keySignIn(t, c, n, d, true)
	promoteJWT := d.Request(t, c.Challenge(), "promote", false, n.Clock.Now())
	// An auth JWT is not a promote JWT.
	_, challenge := apitest.PKCE()
	authHint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {d.JWT(t, c.Challenge(), false, n.Clock.Now())}}.Encode()
	if r := c.Do("GET", "/oauth2/authorize?"+apitest.AuthorizeParams(challenge, authHint).Encode(), "", "", nil); !strings.Contains(r.Header.Get("Location"), "error=invalid_request") {
		t.Fatalf("auth action accepted for promotion: %v", r.Header)
	}
	verifier, challenge := apitest.PKCE()
	hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {promoteJWT}}.Encode()
	page, csrf, p := c.HostedFlow(apitest.AuthorizeParams(challenge, hint))
	if !strings.Contains(p.Raw, "Create your account") {
		t.Fatalf("key-pair promotion page: %s", p.Raw)
	}
	r := c.Submit(page, csrf, url.Values{"login_id": {"device.owner"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("submit: %d %s", r.Status, r.Raw)
	}
	tok := c.Exchange(loc.Query().Get("code"), verifier)
	info := c.Userinfo(apitest.Str(tok.Body, "access_token"))
	if apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false {
		t.Fatalf("after key-pair promotion: %s", info.Raw)
	}
	// The device key no longer signs in; the identity is gone from the read model.
	if r := c.KeyGrant(d.JWT(t, c.Challenge(), false, n.Clock.Now())); r.Reason() != "KeyNotUsable" {
		t.Fatalf("key after promotion: %s", r.Raw)
	}
	// The username identity is projected after the key's removal: once it
	// is there, the key's row being gone means something.
	waitRow(t, n, `SELECT count(*) FROM identities WHERE user_id::text = $1 AND type = 'username'`, sub)
	waitRow(t, n, `SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM identities WHERE key_id = $1`, d.KeyID)
}

// The key-pair grant is a public client's: client credentials sent with it
// are refused (invalid_client when they do not even agree, unauthorized_client
// otherwise), never ignored, and nothing is written.
func TestKeyPairGrantRefusesClientCredentials(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	d := apitest.NewDevice(t, jose.ES256)
	before := apitest.LastSeq(t, n)
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	}
	for name, tc := range map[string]struct {
		secret, auth, want string
	}{
		"client_secret in the form":       {secret: "x", want: "unauthorized_client/ConfidentialClient"},
		"HTTP Basic of the client":        {auth: basic("idstream-dev", "x"), want: "unauthorized_client/ConfidentialClient"},
		"HTTP Basic of another client":    {auth: basic("foo", "bar"), want: "invalid_client/InvalidClient"},
		"HTTP Basic and a secret as well": {secret: "x", auth: basic("foo", "bar"), want: "invalid_request/MultipleClientAuthentication"},
	} {
		form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {"idstream-dev"},
			"jwt": {d.JWT(t, c.Challenge(), true, n.Clock.Now())}}
		if tc.secret != "" {
			form.Set("client_secret", tc.secret)
		}
		h := map[string]string{}
		if tc.auth != "" {
			h["Authorization"] = tc.auth
		}
		r := c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), h)
		if got := apitest.Str(r.Body, "error") + "/" + r.Reason(); r.Status/100 != 4 || got != tc.want {
			t.Errorf("%s: %d %s, want %s", name, r.Status, r.Raw, tc.want)
		}
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a refused key-pair grant wrote to the log")
	}
	// A refusal for credentials comes before the DPoP proof is spent; a
	// bearer token beside the grant (the iOS SDK may send the signed-in
	// user's) is not client authentication.
	c.Public = c.Base
	proof := dpop(c, apitest.NewDevice(t, jose.ES256), "POST", "/oauth2/token", "", n.Clock.Now())
	form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {"idstream-dev"},
		"jwt": {d.JWT(t, c.Challenge(), true, n.Clock.Now())}, "client_secret": {"x"}}
	if r := c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), map[string]string{"DPoP": proof}); r.Reason() != "ConfidentialClient" {
		t.Fatalf("client_secret with a proof: %d %s", r.Status, r.Raw)
	}
	form.Del("client_secret")
	if r := c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(),
		map[string]string{"Authorization": "Bearer some-access-token", "DPoP": proof}); r.Status != 200 {
		t.Fatalf("key-pair grant with a bearer token beside it, and the proof the refusal left unspent: %d %s", r.Status, r.Raw)
	}
}
