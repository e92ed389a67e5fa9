package sdk_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// Issue 17, DPoP nonces (RFC 9449 §8, §9), for a client that requires
// them (dpop_nonce_required): a proof without a nonce, or with one this
// service did not make or no longer accepts, is answered use_dpop_nonce
// with a fresh DPoP-Nonce and nothing written; a nonce from one node is
// good on the other and across a key rotation; every answer to the client
// carries the current nonce. A client without the setting is unchanged.
func TestDPoPNonces(t *testing.T) {
	ns := testenv.StartNATS(t)
	a, _, ca, cb := nodesBehindOneURL(t, ns, func(c *config.Config) { c.Clients[0].DPoPNonceRequired = true })
	now := a.Clock.Now
	d := apitest.NewDevice(t, jose.RS256)
	key := apitest.NewDevice(t, jose.ES256)
	useNonce := "use_dpop_nonce/UseDPoPNonce"

	// No nonce: refused with one, before anything is decided or written.
	before := apitest.LastSeq(t, a)
	r := keyGrantWith(ca, d.JWT(t, ca.Challenge(), true, now()), map[string]string{"DPoP": dpop(ca, key, "POST", "/oauth2/token", "", now())})
	nonce := r.Header.Get("DPoP-Nonce")
	if r.Status != 400 || oauthReason(r) != useNonce || nonce == "" {
		t.Fatalf("proof without a nonce: %d %s (DPoP-Nonce %q)", r.Status, r.Raw, nonce)
	}
	if apitest.LastSeq(t, a) != before {
		t.Fatal("a proof refused for its nonce wrote to the log")
	}
	// Made up, or altered (a well-formed nonce with another MAC, or another
	// window under the same MAC): refused the same way.
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != 24 {
		t.Fatalf("nonce %q is not 24 bytes of base64url", nonce)
	}
	otherMAC, otherWindow := slices.Clone(raw), slices.Clone(raw)
	otherMAC[20] ^= 0x40
	otherWindow[7]++ // the next window: one still accepted, were it genuine
	for name, n := range map[string]string{"made up": "bm9uY2U", "another MAC": base64.RawURLEncoding.EncodeToString(otherMAC),
		"another window": base64.RawURLEncoding.EncodeToString(otherWindow)} {
		r := keyGrantWith(ca, d.JWT(t, ca.Challenge(), true, now()), map[string]string{"DPoP": dpopNonce(ca, key, "POST", "/oauth2/token", "", n, now())})
		if r.Status != 400 || oauthReason(r) != useNonce || r.Header.Get("DPoP-Nonce") == "" {
			t.Errorf("%s nonce: %d %s", name, r.Status, r.Raw)
		}
	}

	// A request that names the client in the form but fails its client
	// authentication (a secret beside HTTP Basic of another client) must
	// still carry a nonce: the check does not depend on it.
	form := url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"}, "client_secret": {"x"}, "code": {"nonsense"}}
	r = ca.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), map[string]string{
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("foo:bar")), "DPoP": dpop(ca, key, "POST", "/oauth2/token", "", now())})
	if r.Status != 400 || oauthReason(r) != useNonce {
		t.Fatalf("nonce skipped by a failing client authentication: %d %s", r.Status, r.Raw)
	}

	// Node A's nonce signs up on node B; the answer carries a nonce too.
	r = keyGrantWith(cb, d.JWT(t, cb.Challenge(), true, now()), map[string]string{"DPoP": dpopNonce(cb, key, "POST", "/oauth2/token", "", nonce, now())})
	if r.Status != 200 || apitest.Str(r.Body, "token_type") != "DPoP" || r.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("sign-up with the nonce on node B: %d %s", r.Status, r.Raw)
	}
	at, rt := apitest.Str(r.Body, "access_token"), apitest.Str(r.Body, "refresh_token")
	// The nonce does not make a proof reusable.
	replayed := dpopNonce(ca, key, "POST", "/oauth2/token", "", nonce, now())
	if r := refreshWith(ca, rt, map[string]string{"DPoP": replayed}); r.Status != 200 {
		t.Fatalf("refresh with the nonce: %d %s", r.Status, r.Raw)
	} else {
		rt = apitest.Str(r.Body, "refresh_token")
	}
	if r := refreshWith(ca, rt, map[string]string{"DPoP": replayed}); r.Status != 400 || oauthReason(r) != "invalid_dpop_proof/DPoPReplayed" {
		t.Fatalf("replayed proof with a good nonce: %d %s", r.Status, r.Raw)
	}

	// Userinfo (a protected resource, RFC 9449 §9): 401 with a DPoP
	// challenge naming the error, and the nonce to use.
	r = userinfoWith(ca, map[string]string{"Authorization": "DPoP " + at, "DPoP": dpop(ca, key, "GET", "/oauth2/userinfo", at, now())})
	if r.Status != 401 || oauthReason(r) != useNonce || r.Header.Get("DPoP-Nonce") == "" ||
		!strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `DPoP error="use_dpop_nonce"`) {
		t.Fatalf("userinfo without a nonce: %d %s %q", r.Status, r.Raw, r.Header.Get("WWW-Authenticate"))
	}
	rsNonce := r.Header.Get("DPoP-Nonce")
	r = userinfoWith(cb, map[string]string{"Authorization": "DPoP " + at, "DPoP": dpopNonce(cb, key, "GET", "/oauth2/userinfo", at, rsNonce, now())})
	if r.Status != 200 || apitest.Str(r.Body, "sub") == "" || r.Header.Get("DPoP-Nonce") == "" {
		t.Fatalf("userinfo with the nonce on node B: %d %s", r.Status, r.Raw)
	}

	// A nonce lasts while its window or the next is current: kept across a
	// signing-key rotation on node A (the ring keeps the retired key), and
	// refused two windows on.
	if _, err := a.Service.Keys().Rotate(context.Background()); err != nil {
		t.Fatal(err)
	}
	a.Clock.Advance(tokens.DPoPNonceWindow)
	if r := refreshWith(ca, rt, map[string]string{"DPoP": dpopNonce(ca, key, "POST", "/oauth2/token", "", nonce, now())}); r.Status != 200 {
		t.Fatalf("refresh a window on, after a key rotation: %d %s", r.Status, r.Raw)
	} else {
		rt = apitest.Str(r.Body, "refresh_token")
	}
	// A nonce made with the new key on node A is good on node B at once (B
	// loads the key on the first nonce it cannot match).
	r = refreshWith(ca, rt, map[string]string{"DPoP": dpop(ca, key, "POST", "/oauth2/token", "", now())})
	newKeyNonce := r.Header.Get("DPoP-Nonce")
	if r.Status != 400 || newKeyNonce == "" || newKeyNonce == nonce {
		t.Fatalf("a nonce after the rotation: %d %s", r.Status, r.Raw)
	}
	if r := refreshWith(cb, rt, map[string]string{"DPoP": dpopNonce(cb, key, "POST", "/oauth2/token", "", newKeyNonce, now())}); r.Status != 200 {
		t.Fatalf("node B refused node A's nonce made with the new key: %d %s", r.Status, r.Raw)
	} else {
		rt = apitest.Str(r.Body, "refresh_token")
	}
	a.Clock.Advance(tokens.DPoPNonceWindow + time.Second)
	r = refreshWith(cb, rt, map[string]string{"DPoP": dpopNonce(cb, key, "POST", "/oauth2/token", "", nonce, now())})
	fresh := r.Header.Get("DPoP-Nonce")
	if r.Status != 400 || oauthReason(r) != useNonce || fresh == "" || fresh == nonce {
		t.Fatalf("a nonce two windows old: %d %s (new nonce %q)", r.Status, r.Raw, fresh)
	}
	if r := refreshWith(cb, rt, map[string]string{"DPoP": dpopNonce(cb, key, "POST", "/oauth2/token", "", fresh, now())}); r.Status != 200 {
		t.Fatalf("refresh with the new nonce (the refused one left the session alone): %d %s", r.Status, r.Raw)
	}
}

// A client that does not require nonces gets none and needs none (the
// Authgear SDKs, which do not answer use_dpop_nonce).
func TestDPoPWithoutNonces(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	c.Public = c.Base
	d, key := apitest.NewDevice(t, jose.RS256), apitest.NewDevice(t, jose.RS256)
	r := keyGrantWith(c, d.JWT(t, c.Challenge(), true, n.Clock.Now()), map[string]string{"DPoP": dpop(c, key, "POST", "/oauth2/token", "", n.Clock.Now())})
	if r.Status != 200 || r.Header.Get("DPoP-Nonce") != "" {
		t.Fatalf("sign-up: %d %s (DPoP-Nonce %q)", r.Status, r.Raw, r.Header.Get("DPoP-Nonce"))
	}
}
