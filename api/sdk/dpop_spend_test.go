package sdk_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
)

// A DPoP proof's jti is spent by a grant given, not by a request whose
// challenge or refresh token is no good: such a request stores nothing in
// the proofs bucket (which anybody could otherwise fill at the rate the
// token endpoint answers), and the same proof then works once with a good
// one. A proof spent by a grant is still refused the second time, on the
// key-pair grant and on refresh, and a refused replay rotates nothing.
// (The code exchange: TestDPoPBindsTheAuthorizationCode.)
func TestDPoPProofSpentByTheGrantGiven(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	now := n.Clock.Now
	d, key := apitest.NewDevice(t, jose.RS256), apitest.NewDevice(t, jose.ES256)
	proofs := func() uint64 { return proofsKept(t, n) }

	// The key-pair grant.
	p := dpop(c, key, "POST", "/oauth2/token", "", now())
	if r := keyGrantWith(c, d.JWT(t, "no-such-challenge-0123456789", true, now()), map[string]string{"DPoP": p}); r.Reason() != "InvalidChallenge" {
		t.Fatalf("a proof with an unknown challenge: %d %s", r.Status, r.Raw)
	}
	if got := proofs(); got != 0 {
		t.Fatalf("%d proofs stored for a request with no grant", got)
	}
	r := keyGrantWith(c, d.JWT(t, c.Challenge(), true, now()), map[string]string{"DPoP": p})
	if r.Status != 200 || apitest.Str(r.Body, "token_type") != "DPoP" {
		t.Fatalf("the same proof with a good challenge: %d %s", r.Status, r.Raw)
	}
	if r := keyGrantWith(c, d.JWT(t, c.Challenge(), false, now()), map[string]string{"DPoP": p}); oauthReason(r) != "invalid_dpop_proof/DPoPReplayed" {
		t.Fatalf("the proof again: %d %s", r.Status, r.Raw)
	}

	// Refresh.
	rt := apitest.Str(r.Body, "refresh_token")
	p = dpop(c, key, "POST", "/oauth2/token", "", now())
	if r := refreshWith(c, rt+"x", map[string]string{"DPoP": p}); r.Status == 200 || r.Reason() != "InvalidToken" {
		t.Fatalf("a proof with a bad refresh token: %d %s", r.Status, r.Raw)
	}
	stored := proofs()
	if stored != 1 {
		t.Fatalf("%d proofs stored, want the key-pair grant's 1", stored)
	}
	r = refreshWith(c, rt, map[string]string{"DPoP": p})
	if r.Status != 200 {
		t.Fatalf("the same proof with the refresh token: %d %s", r.Status, r.Raw)
	}
	rt2 := apitest.Str(r.Body, "refresh_token")
	if r := refreshWith(c, rt2, map[string]string{"DPoP": p}); oauthReason(r) != "invalid_dpop_proof/DPoPReplayed" {
		t.Fatalf("the proof again: %d %s", r.Status, r.Raw)
	}
	// The replay rotated nothing: rt2 is still the current token.
	if r := refreshWith(c, rt2, map[string]string{"DPoP": dpop(c, key, "POST", "/oauth2/token", "", now())}); r.Status != 200 {
		t.Fatalf("the token the replay was sent with: %d %s", r.Status, r.Raw)
	}
}

