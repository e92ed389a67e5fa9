package config_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/idstream/idstream/config"
)

func devConfig(t *testing.T) *config.Config {
	t.Helper()
	c, err := config.LoadFrom(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProviderPresets: the presets fill what each provider always has, the
// secret comes from the environment (default name) or a file, and Apple's
// team key is read for its client-secret JWTs.
func TestProviderPresets(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "ms")
	if err := os.WriteFile(secretFile, []byte("ms-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	keyFile := filepath.Join(dir, "AuthKey.p8")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	c := devConfig(t)
	c.Providers = []config.Provider{
		{ID: "google", Preset: "google", ClientID: "g", Clients: []string{config.DevClientID}},
		{ID: "apple", Preset: "apple", ClientID: "com.example.web", AppleTeamID: "TEAM", AppleKeyID: "KEY", AppleKeyFile: keyFile},
		{ID: "ms", Preset: "microsoft", ClientID: "m", ClientSecretFile: secretFile},
		{ID: "gh", Preset: "github", ClientID: "h", ClientSecretEnv: "GH_SECRET"},
	}
	env := map[string]string{"IDSTREAM_IDP_GOOGLE_CLIENT_SECRET": "g-secret", "GH_SECRET": "h-secret"}
	if err := c.PrepareProviders(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	g, _ := c.Provider("google")
	if g.Name != "Google" || g.Issuer != "https://accounts.google.com" || g.Kind != config.ProviderOIDC || g.ClientSecret() != "g-secret" ||
		!g.Allows(config.DevClientID) || g.Claims.Subject != "sub" || g.ResponseMode != "query" {
		t.Errorf("google: %+v", g)
	}
	a, _ := c.Provider("apple")
	if a.ResponseMode != "form_post" || a.Issuer != "https://appleid.apple.com" || a.AppleKey() == nil || !a.HasSecret() || a.ClientSecret() != "" {
		t.Errorf("apple: %+v", a)
	}
	m, _ := c.Provider("ms")
	if m.Issuer != "https://login.microsoftonline.com/common/v2.0" || !m.MicrosoftMultiTenant() || m.ClientSecret() != "ms-secret" {
		t.Errorf("microsoft: %+v", m)
	}
	h, _ := c.Provider("gh")
	if h.Kind != config.ProviderOAuth2 || h.Claims.Subject != "id" || h.UserInfoURL != "https://api.github.com/user" || h.ClientSecret() != "h-secret" {
		t.Errorf("github: %+v", h)
	}
}

// TestProviderConfigRefused: every mistake is named.
func TestProviderConfigRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		p    config.Provider
		want string
	}{
		"bad id":          {config.Provider{ID: "Google!", ClientID: "x", Issuer: "https://a.example"}, "id must be"},
		"no client id":    {config.Provider{ID: "a", Issuer: "https://a.example"}, "client_id is required"},
		"no endpoints":    {config.Provider{ID: "a", ClientID: "x"}, "needs issuer"},
		"unknown preset":  {config.Provider{ID: "a", ClientID: "x", Preset: "myspace"}, "preset"},
		"apple no key":    {config.Provider{ID: "a", ClientID: "x", Preset: "apple"}, "apple needs"},
		"unknown client":  {config.Provider{ID: "a", ClientID: "x", Issuer: "https://a.example", Clients: []string{"nope"}}, "not a configured client"},
		"no openid scope": {config.Provider{ID: "a", ClientID: "x", Issuer: "https://a.example", Scopes: []string{"email"}}, "openid"},
		"bad url":         {config.Provider{ID: "a", ClientID: "x", Issuer: "ftp://a.example"}, "not an absolute http(s) URL"},
		"bad mode":        {config.Provider{ID: "a", ClientID: "x", Issuer: "https://a.example", ResponseMode: "fragment"}, "response_mode"},
		"plain http":      {config.Provider{ID: "a", ClientID: "x", Issuer: "http://sso.example.com"}, "must be https"},
		"plain http token url": {config.Provider{ID: "a", ClientID: "x", Kind: config.ProviderOAuth2, AuthURL: "https://sso.example.com/authorize",
			TokenURL: "http://sso.example.com/token", UserInfoURL: "https://sso.example.com/userinfo"}, "must be https"},
	} {
		c := devConfig(t)
		c.Providers = []config.Provider{tc.p}
		err := c.PrepareProviders(func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	// Plain http to a provider on loopback (a local test provider) is fine.
	for _, host := range []string{"127.0.0.1:9000", "[::1]:9000", "localhost:9000"} {
		c := devConfig(t)
		c.Providers = []config.Provider{{ID: "a", ClientID: "x", Kind: config.ProviderOAuth2, AuthURL: "http://" + host + "/authorize",
			TokenURL: "http://" + host + "/token", UserInfoURL: "http://" + host + "/userinfo"}}
		if err := c.PrepareProviders(func(string) string { return "" }); err != nil {
			t.Errorf("a provider on %s: %v", host, err)
		}
	}
}
