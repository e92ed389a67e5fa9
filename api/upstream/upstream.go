// Package upstream signs people in with upstream identity providers (issue
// 19): the relying-party side of "Continue with Google". An OpenID
// provider's answer is verified with coreos/go-oidc (the ID token's
// signature through the provider's JWKS, iss, aud, exp, and the nonce this
// package sent); the authorization request carries state, nonce and a PKCE
// challenge (golang.org/x/oauth2). A plain OAuth 2 provider (GitHub) is
// asked who the person is through its user API with the access token.
// Nothing here is written anywhere: the identity it returns is the
// provider's subject and, if the provider vouched for it, an email address.
package upstream

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"

	"github.com/idstream/idstream/config"
)

// Errors of an upstream sign-in.
var (
	ErrUnknownProvider = errors.New("no such identity provider for this application")
	// ErrUnavailable: the provider did not answer (or not sensibly).
	ErrUnavailable = errors.New("the identity provider is not answering")
	// ErrRejected: the provider's answer did not verify (signature,
	// issuer, audience, expiry, nonce) or it refused the code.
	ErrRejected = errors.New("the identity provider's answer could not be verified")
	// ErrEmailUnverified: the provider says it has not verified the email.
	ErrEmailUnverified = errors.New("the identity provider has not verified the email address")
	// ErrDenied: the person cancelled, or the provider refused, at the
	// provider's pages.
	ErrDenied = errors.New("the sign-in at the identity provider was cancelled or refused")
)

// Identity is who the provider says the person is.
type Identity struct {
	Provider string
	Subject  string
	// Email is set only when the provider vouched for it.
	Email string
}

// Request is what an authorization request to the provider is bound to:
// the state, the nonce and the PKCE verifier, all kept by the caller.
type Request struct {
	RedirectURI, State, Nonce, Verifier string
}

// Registry holds the configured providers and what was discovered of them.
type Registry struct {
	providers []config.Provider
	http      *http.Client
	now       func() time.Time

	mu       sync.Mutex
	resolved map[string]*resolved
}

type resolved struct {
	endpoint oauth2.Endpoint
	verifier *oidc.IDTokenVerifier
}

// New builds a registry; now is the clock ID tokens' expiry is checked
// against.
func New(providers []config.Provider, now func() time.Time) *Registry {
	return &Registry{providers: providers, now: now, resolved: map[string]*resolved{},
		http: &http.Client{Timeout: 10 * time.Second, CheckRedirect: noDowngrade}}
}

// For lists the providers the client application offers.
func (r *Registry) For(clientID string) []config.Provider {
	var out []config.Provider
	for _, p := range r.providers {
		if p.Allows(clientID) {
			out = append(out, p)
		}
	}
	return out
}

// Provider returns the provider if the client application offers it.
func (r *Registry) Provider(id, clientID string) (config.Provider, error) {
	for _, p := range r.providers {
		if p.ID == id && p.Allows(clientID) {
			return p, nil
		}
	}
	return config.Provider{}, ErrUnknownProvider
}

func (r *Registry) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(context.WithValue(ctx, oauth2.HTTPClient, r.http), r.http)
}