// A grant refused although its credential may be good (here: the user is
// disabled) spends its proof: the request replayed later, on this node or
// another, is refused for the proof whatever the user's state is by then.
func TestDPoPProofSpentByARefusalForTheUser(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	now := n.Clock.Now
	d, key := apitest.NewDevice(t, jose.RS256), apitest.NewDevice(t, jose.ES256)
	r := keyGrantWith(c, d.JWT(t, c.Challenge(), true, now()), map[string]string{"DPoP": dpop(c, key, "POST", "/oauth2/token", "", now())})
	if r.Status != 200 {
		t.Fatalf("sign-in: %d %s", r.Status, r.Raw)
	}
	sub := apitest.Claims(t, apitest.Str(r.Body, "access_token"))["sub"].(string)
	if _, err := n.Service.DisableUser(context.Background(), sub, "test", nil, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	p := dpop(c, key, "POST", "/oauth2/token", "", now())
	if r := keyGrantWith(c, d.JWT(t, c.Challenge(), false, now()), map[string]string{"DPoP": p}); r.Status == 200 || r.Reason() == "DPoPReplayed" {
		t.Fatalf("sign-in of the disabled guest: %d %s", r.Status, r.Raw)
	}
	if _, err := n.Service.EnableUser(context.Background(), sub, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	if r := keyGrantWith(c, d.JWT(t, c.Challenge(), false, now()), map[string]string{"DPoP": p}); oauthReason(r) != "invalid_dpop_proof/DPoPReplayed" {
		t.Fatalf("the refused request's proof again: %d %s", r.Status, r.Raw)
	}
	if r := keyGrantWith(c, d.JWT(t, c.Challenge(), false, now()), map[string]string{"DPoP": dpop(c, key, "POST", "/oauth2/token", "", now())}); r.Status != 200 {
		t.Fatalf("sign-in with a new proof after the enable: %d %s", r.Status, r.Raw)
	}
}

// Requests anybody can send with a self-made proof store nothing in the
// proofs bucket, whatever they are refused for: an unknown code with
// malformed device info, the key-pair grant naming a confidential client,
// made-up refresh tokens of a known session that is bound to another key
// or revoked (a session id is a refresh token's prefix).
func TestDPoPProofsOfGarbageRequestsAreNotKept(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		cl := c.Clients[0]
		cl.ClientID, cl.Name, cl.SessionType = "server-app", "server-app", domain.SessionTypeRefreshToken
		cl.AllowedOrigins, cl.TokenEndpointAuthMethod = nil, domain.AuthMethodBasic
		c.Clients = append(c.Clients, cl)
	}})
	c := apitest.NewClient(t, n)
	now := n.Clock.Now
	proofs := func() uint64 { return proofsKept(t, n) }
	d, bound := apitest.NewDevice(t, jose.ES256), apitest.NewDevice(t, jose.ES256)
	r := keyGrantWith(c, d.JWT(t, c.Challenge(), true, now()), map[string]string{"DPoP": dpop(c, bound, "POST", "/oauth2/token", "", now())})
	if r.Status != 200 {
		t.Fatalf("sign-in: %d %s", r.Status, r.Raw)
	}
	boundSID, _, _ := strings.Cut(apitest.Str(r.Body, "refresh_token"), ".")
	_, rt := apitest.Signup(t, c)
	revokedSID, _, _ := strings.Cut(rt, ".")
	if r := c.PostForm("/oauth2/revoke", url.Values{"token": {rt}, "client_id": {"idstream-dev"}}); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	before := proofs()
	madeUp := base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, req := range []struct {
		name string
		form url.Values
		want string
	}{
		{"unknown code, bad device info", url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"}, "code": {"no-such-code"},
			"redirect_uri": {"http://localhost:3000/after"}, "code_verifier": {"v"}, "x_device_info": {"!!!"}}, "InvalidDeviceInfo"},
		{"key-pair grant of a confidential client", url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"},
			"client_id": {"server-app"}, "jwt": {"garbage"}}, "ConfidentialClient"},
		{"made-up token of a bound session", url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"},
			"refresh_token": {boundSID + "." + madeUp}}, "DPoPKeyMismatch"},
		{"made-up token of a revoked session", url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"},
			"refresh_token": {revokedSID + "." + madeUp}}, "SessionRevoked"},
	} {
		for range 3 {
			r := c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", req.form.Encode(),
				map[string]string{"DPoP": dpop(c, apitest.NewDevice(t, jose.ES256), "POST", "/oauth2/token", "", now())})
			if r.Reason() != req.want {
				t.Fatalf("%s: %d %s, want %s", req.name, r.Status, r.Raw, req.want)
			}
		}
		if got := proofs() - before; got != 0 {
			t.Fatalf("%s: %d proofs kept", req.name, got)
		}
	}
}

// proofsKept is how many DPoP jti the node's proofs bucket holds.
func proofsKept(t *testing.T, n *testenv.Node) uint64 {
	t.Helper()
	s, err := n.Store.JetStream().Stream(context.Background(), "KV_idstream_dpop_jti")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
