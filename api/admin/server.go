// Package admin is the admin API under /admin: user management, user
// exports and projection status, for holders of an admin API key.
package admin

import (
	"errors"
	"net/http"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/workers"
	"github.com/idstream/idstream/workers/webhooks"
)

// Deps are the admin API's dependencies.
type Deps struct {
	*httpx.Base
	Service *app.Admin
	// Reads are the read-model queries; Store the log (timelines,
	// projection status).
	Reads projections.Reads
	Store httpx.LogReader
	// Exports runs user export jobs.
	Exports *workers.Exports
	// Webhooks registers webhook endpoints and replays their dead letters.
	Webhooks *webhooks.Service
}

// Server serves the admin API.
type Server struct {
	Deps
	cfg       *config.Config
	timelines Timelines
}

// New builds the admin API.
func New(d Deps) (*Server, error) {
	if d.Base == nil || d.Service == nil || d.Reads.Pool == nil || d.Store == nil || d.Exports == nil || d.Webhooks == nil {
		return nil, errors.New("admin: base, service, read models, log reader, exports and webhooks are required")
	}
	return &Server{Deps: d, cfg: d.Service.Config(), timelines: Timelines{Service: d.Service, Reads: d.Reads, Store: d.Store}}, nil
}

// Mount adds the admin routes to r.
func (s *Server) Mount(r *mux.Router) {
	r.HandleFunc("/admin/projections", s.adminOnly(s.adminProjections)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users", s.adminOnly(s.adminListUsers)).Methods(http.MethodGet)
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
	r.HandleFunc("/admin/clients/{id}/secrets", s.adminOnly(s.adminListClientSecrets)).Methods(http.MethodGet)
	r.HandleFunc("/admin/clients/{id}/secrets", s.adminOnly(s.adminRotateClientSecret)).Methods(http.MethodPost)
	r.HandleFunc("/admin/clients/{id}/secrets/{sid}", s.adminOnly(s.adminRevokeClientSecret)).Methods(http.MethodDelete)
	r.HandleFunc("/admin/users/export", s.adminOnly(s.adminCreateExport)).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/export/{id}", s.adminOnly(s.adminGetExport)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users/export/{id}/download", s.adminOnly(s.adminDownloadExport)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users/{id}", s.adminOnly(s.adminGetUser)).Methods(http.MethodGet)
	r.HandleFunc("/admin/users/{id}", s.adminOnly(s.adminDeleteUser())).Methods(http.MethodDelete)
	r.HandleFunc("/admin/users/{id}/disable", s.adminOnly(s.adminDisableUser())).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/{id}/enable", s.adminOnly(s.adminEnableUser())).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/{id}/sessions/{sid}/revoke", s.adminOnly(s.adminRevokeSession)).Methods(http.MethodPost)
	r.HandleFunc("/admin/users/{id}/timeline", s.adminOnly(s.adminTimeline)).Methods(http.MethodGet)
}
