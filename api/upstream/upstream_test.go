package upstream

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idstream/idstream/config"
)

func appleProvider(t *testing.T) (config.Provider, *ecdsa.PrivateKey) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	file := filepath.Join(t.TempDir(), "AuthKey.p8")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadFrom(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	// Endpoints given, so nothing is fetched.
	c.Providers = []config.Provider{{ID: "apple", Preset: "apple", ClientID: "com.example.web", AppleTeamID: "TEAM123", AppleKeyID: "KEY456",
		AppleKeyFile: file, AuthURL: "https://appleid.apple.com/auth/authorize", TokenURL: "https://appleid.apple.com/auth/token",
		JWKSURL: "https://appleid.apple.com/auth/keys", Clients: []string{config.DevClientID}}}
	if err := c.PrepareProviders(func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	return c.Providers[0], k
}

// TestAppleClientSecret: Apple's client secret is an ES256 JWT by the
// team's key: kid the key id, iss the team, sub the client, aud Apple,
// minutes long.
func TestAppleClientSecret(t *testing.T) {
	p, k := appleProvider(t)
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	raw, err := appleClientSecret(p, now)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	var cl jwt.Claims
	if err := tok.Claims(&k.PublicKey, &cl); err != nil {
		t.Fatalf("signature: %v", err)
	}
	if tok.Headers[0].KeyID != "KEY456" || cl.Issuer != "TEAM123" || cl.Subject != "com.example.web" ||
		!cl.Audience.Contains("https://appleid.apple.com") || cl.Expiry.Time().Sub(now) != 5*time.Minute {
		t.Fatalf("claims: %+v, kid %q", cl, tok.Headers[0].KeyID)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err := tok.Claims(&other.PublicKey, &cl); err == nil {
		t.Fatal("verified with another key")
	}
}

// TestAuthURL: the authorization request carries state, nonce, an S256
// challenge of the verifier (never the verifier) and Apple's form_post.
func TestAuthURL(t *testing.T) {
	p, _ := appleProvider(t)
	r := New([]config.Provider{p}, time.Now)
	raw, err := r.AuthURL(context.Background(), p, Request{RedirectURI: "https://id.example/oauth2/upstream/callback", State: "st", Nonce: "nn",
		Verifier: "verifier-verifier-verifier-verifier-verifier-1"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(raw)
	q := u.Query()
	if u.Host != "appleid.apple.com" || q.Get("state") != "st" || q.Get("nonce") != "nn" || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Has("code_verifier") || q.Get("response_mode") != "form_post" || q.Get("client_id") != "com.example.web" ||
		q.Get("scope") != "openid email" || q.Get("redirect_uri") != "https://id.example/oauth2/upstream/callback" {
		t.Fatalf("authorization URL: %s", raw)
	}
	if _, err := r.Provider("apple", "another-client"); err != ErrUnknownProvider {
		t.Fatalf("a client the provider does not list: %v", err)
	}
}

func TestClaimBool(t *testing.T) {
	for v, want := range map[any][2]bool{true: {true, true}, false: {false, true}, "true": {true, true}, "false": {false, true}, nil: {false, false}, "maybe": {false, false}} {
		if b, ok := claimBool(v); b != want[0] || ok != want[1] {
			t.Errorf("claimBool(%v) = %v %v", v, b, ok)
		}
	}
}

// TestDiscoveryNamesOnlySecureEndpoints: a discovery document whose
// endpoints are plain http to another host (the client secret and the
// codes would cross the network in clear) is refused; and a redirect from
// https to plain http is not followed.
func TestDiscoveryNamesOnlySecureEndpoints(t *testing.T) {
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "authorization_endpoint": issuer + "/authorize",
			"token_endpoint": "http://sso.example.com/token", "jwks_uri": issuer + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	p := config.Provider{ID: "corp", Kind: config.ProviderOIDC, ClientID: "x", Issuer: issuer, Scopes: []string{"openid"}, Clients: []string{config.DevClientID}}
	_, err := New([]config.Provider{p}, time.Now).AuthURL(context.Background(), p, Request{RedirectURI: "https://id.example/cb", State: "s", Nonce: "n",
		Verifier: "verifier-verifier-verifier-verifier-verifier-1"})
	if err == nil || !strings.Contains(err.Error(), "http://sso.example.com/token") {
		t.Fatalf("a discovery naming a plain http token endpoint: %v", err)
	}
	for u, want := range map[string]bool{"https://a.example/x": true, "http://127.0.0.1:9/x": true, "http://[::1]:9/x": true, "http://localhost/x": true,
		"http://a.example/x": false, "ftp://a.example/x": false, "https:///x": false} {
		if config.SecureURL(u) != want {
			t.Errorf("SecureURL(%q) = %v", u, !want)
		}
	}
	https, _ := http.NewRequest(http.MethodGet, "https://a.example/", nil)
	plain, _ := http.NewRequest(http.MethodGet, "http://a.example/", nil)
	if noDowngrade(plain, []*http.Request{https}) == nil || noDowngrade(https, []*http.Request{https}) != nil || noDowngrade(plain, []*http.Request{plain}) != nil {
		t.Fatal("redirects: a downgrade followed, or a same-scheme one refused")
	}
}
