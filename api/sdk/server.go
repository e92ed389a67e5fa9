// Package sdk serves the JSON endpoints the Authgear SDKs call: OpenID
// discovery and the JWKS, the anonymous-user API (/api/anonymous_user/*),
// and the OAuth token, revocation, challenge and userinfo endpoints. It is
// the only package that answers CORS.
package sdk

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
)

// Deps are the SDK server's dependencies.
type Deps struct {
	*httpx.Base
	Service *app.Accounts
}

// Server serves the SDK endpoints.
type Server struct {
	Deps
	cfg *config.Config
}

// New builds the SDK server.
func New(d Deps) (*Server, error) {
	if d.Base == nil || d.Service == nil {
		return nil, errors.New("sdk: base and service are required")
	}
	return &Server{Deps: d, cfg: d.Service.Config()}, nil
}

// Mount adds the SDK routes to r.
func (s *Server) Mount(r *mux.Router) {
	r.HandleFunc("/.well-known/openid-configuration", s.discovery).Methods(http.MethodGet)
	r.HandleFunc("/oauth2/jwks", s.jwks).Methods(http.MethodGet)
	r.HandleFunc("/api/anonymous_user/signup", s.anonymousSignup).Methods(http.MethodPost)
	r.HandleFunc("/api/anonymous_user/promotion_code", s.promotionCode).Methods(http.MethodPost)
	r.HandleFunc("/api/anonymous_user/promote", s.promote).Methods(http.MethodPost)
	s.otpRoutes(r)
	r.HandleFunc("/oauth2/token", s.token).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/revoke", s.revoke).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/introspect", s.introspect).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/challenge", s.challenge).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/userinfo", s.userinfo).Methods(http.MethodGet, http.MethodPost)
	s.mountExternal(r)
}
