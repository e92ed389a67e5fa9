package api

import (
	"crypto/subtle"
	"encoding/json"
	"net/http"
	"slices"
	"sort"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
)

// adminOnly guards the admin API: a bearer key from configuration, compared
// in constant time against every configured key. With no key configured the
// admin API does not exist (404).
func (s *Server) adminOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if len(s.cfg.AdminAPIKeys) == 0 {
			s.writeAPIError(w, r, newError(404, "NotFound", "AdminAPIDisabled", "invalid_request", "the admin API is off: no admin API key is configured"))
			return
		}
		presented := []byte(bearer(r))
		ok := 0
		for _, k := range s.cfg.AdminAPIKeys {
			ok |= subtle.ConstantTimeCompare(presented, []byte(k))
		}
		if len(presented) == 0 || ok != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idstream-admin"`)
			s.writeAPIError(w, r, newError(401, "Unauthenticated", "InvalidAdminKey", "invalid_token", "a valid admin API key is required"))
			return
		}
		h(w, r)
	}
}

// adminProjections is GET /admin/projections: checkpoint, lag and failures
// of every projection.
func (s *Server) adminProjections(w http.ResponseWriter, r *http.Request) {
	sts, err := projections.Statuses(r.Context(), s.Pool, s.Store, s.Service.Now())
	if err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"projections": sts})
}

// timelineEvent is one event of a user's timeline.
type timelineEvent struct {
	Sequence   uint64          `json:"sequence"`
	Subject    string          `json:"subject"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	OccurredAt string          `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// adminTimeline is GET /admin/users/{id}/timeline: everything that happened
// to a user, read from the log (the user's subject, its sessions', its
// login ID's and its keys'), in log order.
func (s *Server) adminTimeline(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if _, err := uuid.Parse(id); err != nil {
		s.writeAPIError(w, r, badRequest("InvalidUserID", "invalid_request", "the user id is not a UUID"))
		return
	}
	ctx := r.Context()
	u, _, err := s.Service.LoadUser(ctx, id)
	if err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	if !u.Exists() {
		s.writeAPIError(w, r, newError(404, "NotFound", "UserNotFound", "invalid_request", "no such user"))
		return
	}
	subjects := []string{s.Store.Subject("user", id)}
	sessionIDs := slices.Clone(u.SessionIDs())
	// Sessions of regular users are found through the read model; their
	// events are still read from the log.
	rows, err := s.Pool.Query(ctx, `SELECT id::text FROM sessions WHERE user_id = $1`, id)
	if err == nil {
		for rows.Next() {
			var sid string
			if rows.Scan(&sid) == nil && !slices.Contains(sessionIDs, sid) {
				sessionIDs = append(sessionIDs, sid)
			}
		}
		rows.Close()
	}
	for _, sid := range sessionIDs {
		subjects = append(subjects, s.Store.Subject("session", sid))
	}
	if typ, value := u.LoginID(); value != "" {
		if lid, err := s.Service.ParseLoginID(typ, value); err == nil {
			subjects = append(subjects, s.Store.Subject("loginid", lid.Key()))
		}
	}
	var out []timelineEvent
	for _, subj := range subjects {
		recs, _, err := s.Store.Load(ctx, subj)
		if err != nil {
			s.writeAPIError(w, r, err)
			return
		}
		for _, rec := range recs {
			out = append(out, timelineOf(rec))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sequence < out[j].Sequence })
	writeJSON(w, http.StatusOK, map[string]any{"user_id": id, "events": out})
}

func timelineOf(rec eventstore.Record) timelineEvent {
	return timelineEvent{Sequence: rec.Sequence, Subject: rec.Subject, ID: rec.ID, Type: rec.Type,
		OccurredAt: rec.OccurredAt.Format("2006-01-02T15:04:05.000000Z07:00"), Data: domain.RedactCredentials(rec.Data)}
}
