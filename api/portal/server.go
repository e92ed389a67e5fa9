// Package portal is the operators' console under /portal: server-rendered
// pages with a router, templates and sessions of their own (sessions kept
// through projections.PortalSessions), settings forms, users, operations
// and the settings audit log.
package portal

import (
	"errors"

	"github.com/idstream/idstream/api/admin"
	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/workers"
	"github.com/idstream/idstream/workers/webhooks"
)

// Deps are the portal's dependencies.
type Deps struct {
	*httpx.Base
	Service *app.Admin
	// Settings changes the project settings (the settings pages).
	Settings *app.SettingsService
	// Reads are the read-model queries; PortalSessions the operators'
	// sessions; Store the log (timelines, projection status).
	Reads          projections.Reads
	PortalSessions projections.PortalSessions
	Store          httpx.LogReader
	// Exports (export downloads, recent jobs) and Reaper (its status) are
	// optional: the Operations page says what is missing.
	Exports *workers.Exports
	Reaper  *workers.Reaper
	// Webhooks: the endpoints' pages.
	Webhooks *webhooks.Service
	// MaxBodyBytes bounds form bodies.
	MaxBodyBytes int64
}

// Server serves the portal.
type Server struct {
	Deps
	cfg       *config.Config
	timelines admin.Timelines
}

// New builds the portal.
func New(d Deps) (*Server, error) {
	if d.Base == nil || d.Service == nil || d.Settings == nil || d.Reads.Pool == nil || d.PortalSessions.Pool == nil || d.Store == nil {
		return nil, errors.New("portal: base, service, read models, portal sessions and log reader are required")
	}
	if d.MaxBodyBytes <= 0 {
		d.MaxBodyBytes = 64 << 10
	}
	return &Server{Deps: d, cfg: d.Service.Config(), timelines: admin.Timelines{Service: d.Service, Reads: d.Reads, Store: d.Store}}, nil
}
