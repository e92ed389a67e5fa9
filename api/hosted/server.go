// Package hosted serves the pages idstream shows people in a browser on
// behalf of an application: /oauth2/authorize and the sign-up, sign-in and
// promotion pages under /flows/, RP-initiated logout with its confirmation
// page, and their stylesheet. Pages run no script and answer no CORS.
package hosted

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/api/upstream"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
)

// Deps are the hosted pages' dependencies.
type Deps struct {
	*httpx.Base
	Service *app.Accounts
}

// Server serves the hosted pages.
type Server struct {
	Deps
	cfg *config.Config
	// upstream are the upstream identity providers (issue 19).
	upstream *upstream.Registry
}

// New builds the hosted pages' server.
func New(d Deps) (*Server, error) {
	if d.Base == nil || d.Service == nil {
		return nil, errors.New("hosted: base and service are required")
	}
	return &Server{Deps: d, cfg: d.Service.Config(), upstream: upstream.New(d.Service.Config().Providers, d.Service.Now)}, nil
}

// Mount adds the hosted pages' routes to r.
func (s *Server) Mount(r *mux.Router) {
	r.HandleFunc("/oauth2/end_session", s.endSession).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/oauth2/authorize", s.authorize).Methods(http.MethodGet)
	r.HandleFunc("/flows/{flow}", s.flowGet).Methods(http.MethodGet)
	r.HandleFunc("/flows/{flow}", s.flowPost).Methods(http.MethodPost)
	s.codePageRoutes(r)
	r.HandleFunc("/static/idstream.css", s.stylesheet).Methods(http.MethodGet)
	s.mountUpstream(r)
	s.mountSettings(r)
}
