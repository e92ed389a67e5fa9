package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

type device = testenv.Device

// newDevice makes a device whose private key the log scan looks for.
func newDevice(t *testing.T, alg jose.SignatureAlgorithm) device {
	t.Helper()
	d := testenv.NewDevice(t, alg)
	recordDeviceKey(d.Key)
	return d
}

func (c *client) challenge() string {
	c.t.Helper()
	r := c.postJSON("/oauth2/challenge", `{"purpose":"anonymous_request"}`, nil)
	if r.status != 200 || str(r.result(), "token") == "" || str(r.result(), "expire_at") == "" {
		c.t.Fatalf("challenge: %d %s", r.status, r.raw)
	}
	return str(r.result(), "token")
}

func (c *client) keyGrant(jwt string) response {
	return c.postForm("/oauth2/token", url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"},
		"client_id": {"idstream-dev"}, "jwt": {jwt}})
}

// keySignIn signs in with a device and returns the sub.
func keySignIn(t *testing.T, c *client, n *testenv.Node, d device, withJWK bool) string {
	t.Helper()
	r := c.keyGrant(d.JWT(t, c.challenge(), withJWK, n.Clock.Now()))
	if r.status != 200 || str(r.body, "refresh_token") == "" {
		t.Fatalf("key sign-in (%s, jwk %v): %d %s", d.Alg, withJWK, r.status, r.raw)
	}
	info := c.userinfo(str(r.body, "access_token"))
	if info.status != 200 || info.body["is_anonymous"] != true {
		t.Fatalf("userinfo: %s", info.raw)
	}
	return str(info.body, "sub")
}

func TestKeyPairSignUpAndBackEachAlgorithm(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	for _, alg := range []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA} {
		d := newDevice(t, alg)
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
	deadline := time.Now().Add(10 * time.Second)
	for {
		var c int
		if err := n.Pool.QueryRow(context.Background(), query, args...).Scan(&c); err != nil {
			t.Fatal(err)
		}
		if c == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no row for %s %v", query, args)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestKeyPairSurvivesRestartAndWorksAcrossNodes(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL})
	ca := newClient(t, a)
	d := newDevice(t, jose.ES256)
	sub := keySignIn(t, ca, a, d, true)

	// A challenge taken on node A cannot be used on node B, and the reverse.
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Clock: a.Clock})
	cb := newClient(t, b)
	ch := ca.challenge()
	if r := cb.keyGrant(d.JWT(t, ch, false, a.Clock.Now())); r.status != 200 {
		t.Fatalf("challenge from A on B: %d %s", r.status, r.raw)
	}
	if r := ca.keyGrant(d.JWT(t, ch, false, a.Clock.Now())); r.reason() != "InvalidChallenge" {
		t.Fatalf("challenge replayed on A after B used it: %d %s", r.status, r.raw)
	}

	// After a restart of node A, the device is the same guest.
	a.Close(context.Background())
	a2 := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Clock: a.Clock})
	if again := keySignIn(t, newClient(t, a2), a2, d, false); again != sub {
		t.Fatalf("after restart: %s, want %s", again, sub)
	}
}

