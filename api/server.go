// Package api is idstream's HTTP API: OIDC-shaped endpoints wire-compatible
// with the Authgear SDKs, plus health and metrics. Handlers parse and answer;
// decisions are made in app and domain.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/workers"
	"github.com/idstream/idstream/workers/webhooks"
)

// LogReader is what the API reads from the log directly (health, admin).
type LogReader interface {
	LastSequence(ctx context.Context) (uint64, error)
	Get(ctx context.Context, seq uint64) (eventstore.Record, error)
	Load(ctx context.Context, subject string) ([]eventstore.Record, uint64, error)
	Subject(kind, id string) string
}

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
	// Webhooks registers webhook endpoints (admin API).
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
	cfg     *config.Config
	router  *mux.Router
	proxies []netip.Prefix
}

var httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "idstream_http_request_duration_seconds",
	Help:    "HTTP request latency by route and status.",
	Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
}, []string{"route", "method", "status"})

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
	for _, p := range s.cfg.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("api: trusted proxy %q: %w", p, err)
		}
		s.proxies = append(s.proxies, prefix)
	}
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	r := s.router
	r.HandleFunc("/.well-known/openid-configuration", s.discovery).Methods(http.MethodGet)
	r.HandleFunc("/oauth2/jwks", s.jwks).Methods(http.MethodGet)
	r.HandleFunc("/api/anonymous_user/signup", s.anonymousSignup).Methods(http.MethodPost)
	r.HandleFunc("/api/anonymous_user/promotion_code", s.promotionCode).Methods(http.MethodPost)
	r.HandleFunc("/api/anonymous_user/promote", s.promote).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/token", s.token).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/revoke", s.revoke).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/challenge", s.challenge).Methods(http.MethodPost)
	r.HandleFunc("/oauth2/userinfo", s.userinfo).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/oauth2/end_session", s.endSession).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/oauth2/authorize", s.authorize).Methods(http.MethodGet)
	r.HandleFunc("/flows/{flow}", s.flowGet).Methods(http.MethodGet)
	r.HandleFunc("/flows/{flow}", s.flowPost).Methods(http.MethodPost)
	r.HandleFunc("/static/idstream.css", s.stylesheet).Methods(http.MethodGet)
	r.HandleFunc("/admin/projections", s.adminOnly(s.adminProjections)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users", s.adminOnly(s.adminListUsers)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users/export", s.adminOnly(s.adminCreateExport)).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/export/{id}", s.adminOnly(s.adminGetExport)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users/export/{id}/download", s.adminOnly(s.adminDownloadExport)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users/{id}", s.adminOnly(s.adminGetUser)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users/{id}", s.adminOnly(s.adminDeleteUser())).Methods(http.MethodDelete)
	r.HandleFunc("/admin/users/{id}/disable", s.adminOnly(s.adminDisableUser())).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/{id}/enable", s.adminOnly(s.adminEnableUser())).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/{id}/sessions/{sid}/revoke", s.adminOnly(s.adminRevokeSession)).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/{id}/timeline", s.adminOnly(s.adminTimeline)).Methods(http.MethodGet)
	r.HandleFunc("/admin/analytics/funnel", s.adminOnly(s.adminFunnel)).Methods(http.MethodGet)
	r.HandleFunc("/admin/webhooks", s.adminOnly(s.adminListWebhooks)).Methods(http.MethodGet)
	r.HandleFunc("/admin/webhooks", s.adminOnly(s.adminCreateWebhook)).Methods(http.MethodPost)
	r.HandleFunc("/admin/webhooks/{id}", s.adminOnly(s.adminGetWebhook)).Methods(http.MethodGet)
	r.HandleFunc("/admin/webhooks/{id}", s.adminOnly(s.adminUpdateWebhook)).Methods(http.MethodPatch)
	r.HandleFunc("/admin/webhooks/{id}", s.adminOnly(s.adminDeleteWebhook)).Methods(http.MethodDelete)
	r.HandleFunc("/admin/webhooks/{id}/rotate_secret", s.adminOnly(s.adminRotateWebhookSecret)).Methods(http.MethodPost)
	r.HandleFunc("/admin/webhooks/{id}/dead_letters", s.adminOnly(s.adminWebhookDeadLetters)).Methods(http.MethodGet)
	r.HandleFunc("/admin/webhooks/{id}/dead_letters/replay", s.adminOnly(s.adminReplayAllDeadLetters)).Methods(http.MethodPost)
	r.HandleFunc("/admin/webhooks/{id}/dead_letters/{dl}/replay", s.adminOnly(s.adminReplayDeadLetter)).Methods(http.MethodPost)
	r.HandleFunc("/healthz", s.healthz).Methods(http.MethodGet)
	r.HandleFunc("/readyz", s.readyz).Methods(http.MethodGet)
	r.HandleFunc("/metrics", s.metrics).Methods(http.MethodGet)
	r.HandleFunc("/openapi.json", s.openapi).Methods(http.MethodGet)
	r.HandleFunc("/docs", s.docs).Methods(http.MethodGet)
	// The operators' portal: HTML pages with a router of their own (not part
	// of the API reference).
	r.PathPrefix("/portal").Handler(s.portalRouter())
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeAPIError(w, r, newError(404, "NotFound", "NotFound", "invalid_request", "no such endpoint"))
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeAPIError(w, r, newError(405, "MethodNotAllowed", "MethodNotAllowed", "invalid_request", "method not allowed on this endpoint"))
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

