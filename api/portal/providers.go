package portal

import (
	"net/http"
	"strings"

	"github.com/gorilla/mux"
)

// The identity providers page (issue 19): the upstream providers of the
// configuration, read-only (they live in the configuration, not the
// settings, because of their secrets), secrets masked.

type providerRow struct {
	ID, Name, Kind, Endpoints, ClientID, Secret, Scopes, ResponseMode, Clients, Claims string
}

func (s *Server) mountProviders(r *mux.Router) {
	r.HandleFunc("/portal/authentication/identity-providers", s.portalAuth(s.portalProviders)).Methods(http.MethodGet)
}

func (s *Server) portalProviders(w http.ResponseWriter, r *http.Request) {
	var rows []providerRow
	for _, p := range s.Service.Config().Providers {
		row := providerRow{ID: p.ID, Name: p.Name, Kind: p.Kind, ClientID: p.ClientID, Scopes: strings.Join(p.Scopes, " "),
			ResponseMode: p.ResponseMode, Clients: strings.Join(p.Clients, ", "),
			Claims: "sub: " + p.Claims.Subject + ", email: " + p.Claims.Email + ", email_verified: " + p.Claims.EmailVerified}
		if p.Preset != "" {
			row.Kind += " (" + p.Preset + ")"
		}
		row.Endpoints = p.Issuer
		if p.AuthURL != "" {
			row.Endpoints = strings.TrimSpace(row.Endpoints + " authorize " + p.AuthURL + " token " + p.TokenURL)
		}
		switch {
		case p.AppleKey() != nil:
			row.Secret = "•••••• (team " + p.AppleTeamID + ", key " + p.AppleKeyID + ": client-secret JWTs)"
		case p.HasSecret() && p.ClientSecretFile != "":
			row.Secret = "•••••• (from the file " + p.ClientSecretFile + ")"
		case p.HasSecret():
			row.Secret = "•••••• (from " + p.ClientSecretEnv + ")"
		default:
			row.Secret = "none (" + p.ClientSecretEnv + " is not set)"
		}
		rows = append(rows, row)
	}
	s.renderPortal(w, r, http.StatusOK, "providers", portalPage{Title: "Identity providers", Section: "providers", Data: rows})
}
