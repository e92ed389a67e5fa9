package portal

import (
	"net/http"
	"time"

	"github.com/idstream/idstream/api/admin"
	"github.com/idstream/idstream/api/httpx"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/app"
)

// portalSecrets lists a client's secrets for its page (none when they
// cannot be read; the failure is logged).
func (s *Server) portalSecrets(r *http.Request, clientID string) []admin.SecretView {
	list, err := s.Service.ClientSecrets(r.Context(), clientID)
	if err != nil {
		s.Log.Warn("portal: client secrets not read", "client_id", clientID, "error", err)
		return nil
	}
	out := make([]admin.SecretView, 0, len(list))
	for _, cs := range list {
		out = append(out, admin.SecretViewOf(cs, s.Service.Now()))
	}
	return out
}

type secretData struct {
	ClientID, SecretID, Secret string
	PreviousExpireAt           time.Time
}

// portalRotateSecret makes a new secret and shows it once.
func (s *Server) portalRotateSecret(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["client_id"]
	overlap, err := parseSeconds(r.PostForm.Get("overlap"))
	if err != nil || overlap.Duration() > app.MaxSecretOverlap {
		s.portalMessage(w, r, http.StatusBadRequest, "No secret was made", "The overlap must be a duration from 0 to 30d, such as 24h.")
		return
	}
	secret, cs, err := s.Service.RotateClientSecret(r.Context(), id, overlap.Duration(), operatorMeta(r))
	if err != nil {
		e := s.LogError(r, err)
		s.portalMessage(w, r, e.Status, "No secret was made", httpx.PageText(e, httpx.AudiencePortal, ""))
		return
	}
	s.renderPortal(w, r, http.StatusOK, "secret", portalPage{Title: "New client secret", Section: "applications",
		Data: secretData{ClientID: id, SecretID: cs.SecretID, Secret: secret, PreviousExpireAt: s.Service.Now().Add(overlap.Duration())}})
}

// portalRevokeSecret makes a secret stop working now.
func (s *Server) portalRevokeSecret(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	if err := s.Service.RevokeClientSecret(r.Context(), v["client_id"], v["sid"], operatorMeta(r)); err != nil {
		e := s.LogError(r, err)
		s.portalMessage(w, r, e.Status, "The secret was not revoked", httpx.PageText(e, httpx.AudiencePortal, ""))
		return
	}
	http.Redirect(w, r, "/portal/applications/"+v["client_id"]+"#secrets", http.StatusSeeOther)
}
