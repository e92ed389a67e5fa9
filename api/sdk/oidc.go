package sdk

import (
	"net/http"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/tokens"
)

// discovery serves the OpenID Provider metadata the SDK reads.
func (s *Server) discovery(w http.ResponseWriter, _ *http.Request) {
	base := s.cfg.PublicURL
	w.Header().Set("Cache-Control", "public, max-age=300")
	httpx.WriteJSON(w, http.StatusOK, map[string]any{
		"issuer":                                base,
		"authorization_endpoint":                base + "/oauth2/authorize",
		"token_endpoint":                        base + "/oauth2/token",
		"userinfo_endpoint":                     base + "/oauth2/userinfo",
		"revocation_endpoint":                   base + "/oauth2/revoke",
		"introspection_endpoint":                base + "/oauth2/introspect",
		"end_session_endpoint":                  base + "/oauth2/end_session",
		"jwks_uri":                              base + "/oauth2/jwks",
		"response_types_supported":              []string{"code", "none"},
		"response_modes_supported":              []string{"query", "form_post"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", grantAnonymousRequest},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"token_endpoint_auth_methods_supported": []string{domain.AuthMethodNone, domain.AuthMethodBasic, domain.AuthMethodPost},
		// Introspection is for confidential clients only.
		"introspection_endpoint_auth_methods_supported": []string{domain.AuthMethodBasic, domain.AuthMethodPost},
		"revocation_endpoint_auth_methods_supported":    []string{domain.AuthMethodNone, domain.AuthMethodBasic, domain.AuthMethodPost},
		"code_challenge_methods_supported":              []string{"S256"},
		"dpop_signing_alg_values_supported":             dpopAlgorithms(),
		"prompt_values_supported":                       []string{"none", "login", "consent"},
		"scopes_supported":                              []string{"openid", "offline_access", "email", "phone", "profile", "https://authgear.com/scopes/full-access"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "sid", "at_hash", "amr", "azp",
			"email", "email_verified", "phone_number", "phone_number_verified", "preferred_username",
			"is_anonymous", "is_verified", claimIsAnonymous, claimIsVerified, claimCanReauthenticate},
		"claims_parameter_supported":      false,
		"request_parameter_supported":     false,
		"request_uri_parameter_supported": false,
		"ui_locales_supported":            []string{"en"},
	})
}

// jwks publishes the token signing keys, retired ones included until their
// tokens have expired.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=60")
	httpx.WriteJSON(w, http.StatusOK, s.Service.Keys().JWKS(r.Context()))
}

// dpopAlgorithms are the DPoP proof algorithms accepted.
func dpopAlgorithms() []string {
	out := make([]string, len(tokens.DPoPAlgorithms))
	for i, a := range tokens.DPoPAlgorithms {
		out[i] = string(a)
	}
	return out
}