type ctxKey int

const requestIDKey ctxKey = 0

func requestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// ServeHTTP runs the middleware chain: request id, recovery, CORS, body
// limit, routing, and an access log line with no query string or token.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 64 {
		id = uuid.NewString()
	}
	w.Header().Set("X-Request-Id", id)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
	rec := &statusRecorder{ResponseWriter: w}
	route := "unmatched"
	var match mux.RouteMatch
	if s.router.Match(r, &match) && match.Route != nil {
		if t, err := match.Route.GetPathTemplate(); err == nil {
			route = t
		}
	}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("panic in handler", "request_id", id, "route", route, "panic", fmt.Sprint(p))
			if rec.status == 0 {
				s.writeAPIError(rec, r, errors.New("panic"))
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		httpDuration.WithLabelValues(route, r.Method, strconv.Itoa(status)).Observe(d.Seconds())
		if route != "/metrics" && route != "/healthz" {
			s.Log.Debug("request", "request_id", id, "method", r.Method, "route", route, "status", status, "duration_ms", float64(d.Microseconds())/1000)
		}
	}()
	if s.cors(rec, r) {
		return
	}
	r.Body = http.MaxBytesReader(rec, r.Body, s.MaxBodyBytes)
	s.router.ServeHTTP(rec, r)
}

// corsEndpoints are the non-/api paths the Authgear SDKs call with fetch
// from an application's origin.
var corsEndpoints = map[string]bool{
	"/oauth2/token": true, "/oauth2/userinfo": true, "/oauth2/revoke": true, "/oauth2/challenge": true,
	"/.well-known/openid-configuration": true, "/oauth2/jwks": true,
}

// corsPath reports whether CORS applies to the path: only the endpoints the
// SDKs call. The portal, hosted pages, admin API, docs and metrics never
// answer CORS, so no page on a client's origin can read them (and their
// CSRF tokens) with the visitor's cookies.
func corsPath(path string) bool {
	return strings.HasPrefix(path, "/api/") || corsEndpoints[path]
}

// cors answers preflights and sets CORS headers for origins some client
// allows, on the SDK endpoints only; it reports whether the request was
// fully answered.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !corsPath(r.URL.Path) {
		return false
	}
	w.Header().Add("Vary", "Origin")
	allowed := false
	for _, cl := range s.Service.Settings().Clients {
		if cl.AllowsOrigin(origin) {
			allowed = true
			break
		}
	}
	if !allowed {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Idempotency-Key, X-Request-Id")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h.Set("Access-Control-Expose-Headers", "X-Request-Id")
	return false
}

// bearer returns the access token of an Authorization header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func meta(r *http.Request) app.Meta {
	actor, _ := r.Context().Value(actorKey{}).(string)
	return app.Meta{CorrelationID: requestID(r.Context()), Actor: actor}
}

// actorKey holds the operator a request acts for.
type actorKey struct{}