func TestKeyPairRejections(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := newClient(t, n)
	now := n.Clock.Now()
	known := newDevice(t, jose.ES256)
	keySignIn(t, c, n, known, true)
	before := lastSeq(t, n)

	impostor := newDevice(t, jose.ES256)
	impostor.KeyID = known.KeyID // same kid, another key
	rsaDev := newDevice(t, jose.RS256)
	weak, _ := rsa.GenerateKey(rand.Reader, 1024)

	sign := func(d device, withJWK bool, mutate func(*tokens.DeviceRequest)) string {
		r := tokens.DeviceRequest{Key: d.Key, Algorithm: d.Alg, KeyID: d.KeyID, IncludeJWK: withJWK, Challenge: c.challenge(), Action: "auth", IssuedAt: now}
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
		{"unknown kid without jwk", sign(newDevice(t, jose.ES256), false, nil), "UnknownKey"},
		{"expired", sign(known, false, func(r *tokens.DeviceRequest) { r.IssuedAt = now.Add(-10 * time.Minute) }), "JWTExpired"},
		{"issued in the future", sign(known, false, func(r *tokens.DeviceRequest) { r.IssuedAt = now.Add(10 * time.Minute) }), "JWTNotYetValid"},
		{"too long-lived", sign(known, false, func(r *tokens.DeviceRequest) { r.ExpiresAt = now.Add(time.Hour) }), "JWTLifetime"},
		{"promote action at the token endpoint", sign(known, false, func(r *tokens.DeviceRequest) { r.Action = "promote" }), "InvalidAction"},
		{"bad kid", sign(known, false, func(r *tokens.DeviceRequest) { r.KeyID = "short" }), "InvalidKeyID"},
		{"kid with a dot", sign(known, false, func(r *tokens.DeviceRequest) { r.KeyID = "abc.defgh.ij" }), "InvalidKeyID"},
		{"unknown challenge", sign(known, false, func(r *tokens.DeviceRequest) { r.Challenge = "never-issued" }), "InvalidChallenge"},
		{"RSA key under 2048 bits", sign(device{Key: weak, Alg: jose.RS256, KeyID: "weak-key-0001"}, true, nil), "InvalidKey"},
		{"alg none", forge(t, map[string]any{"alg": "none", "typ": "vnd.authgear.anonymous-request", "kid": known.KeyID}, c.challenge(), now, nil), "UnsupportedAlgorithm"},
		{"HS256 keyed with the RSA public key", forge(t, map[string]any{"alg": "HS256", "typ": "vnd.authgear.anonymous-request", "kid": rsaDev.KeyID},
			c.challenge(), now, x509.MarshalPKCS1PublicKey(&rsaDev.Key.(*rsa.PrivateKey).PublicKey)), "UnsupportedAlgorithm"},
		{"wrong typ", forgeSigned(t, known, "JWT", c.challenge(), now), "InvalidJWTType"},
		{"garbage", "not-a-jwt", "InvalidJWT"},
		{"two segments", "eyJhbGciOiJFUzI1NiJ9.e30", "InvalidJWT"},
		{"bad base64 header", "@@@.e30.sig", "InvalidJWT"},
	}
	for _, tc := range cases {
		r := c.keyGrant(tc.jwt)
		if r.status != 400 || r.reason() != tc.reason {
			t.Errorf("%s: %d %q, want 400 %s (%s)", tc.name, r.status, r.reason(), tc.reason, r.raw)
		}
	}
	// A challenge is spent by its first use, even a failed one.
	ch := c.challenge()
	bad, _ := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: impostor.Key, Algorithm: jose.ES256, KeyID: known.KeyID, Challenge: ch, Action: "auth", IssuedAt: now})
	if r := c.keyGrant(bad); r.reason() != "InvalidSignature" {
		t.Fatalf("bad signature: %s", r.raw)
	}
	good := known.JWT(t, ch, false, now)
	if r := c.keyGrant(good); r.reason() != "InvalidChallenge" {
		t.Fatalf("challenge reused after a failed use: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/oauth2/challenge", `{"purpose":"other"}`, nil); r.status != 400 || r.reason() != "InvalidPurpose" {
		t.Fatalf("bad purpose: %s", r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("a rejected key sign-in wrote events")
	}
	// An expired challenge.
	ch = c.challenge()
	n.Clock.Advance(6 * time.Minute)
	if r := c.keyGrant(known.JWT(t, ch, false, n.Clock.Now())); r.reason() != "InvalidChallenge" {
		t.Fatalf("expired challenge: %s", r.raw)
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
	c := newClient(t, n)
	// The same device retrying in parallel: one guest, every attempt in.
	d := newDevice(t, jose.ES256)
	subs := make([]string, 8)
	var wg sync.WaitGroup
	for i := range subs {
		jwt := d.JWT(t, c.challenge(), true, n.Clock.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.keyGrant(jwt)
			if r.status != 200 {
				t.Errorf("attempt %d: %d %s", i, r.status, r.raw)
				return
			}
			subs[i] = str(c.userinfo(str(r.body, "access_token")).body, "sub")
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
		dev := newDevice(t, jose.ES256)
		dev.KeyID = kid
		jwt := dev.JWT(t, c.challenge(), true, n.Clock.Now())
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := c.keyGrant(jwt)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.status == 200:
				ok++
			case r.reason() == "KeyMismatch" || r.reason() == "InvalidSignature":
				refused++
			default:
				t.Errorf("racing device: %d %s", r.status, r.raw)
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
	c := newClient(t, n)
	before := lastSeq(t, n) // the settings, written when the node started
	r := c.keyGrant(newDevice(t, jose.EdDSA).JWT(t, c.challenge(), true, n.Clock.Now()))
	if r.status != 400 || r.reason() != "AnonymousUserDisabled" || lastSeq(t, n) != before {
		t.Fatalf("disabled: %d %s", r.status, r.raw)
	}
}

func TestKeyPairGuestPromotesOnTheHostedPage(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheapHashes})
	c := newClient(t, n)
	d := newDevice(t, jose.EdDSA)
	sub := keySignIn(t, c, n, d, true)
	promoteJWT := d.Request(t, c.challenge(), "promote", false, n.Clock.Now())
	// An auth JWT is not a promote JWT.
	_, challenge := pkce()
	authHint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {d.JWT(t, c.challenge(), false, n.Clock.Now())}}.Encode()
	if r := c.do("GET", "/oauth2/authorize?"+authorizeParams(challenge, authHint).Encode(), "", "", nil); !strings.Contains(r.header.Get("Location"), "error=invalid_request") {
		t.Fatalf("auth action accepted for promotion: %v", r.header)
	}
	verifier, challenge := pkce()
	hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {promoteJWT}}.Encode()
	page, csrf, p := c.hostedFlow(authorizeParams(challenge, hint))
	if !strings.Contains(p.raw, "Create your account") {
		t.Fatalf("key-pair promotion page: %s", p.raw)
	}
	r := c.submit(page, csrf, url.Values{"login_id": {"device.owner"}, "password": {goodPassword}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("submit: %d %s", r.status, r.raw)
	}
	tok := c.exchange(loc.Query().Get("code"), verifier)
	info := c.userinfo(str(tok.body, "access_token"))
	if str(info.body, "sub") != sub || info.body["is_anonymous"] != false {
		t.Fatalf("after key-pair promotion: %s", info.raw)
	}
	// The device key no longer signs in; the identity is gone from the read model.
	if r := c.keyGrant(d.JWT(t, c.challenge(), false, n.Clock.Now())); r.reason() != "KeyNotUsable" {
		t.Fatalf("key after promotion: %s", r.raw)
	}
	waitRow(t, n, `SELECT CASE WHEN count(*) = 0 THEN 1 ELSE 0 END FROM identities WHERE key_id = $1`, d.KeyID)
	waitRow(t, n, `SELECT count(*) FROM identities WHERE user_id::text = $1 AND type = 'username'`, sub)
}
