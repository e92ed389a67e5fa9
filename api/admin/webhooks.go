package admin

import (
	"net/http"
	"strconv"
	"time"

	"github.com/idstream/idstream/api/httpx"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/workers/webhooks"
)

// The admin API of webhook endpoints (issue 21). The secret is in the
// answer of create and rotate only.

type webhookCreated struct {
	webhooks.Status
	// Secret is shown this once: the receiver verifies with it.
	Secret string `json:"secret"`
}

func (s *Server) adminListWebhooks(w http.ResponseWriter, r *http.Request) {
	sts, err := s.Webhooks.List(r.Context())
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"endpoints": sts})
}

func (s *Server) adminCreateWebhook(w http.ResponseWriter, r *http.Request) {
	var spec webhooks.Spec
	if err := httpx.DecodeJSON(r, &spec); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	st, secret, err := s.Webhooks.Create(r.Context(), spec)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	w.Header().Set("Location", "/admin/webhooks/"+st.ID)
	httpx.WriteJSON(w, http.StatusCreated, webhookCreated{Status: st, Secret: secret})
}

func (s *Server) adminGetWebhook(w http.ResponseWriter, r *http.Request) {
	st, err := s.Webhooks.Get(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) adminUpdateWebhook(w http.ResponseWriter, r *http.Request) {
	var spec webhooks.Spec
	if err := httpx.DecodeJSON(r, &spec); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	st, err := s.Webhooks.Update(r.Context(), mux.Vars(r)["id"], spec)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, st)
}

func (s *Server) adminDeleteWebhook(w http.ResponseWriter, r *http.Request) {
	if err := s.Webhooks.Delete(r.Context(), mux.Vars(r)["id"]); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type rotateRequest struct {
	// OverlapSeconds: how long the replaced secret still signs (0: the
	// default, 24 hours).
	OverlapSeconds int64 `json:"overlap_seconds"`
}

func (s *Server) adminRotateWebhookSecret(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest
	if r.ContentLength != 0 {
		if err := httpx.DecodeJSON(r, &req); err != nil {
			s.WriteAPIError(w, r, err)
			return
		}
	}
	if req.OverlapSeconds < 0 || req.OverlapSeconds > 7*24*3600 {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidWebhookEndpoint", "invalid_request", "overlap_seconds is 0 to 604800"))
		return
	}
	st, secret, err := s.Webhooks.RotateSecret(r.Context(), mux.Vars(r)["id"], time.Duration(req.OverlapSeconds)*time.Second)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, webhookCreated{Status: st, Secret: secret})
}

func (s *Server) adminWebhookDeadLetters(w http.ResponseWriter, r *http.Request) {
	limit, after := 100, uint64(0)
	q := r.URL.Query()
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			s.WriteAPIError(w, r, httpx.BadRequest("InvalidLimit", "invalid_request", "limit is 1 to 500"))
			return
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.WriteAPIError(w, r, httpx.BadRequest("InvalidCursor", "invalid_request", "the cursor is not one this API gave"))
			return
		}
		after = n
	}
	dls, next, err := s.Webhooks.DeadLetters(r.Context(), mux.Vars(r)["id"], after, limit)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	body := map[string]any{"dead_letters": dls}
	if next != 0 {
		body["next_cursor"] = strconv.FormatUint(next, 10)
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

func (s *Server) adminReplayDeadLetter(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(mux.Vars(r)["dl"], 10, 64)
	if err != nil {
		s.WriteAPIError(w, r, webhooks.ErrNoSuchDeadLetter)
		return
	}
	if err := s.Webhooks.Replay(r.Context(), mux.Vars(r)["id"], id); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]any{"replayed": 1})
}

func (s *Server) adminReplayAllDeadLetters(w http.ResponseWriter, r *http.Request) {
	n, err := s.Webhooks.ReplayAll(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusAccepted, map[string]any{"replayed": n})
}
