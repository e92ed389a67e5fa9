package config

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Provider is an upstream identity provider (issue 19): "Continue with
// <Name>" on the hosted pages. Kind "oidc" (the default) is any OpenID
// provider: discovery from Issuer, or the endpoints given; its ID token is
// verified (signature through its JWKS, iss, aud, exp, nonce). Kind
// "oauth2" is plain OAuth 2 with a user API (GitHub). A preset fills what
// a provider always has: google, apple, microsoft, github.
//
// The client secret is never in the configuration file or the log: it is
// read from the environment variable ClientSecretEnv (default
// IDSTREAM_IDP_<ID>_CLIENT_SECRET) or the file ClientSecretFile. Apple has
// no fixed secret: each token request signs a fresh client-secret JWT
// (ES256) with the team's key (AppleKeyFile, a .p8 from Apple; or the
// environment variable IDSTREAM_IDP_<ID>_APPLE_KEY holding its PEM).
type Provider struct {
	// ID names the provider in URLs and events (lower case letters,
	// digits, _ and -); Name is what the button says.
	ID     string `yaml:"id" json:"id"`
	Name   string `yaml:"name" json:"name"`
	Preset string `yaml:"preset" json:"preset,omitempty"`
	Kind   string `yaml:"kind" json:"kind"`
	// Issuer is the OpenID issuer (discovery: Issuer +
	// /.well-known/openid-configuration). Without discovery, give
	// AuthURL, TokenURL and JWKSURL (oidc) or UserInfoURL (oauth2).
	Issuer      string `yaml:"issuer" json:"issuer,omitempty"`
	AuthURL     string `yaml:"auth_url" json:"auth_url,omitempty"`
	TokenURL    string `yaml:"token_url" json:"token_url,omitempty"`
	JWKSURL     string `yaml:"jwks_url" json:"jwks_url,omitempty"`
	UserInfoURL string `yaml:"userinfo_url" json:"userinfo_url,omitempty"`
	// EmailsURL (oauth2, GitHub's /user/emails) gives the verified primary
	// address when the user API shows none.
	EmailsURL string   `yaml:"emails_url" json:"emails_url,omitempty"`
	ClientID  string   `yaml:"client_id" json:"client_id"`
	Scopes    []string `yaml:"scopes" json:"scopes"`
	// ResponseMode is "query" (default) or "form_post" (Apple, when it is
	// asked for the email scope).
	ResponseMode string `yaml:"response_mode" json:"response_mode"`
	// Claims maps the provider's claims (ID token, or the user API of
	// oauth2) to ours: subject (default sub; GitHub id), email (email),
	// email_verified (email_verified).
	Claims struct {
		Subject       string `yaml:"subject" json:"subject"`
		Email         string `yaml:"email" json:"email"`
		EmailVerified string `yaml:"email_verified" json:"email_verified"`
	} `yaml:"claims" json:"claims"`
	// Clients are the client applications that offer the provider (none
	// listed: none does).
	Clients []string `yaml:"clients" json:"clients"`
	// Tenant is Microsoft's directory (a tenant id, or common,
	// organizations, consumers).
	Tenant string `yaml:"tenant" json:"tenant,omitempty"`
	// Apple: the team id, the key id and the key (a .p8 file).
	AppleTeamID  string `yaml:"apple_team_id" json:"apple_team_id,omitempty"`
	AppleKeyID   string `yaml:"apple_key_id" json:"apple_key_id,omitempty"`
	AppleKeyFile string `yaml:"apple_key_file" json:"-"`

	ClientSecretEnv  string `yaml:"client_secret_env" json:"client_secret_env,omitempty"`
	ClientSecretFile string `yaml:"client_secret_file" json:"client_secret_file,omitempty"`

	secret   string
	appleKey *ecdsa.PrivateKey
}

// Provider kinds.
const (
	ProviderOIDC   = "oidc"
	ProviderOAuth2 = "oauth2"
)

// ClientSecret is the provider's client secret, read from the environment
// or its file when the configuration was loaded ("" for Apple and for a
// provider without one).
func (p Provider) ClientSecret() string { return p.secret }

// AppleKey is the team key that signs Apple's client-secret JWTs.
func (p Provider) AppleKey() *ecdsa.PrivateKey { return p.appleKey }

// HasSecret reports whether a secret (or Apple key) was configured; the
// settings and the portal show this, masked, never the secret.
func (p Provider) HasSecret() bool { return p.secret != "" || p.appleKey != nil }

// Allows reports whether the client application offers the provider.
func (p Provider) Allows(clientID string) bool { return slices.Contains(p.Clients, clientID) }

// WithSecret is the provider with a secret (tests).
func (p Provider) WithSecret(s string) Provider { p.secret = s; return p }

// MicrosoftMultiTenant reports a Microsoft tenant whose ID tokens carry
// each user's own directory as issuer (common, organizations).
func (p Provider) MicrosoftMultiTenant() bool {
	return p.Preset == "microsoft" && (p.Tenant == "common" || p.Tenant == "organizations")
}

var providerID = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)

