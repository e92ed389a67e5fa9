package admin

import (
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/app"
)

// SecretView is a client secret as the admin API shows it: never the
// secret or its hash.
type SecretView struct {
	SecretID  string     `json:"secret_id"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy string     `json:"created_by"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Active    bool       `json:"active"`
}

// SecretViewOf is how the admin API and the portal show a secret at now.
func SecretViewOf(cs app.ClientSecret, now time.Time) SecretView {
	return SecretView{SecretID: cs.SecretID, CreatedAt: cs.CreatedAt, CreatedBy: cs.CreatedBy, ExpiresAt: cs.ExpiresAt,
		Active: cs.Live(now)}
}

// adminListClientSecrets is GET /admin/clients/{id}/secrets.
func (s *Server) adminListClientSecrets(w http.ResponseWriter, r *http.Request) {
	list, err := s.Service.ClientSecrets(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	out := make([]SecretView, 0, len(list))
	for _, cs := range list {
		out = append(out, SecretViewOf(cs, s.Service.Now()))
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"secrets": out})
}

type rotateSecretRequest struct {
	// OverlapSeconds is how long the client's older secrets keep working
	// (default a day, at most 30 days; 0 stops them now).
	OverlapSeconds *int64 `json:"overlap_seconds"`
}

// defaultSecretOverlap is how long older secrets keep working after a
// rotation unless the request says.
const defaultSecretOverlap = 24 * time.Hour

// adminRotateClientSecret is POST /admin/clients/{id}/secrets: a new secret,
// shown in this answer only.
func (s *Server) adminRotateClientSecret(w http.ResponseWriter, r *http.Request) {
	var req rotateSecretRequest
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(r, &req); err != nil {
			s.WriteAPIError(w, r, err)
			return
		}
	}
	overlap := defaultSecretOverlap
	if req.OverlapSeconds != nil {
		if *req.OverlapSeconds < 0 || *req.OverlapSeconds > int64(app.MaxSecretOverlap/time.Second) {
			s.WriteAPIError(w, r, app.ErrInvalidOverlap)
			return
		}
		overlap = time.Duration(*req.OverlapSeconds) * time.Second
	}
	secret, cs, err := s.Service.RotateClientSecret(r.Context(), mux.Vars(r)["id"], overlap, httpx.Meta(r))
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusCreated, map[string]any{"client_secret": secret, "secret": SecretViewOf(cs, s.Service.Now()),
		"previous_secrets_expire_at": s.Service.Now().Add(overlap).UTC()})
}

// adminRevokeClientSecret is DELETE /admin/clients/{id}/secrets/{sid}: the
// secret stops working now.
func (s *Server) adminRevokeClientSecret(w http.ResponseWriter, r *http.Request) {
	v := mux.Vars(r)
	if err := s.Service.RevokeClientSecret(r.Context(), v["id"], v["sid"], httpx.Meta(r)); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