// resolve finds the provider's endpoints and verifier: by discovery (once
// it succeeded, kept) or from the configuration.
func (r *Registry) resolve(ctx context.Context, p config.Provider) (*resolved, error) {
	r.mu.Lock()
	res := r.resolved[p.ID]
	r.mu.Unlock()
	if res != nil {
		return res, nil
	}
	ctx = r.ctx(ctx)
	res = &resolved{endpoint: oauth2.Endpoint{AuthURL: p.AuthURL, TokenURL: p.TokenURL, AuthStyle: oauth2.AuthStyleInParams}}
	vc := &oidc.Config{ClientID: p.ClientID, Now: r.now, SkipIssuerCheck: p.MicrosoftMultiTenant()}
	if p.JWKSURL != "" {
		// Without discovery, the algorithms a provider signs with are
		// not known: the asymmetric ones go-oidc verifies (never none or
		// HMAC).
		vc.SupportedSigningAlgs = []string{oidc.RS256, oidc.RS384, oidc.RS512, oidc.ES256, oidc.ES384, oidc.ES512, oidc.PS256, oidc.PS384, oidc.PS512, oidc.EdDSA}
	}
	if p.Kind == config.ProviderOIDC {
		if p.AuthURL == "" || p.TokenURL == "" || p.JWKSURL == "" {
			dctx := ctx
			if p.MicrosoftMultiTenant() {
				// Its discovery document names a template issuer; each
				// token's issuer is the user's directory, checked below.
				dctx = oidc.InsecureIssuerURLContext(ctx, p.Issuer)
			}
			op, err := oidc.NewProvider(dctx, p.Issuer)
			if err != nil {
				return nil, fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
			}
			ep := op.Endpoint()
			var doc struct {
				JWKSURI  string `json:"jwks_uri"`
				UserInfo string `json:"userinfo_endpoint"`
			}
			if err := op.Claims(&doc); err != nil {
				return nil, fmt.Errorf("%w: discovery: %v", ErrUnavailable, err)
			}
			// What discovery names gets the client secret, the codes and
			// the tokens, as what the file names does: https only.
			for _, u := range []string{ep.AuthURL, ep.TokenURL, doc.JWKSURI, doc.UserInfo} {
				if u != "" && !config.SecureURL(u) {
					return nil, fmt.Errorf("%w: discovery names %q: not https (plain http only to a loopback address)", ErrUnavailable, u)
				}
			}
			if res.endpoint.AuthURL == "" {
				res.endpoint.AuthURL = ep.AuthURL
			}
			if res.endpoint.TokenURL == "" {
				res.endpoint.TokenURL = ep.TokenURL
			}
			res.verifier = op.Verifier(vc)
			if p.JWKSURL != "" {
				res.verifier = oidc.NewVerifier(p.Issuer, oidc.NewRemoteKeySet(ctx, p.JWKSURL), vc)
			}
		} else {
			res.verifier = oidc.NewVerifier(p.Issuer, oidc.NewRemoteKeySet(ctx, p.JWKSURL), vc)
		}
	}
	r.mu.Lock()
	r.resolved[p.ID] = res
	r.mu.Unlock()
	return res, nil
}

// noDowngrade follows a provider's redirects (at most 10), never from
// https to plain http.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("upstream: stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("upstream: a redirect from https to plain http refused")
	}
	return nil
}

func (r *Registry) oauth2Config(p config.Provider, res *resolved, redirectURI string) (*oauth2.Config, error) {
	c := &oauth2.Config{ClientID: p.ClientID, ClientSecret: p.ClientSecret(), Endpoint: res.endpoint, RedirectURL: redirectURI, Scopes: p.Scopes}
	if k := p.AppleKey(); k != nil {
		s, err := appleClientSecret(p, r.now())
		if err != nil {
			return nil, err
		}
		c.ClientSecret = s
	}
	return c, nil
}

// appleClientSecret is Apple's client secret: a JWT (ES256) by the team's
// key, for the service id, good for a few minutes.
func appleClientSecret(p config.Provider, now time.Time) (string, error) {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: p.AppleKey()},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", p.AppleKeyID))
	if err != nil {
		return "", err
	}
	return jwt.Signed(sig).Claims(jwt.Claims{Issuer: p.AppleTeamID, Subject: p.ClientID, Audience: jwt.Audience{"https://appleid.apple.com"},
		IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(5 * time.Minute))}).Serialize()
}

// AuthURL is where to send the browser: the provider's authorization
// endpoint with the client id, scopes, state, nonce (OpenID), the PKCE
// challenge (S256) and the response mode.
func (r *Registry) AuthURL(ctx context.Context, p config.Provider, req Request) (string, error) {
	res, err := r.resolve(ctx, p)
	if err != nil {
		return "", err
	}
	c, err := r.oauth2Config(p, res, req.RedirectURI)
	if err != nil {
		return "", err
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(req.Verifier)}
	if p.Kind == config.ProviderOIDC {
		opts = append(opts, oidc.Nonce(req.Nonce))
	}
	if p.ResponseMode == "form_post" {
		opts = append(opts, oauth2.SetAuthURLParam("response_mode", "form_post"))
	}
	return c.AuthCodeURL(req.State, opts...), nil
}

