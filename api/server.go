// Package api is idstream's HTTP layer: it builds one server per audience
// (sdk: the Authgear SDKs' JSON and OAuth endpoints; hosted: the pages
// people see; portal: the operators' console; admin: the admin API) with
// only the dependencies each needs, mounts them on one router behind the
// shared middleware of httpx, and serves health, readiness, metrics and the
// API reference itself. Handlers parse and answer; decisions are made in
// app and domain.
package api

import (
	"errors"
	"log/slog"
	"net/http"
	"sort"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/admin"
	"github.com/idstream/idstream/api/hosted"
	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/api/portal"
	"github.com/idstream/idstream/api/sdk"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/workers"
	"github.com/idstream/idstream/workers/webhooks"
)

// LogReader is what the API reads from the log directly (health, admin).
type LogReader = httpx.LogReader

// Deps are the server's dependencies.
type Deps struct {
	Service *app.Service
	// Reads are the read-model queries; PortalSessions the operators'
	// sessions; NATSState whether the node's NATS connection is up (and its
	// state when not).
	Reads          projections.Reads
	PortalSessions projections.PortalSessions
	NATSState      func() (ok bool, state string)
	Log            *slog.Logger
	Store          LogReader
	// Exports runs user export jobs (admin API).
	Exports *workers.Exports
	// Reaper reports the guest reaper's status (portal).
	Reaper *workers.Reaper
	// Webhooks registers webhook endpoints (admin API, portal).
	Webhooks *webhooks.Service
	// ReadyLagBound is how many events a projection may be behind the log
	// while /readyz still answers ready.
	ReadyLagBound uint64
	// MaxBodyBytes bounds request bodies.
	MaxBodyBytes int64
}

// Server serves the API.
type Server struct {
	Deps
	*httpx.Base
	cfg    *config.Config
	router *mux.Router
	chain  *httpx.Chain
}

// NewServer builds the HTTP handler.
func NewServer(d Deps) (*Server, error) {
	if d.Service == nil || d.Reads.Pool == nil || d.PortalSessions.Pool == nil || d.NATSState == nil || d.Log == nil || d.Store == nil {
		return nil, errors.New("api: service, read models, portal sessions, NATS state, logger and log reader are required")
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 64 << 10
	}
	if d.ReadyLagBound == 0 {
		d.ReadyLagBound = 10000
	}
	s := &Server{Deps: d, cfg: d.Service.Config(), router: mux.NewRouter()}
	var err error
	if s.Base, err = httpx.NewBase(d.Log, s.cfg.TrustedProxies); err != nil {
		return nil, err
	}
	sdkServer, err := sdk.New(sdk.Deps{Base: s.Base, Service: d.Service.Accounts})
	if err != nil {
		return nil, err
	}
	hostedServer, err := hosted.New(hosted.Deps{Base: s.Base, Service: d.Service.Accounts})
	if err != nil {
		return nil, err
	}
	adminServer, err := admin.New(admin.Deps{Base: s.Base, Service: d.Service.Admin, Reads: d.Reads, Store: d.Store, Exports: d.Exports, Webhooks: d.Webhooks})
	if err != nil {
		return nil, err
	}
	portalServer, err := portal.New(portal.Deps{Base: s.Base, Service: d.Service.Admin, Settings: d.Service.SettingsService, Reads: d.Reads, PortalSessions: d.PortalSessions,
		Store: d.Store, Exports: d.Exports, Reaper: d.Reaper, Webhooks: d.Webhooks, MaxBodyBytes: d.MaxBodyBytes})
	if err != nil {
		return nil, err
	}
	sdkServer.Mount(s.router)
	hostedServer.Mount(s.router)
	adminServer.Mount(s.router)
	s.routes(portalServer.Router())
	// CORS applies to the SDK endpoints only.
	s.chain = &httpx.Chain{Base: s.Base, Router: s.router, Before: sdkServer.CORS, MaxBodyBytes: d.MaxBodyBytes}
	return s, nil
}

func (s *Server) routes(portalRouter http.Handler) {
	r := s.router
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	r.HandleFunc("/metrics", s.metrics).Methods(http.MethodGet)
	r.HandleFunc("/openapi.json", s.openapi).Methods(http.MethodGet)
	r.HandleFunc("/docs", s.docs).Methods(http.MethodGet)
	// The operators' portal: HTML pages with a router of their own (not part
	// of the API reference).
	r.PathPrefix("/portal").Handler(portalRouter)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.WriteAPIError(w, r, httpx.NewError(404, "NotFound", "NotFound", "invalid_request", "no such endpoint"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.WriteAPIError(w, r, httpx.NewError(405, "MethodNotAllowed", "MethodNotAllowed", "invalid_request", "method not allowed on this endpoint"))
	})
}

// Routes lists "METHOD path" for every route the router serves (for the
// API reference check).
func (s *Server) Routes() []string {
	var out []string
	_ = s.router.Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		t, err := route.GetPathTemplate()
		if err != nil {
			return nil
		}
		methods, _ := route.GetMethods()
		for _, m := range methods {
			out = append(out, m+" "+t)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// ServeHTTP runs the middleware chain: request id, recovery, CORS, body
// limit, routing, and an access log line with no query string or token.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.chain.ServeHTTP(w, r)
}
