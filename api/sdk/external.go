package sdk

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/api/upstream"
	"github.com/idstream/idstream/domain"
)

// The headless API of external identities (issue 19), for apps that draw
// their own settings UI, with the user's access token (or cookie):
//
//	GET    /api/external_identities                      the user's identities and the app's providers
//	POST   /api/external_identities/{provider}/link      a one-time URL that links one in a browser
//	DELETE /api/external_identities/{provider}/{subject} unlink one (never the last way in)
func (s *Server) mountExternal(r *mux.Router) {
	r.HandleFunc("/api/external_identities", s.externalList).Methods(http.MethodGet)
	r.HandleFunc("/api/external_identities/{provider}/link", s.externalLink).Methods(http.MethodPost)
	r.HandleFunc("/api/external_identities/{provider}/{subject}", s.externalUnlink).Methods(http.MethodDelete)
}

type externalIdentity struct {
	Provider string `json:"provider"`
	Subject  string `json:"subject"`
	Email    string `json:"email,omitempty"`
}

type providerInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

func (s *Server) externalList(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	ids := []externalIdentity{}
	for _, x := range p.User.ExternalIdentities() {
		ids = append(ids, externalIdentity{Provider: x.Provider, Subject: x.Subject, Email: x.Email})
	}
	provs := []providerInfo{}
	for _, pr := range s.cfg.Providers {
		if pr.Allows(p.Session.ClientID()) {
			provs = append(provs, providerInfo{ID: pr.ID, Name: pr.Name})
		}
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"identities": ids, "providers": provs}})
}

func (s *Server) externalLink(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	id := mux.Vars(r)["provider"]
	if pr, ok := s.cfg.Provider(id); !ok || !pr.Allows(p.Session.ClientID()) {
		s.WriteAPIError(w, r, upstream.ErrUnknownProvider)
		return
	}
	// Each link is an entry in the codes bucket for its lifetime, as a
	// hosted flow is: under the same limit per address.
	if err := s.Service.AllowAuthorize(r.Context(), s.ClientIP(r)); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	code, exp, err := s.Service.IssueLinkCode(r.Context(), p, id)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]string{
		"url": s.cfg.PublicURL + "/oauth2/upstream/link/" + code, "expire_at": exp.Format(time.RFC3339)}})
}

func (s *Server) externalUnlink(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	v := mux.Vars(r)
	if err := s.Service.UnlinkExternal(r.Context(), p.User.UserID(), domain.ExternalRef{Provider: v["provider"], Subject: v["subject"]}, httpx.Meta(r)); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]any{}})
}