// applyPreset fills what a preset provider always has.
func (p *Provider) applyPreset() error {
	def := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	switch p.Preset {
	case "":
	case "google":
		def(&p.Name, "Google")
		def(&p.Issuer, "https://accounts.google.com")
	case "apple":
		def(&p.Name, "Apple")
		def(&p.Issuer, "https://appleid.apple.com")
		// Apple posts the answer back when it is asked for the email.
		def(&p.ResponseMode, "form_post")
		if p.Scopes == nil {
			p.Scopes = []string{"openid", "email"}
		}
	case "microsoft":
		def(&p.Name, "Microsoft")
		def(&p.Tenant, "common")
		def(&p.Issuer, "https://login.microsoftonline.com/"+p.Tenant+"/v2.0")
	case "github":
		def(&p.Name, "GitHub")
		def(&p.Kind, ProviderOAuth2)
		def(&p.AuthURL, "https://github.com/login/oauth/authorize")
		def(&p.TokenURL, "https://github.com/login/oauth/access_token")
		def(&p.UserInfoURL, "https://api.github.com/user")
		def(&p.EmailsURL, "https://api.github.com/user/emails")
		def(&p.Claims.Subject, "id")
		if p.Scopes == nil {
			p.Scopes = []string{"read:user", "user:email"}
		}
	default:
		return fmt.Errorf("preset %q is not google, apple, microsoft or github", p.Preset)
	}
	def(&p.Kind, ProviderOIDC)
	def(&p.Name, p.ID)
	def(&p.ResponseMode, "query")
	def(&p.Claims.Subject, "sub")
	def(&p.Claims.Email, "email")
	def(&p.Claims.EmailVerified, "email_verified")
	if p.Scopes == nil {
		p.Scopes = []string{"openid", "email", "profile"}
	}
	return nil
}

// PrepareProviders applies presets to the providers, reads their secrets
// (getenv: the environment) and checks them; Load calls it, tests that set
// Providers after loading call it themselves.
func (c *Config) PrepareProviders(getenv func(string) string) error {
	var errs []error
	seen := map[string]bool{}
	for i := range c.Providers {
		p := &c.Providers[i]
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("providers[%d] (%s): %s", i, p.ID, fmt.Sprintf(format, a...)))
		}
		if !providerID.MatchString(p.ID) {
			bad("id must be lower case letters, digits, _ and - (at most 32)")
			continue
		}
		if seen[p.ID] {
			bad("id is listed twice")
		}
		seen[p.ID] = true
		if err := p.applyPreset(); err != nil {
			bad("%v", err)
			continue
		}
		env := "IDSTREAM_IDP_" + strings.ToUpper(strings.ReplaceAll(p.ID, "-", "_"))
		if p.Preset == "apple" {
			pemText := []byte(getenv(env + "_APPLE_KEY"))
			if p.AppleKeyFile != "" {
				raw, err := os.ReadFile(p.AppleKeyFile)
				if err != nil {
					bad("apple_key_file: %v", err)
					continue
				}
				pemText = raw
			}
			if p.AppleTeamID == "" || p.AppleKeyID == "" || len(pemText) == 0 {
				bad("apple needs apple_team_id, apple_key_id and the key (apple_key_file or %s_APPLE_KEY)", env)
				continue
			}
			k, err := parseAppleKey(pemText)
			if err != nil {
				bad("apple key: %v", err)
				continue
			}
			p.appleKey = k
		} else {
			switch {
			case p.ClientSecretFile != "":
				raw, err := os.ReadFile(p.ClientSecretFile)
				if err != nil {
					bad("client_secret_file: %v", err)
					continue
				}
				p.secret = strings.TrimSpace(string(raw))
			default:
				p.ClientSecretEnv = cmpOr(p.ClientSecretEnv, env+"_CLIENT_SECRET")
				p.secret = getenv(p.ClientSecretEnv)
			}
		}
		if p.ClientID == "" {
			bad("client_id is required")
		}
		switch p.Kind {
		case ProviderOIDC:
			if p.Issuer == "" && (p.AuthURL == "" || p.TokenURL == "" || p.JWKSURL == "") {
				bad("an oidc provider needs issuer (discovery), or auth_url, token_url and jwks_url")
			}
			if !slices.Contains(p.Scopes, "openid") {
				bad("an oidc provider's scopes include openid")
			}
		case ProviderOAuth2:
			if p.AuthURL == "" || p.TokenURL == "" || p.UserInfoURL == "" {
				bad("an oauth2 provider needs auth_url, token_url and userinfo_url")
			}
		default:
			bad("kind must be oidc or oauth2")
		}
		if p.ResponseMode != "query" && p.ResponseMode != "form_post" {
			bad("response_mode must be query or form_post")
		}
		for _, u := range []string{p.Issuer, p.AuthURL, p.TokenURL, p.JWKSURL, p.UserInfoURL, p.EmailsURL} {
			pu, err := url.Parse(u)
			switch {
			case u == "":
			case err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "":
				bad("%q is not an absolute http(s) URL", u)
			case !SecureURL(u):
				// The client secret and every authorization code go to
				// the token URL; the rest carry tokens or what they check.
				bad("%q must be https (plain http only to a loopback address)", u)
			}
		}
		for _, id := range p.Clients {
			if _, ok := c.Client(id); !ok && id != DevClientID {
				bad("clients: %q is not a configured client", id)
			}
		}
	}
	return errors.Join(errs...)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func parseAppleKey(pemText []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(pemText)
	if b == nil {
		return nil, errors.New("not PEM")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an EC (P-256) key")
	}
	return ek, nil
}

// Provider returns the upstream identity provider with the id.
func (c *Config) Provider(id string) (Provider, bool) {
	for _, p := range c.Providers {
		if p.ID == id {
			return p, true
		}
	}
	return Provider{}, false
}