// Complete exchanges the provider's code (with the PKCE verifier) and
// finds out who signed in: the ID token verified (OpenID) or the user API
// asked (OAuth 2).
func (r *Registry) Complete(ctx context.Context, p config.Provider, req Request, code string) (Identity, error) {
	res, err := r.resolve(ctx, p)
	if err != nil {
		return Identity{}, err
	}
	c, err := r.oauth2Config(p, res, req.RedirectURI)
	if err != nil {
		return Identity{}, err
	}
	hctx := r.ctx(ctx)
	tok, err := c.Exchange(hctx, code, oauth2.VerifierOption(req.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return Identity{}, fmt.Errorf("%w: token endpoint: %s", ErrRejected, re.ErrorCode)
		}
		return Identity{}, fmt.Errorf("%w: token endpoint: %v", ErrUnavailable, redactErr(err))
	}
	var claims map[string]any
	if p.Kind == config.ProviderOIDC {
		raw, _ := tok.Extra("id_token").(string)
		if raw == "" {
			return Identity{}, fmt.Errorf("%w: no id_token in the token response", ErrRejected)
		}
		idt, err := res.verifier.Verify(hctx, raw)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) {
				return Identity{}, fmt.Errorf("%w: keys: %v", ErrUnavailable, err)
			}
			return Identity{}, fmt.Errorf("%w: id_token: %v", ErrRejected, err)
		}
		if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(req.Nonce)) != 1 || req.Nonce == "" {
			return Identity{}, fmt.Errorf("%w: id_token: nonce does not match", ErrRejected)
		}
		if err := idt.Claims(&claims); err != nil {
			return Identity{}, fmt.Errorf("%w: id_token claims: %v", ErrRejected, err)
		}
		if p.MicrosoftMultiTenant() {
			tid, _ := claims["tid"].(string)
			if tid == "" || idt.Issuer != "https://login.microsoftonline.com/"+tid+"/v2.0" {
				return Identity{}, fmt.Errorf("%w: id_token: issuer is not its tenant's", ErrRejected)
			}
		}
	} else {
		if claims, err = r.getJSON(hctx, c, tok, p.UserInfoURL); err != nil {
			return Identity{}, err
		}
	}
	id := Identity{Provider: p.ID, Subject: claimString(claims[p.Claims.Subject])}
	if id.Subject == "" || len(id.Subject) > 255 {
		return Identity{}, fmt.Errorf("%w: no usable %s claim", ErrRejected, p.Claims.Subject)
	}
	email := claimString(claims[p.Claims.Email])
	verified, said := claimBool(claims[p.Claims.EmailVerified])
	if email != "" && said && !verified {
		return Identity{}, ErrEmailUnverified
	}
	if email != "" && verified && len(email) <= 320 {
		id.Email = email
	}
	if p.Kind == config.ProviderOAuth2 && p.EmailsURL != "" {
		id.Email = r.verifiedPrimary(hctx, c, tok, p.EmailsURL)
	}
	return id, nil
}

// verifiedPrimary is GitHub's verified primary address, if any.
func (r *Registry) verifiedPrimary(ctx context.Context, c *oauth2.Config, tok *oauth2.Token, url string) string {
	resp, err := c.Client(ctx, tok).Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var emails []struct {
		Email    string `json:"email"`
		Primary  bool   `json:"primary"`
		Verified bool   `json:"verified"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&emails) != nil {
		return ""
	}
	for _, e := range emails {
		if e.Primary && e.Verified && len(e.Email) <= 320 {
			return e.Email
		}
	}
	return ""
}

func (r *Registry) getJSON(ctx context.Context, c *oauth2.Config, tok *oauth2.Token, url string) (map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Client(ctx, tok).Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: user API: %v", ErrUnavailable, redactErr(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 500 {
		return nil, fmt.Errorf("%w: user API answered %d", ErrUnavailable, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: user API answered %d", ErrRejected, resp.StatusCode)
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, 1<<20))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: user API: %v", ErrRejected, err)
	}
	return m, nil
}

// redactErr drops the URL of an error from net/http (it may carry a code).
func redactErr(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && strings.Contains(err.Error(), "?") {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

func claimString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return ""
}

// claimBool reads a boolean claim, which Apple sends as a string.
func claimBool(v any) (value, present bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		b, err := strconv.ParseBool(x)
		return b, err == nil
	}
	return false, false
}
