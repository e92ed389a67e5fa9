package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
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
			s.WriteAPIError(w, r, httpx.NewError(404, "NotFound", "AdminAPIDisabled", "invalid_request", "the admin API is off: no admin API key is configured"))
			return
		}
		presented := []byte(httpx.Bearer(r))
		ok := 0
		for _, k := range s.cfg.AdminAPIKeys {
			ok |= subtle.ConstantTimeCompare(presented, []byte(k))
		}
		if len(presented) == 0 || ok != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="idstream-admin"`)
			s.WriteAPIError(w, r, httpx.NewError(401, "Unauthenticated", "InvalidAdminKey", "invalid_token", "a valid admin API key is required"))
			return
		}
		// Events record which key acted, by a fingerprint of it.
		sum := sha256.Sum256(presented)
		h(w, r.WithContext(httpx.WithActor(r.Context(), "admin-key:"+hex.EncodeToString(sum[:4]))))
	}
}

// adminProjections is GET /admin/projections: checkpoint, lag and failures
// of every projection.
func (s *Server) adminProjections(w http.ResponseWriter, r *http.Request) {
	sts, err := s.Reads.Statuses(r.Context(), s.Store, s.Service.Now())
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"projections": sts})
}

// TimelineEvent is one event of a user's timeline.
type TimelineEvent struct {
	Sequence   uint64          `json:"sequence"`
	Subject    string          `json:"subject"`
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	OccurredAt string          `json:"occurred_at"`
	Actor      string          `json:"actor,omitempty"`
	Data       json.RawMessage `json:"data"`
}

// adminTimeline is GET /admin/users/{id}/timeline: everything that happened
// to a user, read from the log (the user's subject, its sessions', its
// login ID's and its keys'), in log order.
func (s *Server) adminTimeline(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if _, err := uuid.Parse(id); err != nil {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidUserID", "invalid_request", "the user id is not a UUID"))
		return
	}
	out, err := s.timelines.UserTimeline(r.Context(), id)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"user_id": id, "events": out})
}

// Timelines reads users' histories from the log (the admin API's and the
// portal's user timeline).
type Timelines struct {
	Service *app.Admin
	Reads   projections.Reads
	Store   httpx.LogReader
}

// UserTimeline reads one user's whole history from the log (not the read
// model): the user's events, its sessions' and its login ID's, in log order.
func (s Timelines) UserTimeline(ctx context.Context, id string) ([]TimelineEvent, error) {
	u, _, err := s.Service.LoadUser(ctx, id)
	if err != nil {
		return nil, err
	}
	if !u.Exists() {
		return nil, app.ErrNoSuchUser
	}
	subjects := []string{s.Store.Subject("user", id)}
	sessionIDs := u.SessionIDs()
	// Sessions of regular users are found through the read model; their
	// events are still read from the log.
	if more, err := s.Reads.SessionIDs(ctx, id); err == nil {
		for _, sid := range more {
			if !slices.Contains(sessionIDs, sid) {
				sessionIDs = append(sessionIDs, sid)
			}
		}
	}
	for _, sid := range sessionIDs {
		subjects = append(subjects, s.Store.Subject("session", sid))
	}
	if typ, value := u.LoginID(); value != "" {
		if lid, err := s.Service.ParseLoginID(typ, value); err == nil {
			subjects = append(subjects, s.Store.Subject("loginid", lid.Key()))
		}
	}
	var out []TimelineEvent
	for _, subj := range subjects {
		recs, _, err := s.Store.Load(ctx, subj)
		if err != nil {
			return nil, err
		}
		for _, rec := range recs {
			out = append(out, timelineOf(rec))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Sequence < out[j].Sequence })
	return out, nil
}

func timelineOf(rec eventstore.Record) TimelineEvent {
	return TimelineEvent{Sequence: rec.Sequence, Subject: rec.Subject, ID: rec.ID, Type: rec.Type,
		OccurredAt: rec.OccurredAt.Format("2006-01-02T15:04:05.000000Z07:00"), Actor: rec.Actor, Data: domain.RedactCredentials(rec.Data)}
}

// adminListUsers is GET /admin/users: users from the read model, newest
// first, filtered, one page at a time (cursor pagination).
func (s *Server) adminListUsers(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f projections.UserFilter
	var err error
	if f.IsAnonymous, err = boolParam(q, "is_anonymous"); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if f.Disabled, err = boolParam(q, "disabled"); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	f.State = q.Get("state")
	if f.State != "" && !slices.Contains([]string{"active", "expired", "merged", "deleted"}, f.State) {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidQuery", "invalid_request", "state is one of active, expired, merged, deleted"))
		return
	}
	if f.CreatedAfter, err = timeParam(q, "created_after"); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if f.CreatedBefore, err = timeParam(q, "created_before"); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	f.LoginIDPrefix = strings.ToLower(strings.TrimSpace(q.Get("login_id")))
	limit := 50
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > 500 {
			s.WriteAPIError(w, r, httpx.BadRequest("InvalidQuery", "invalid_request", "limit is a whole number from 1 to 500"))
			return
		}
	}
	users, next, err := s.Reads.ListUsers(r.Context(), f, q.Get("cursor"), limit)
	if errors.Is(err, projections.ErrInvalidCursor) {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidCursor", "invalid_request", "the cursor is not one this API returned"))
		return
	}
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if users == nil {
		users = []projections.UserRow{}
	}
	body := map[string]any{"users": users}
	if next != "" {
		body["next_cursor"] = next
	}
	httpx.WriteJSON(w, http.StatusOK, body)
}

func boolParam(q url.Values, name string) (*bool, error) {
	v := q.Get(name)
	if v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, httpx.BadRequest("InvalidQuery", "invalid_request", name+" is true or false")
	}
	return &b, nil
}

func timeParam(q url.Values, name string) (time.Time, error) {
	v := q.Get(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, httpx.BadRequest("InvalidQuery", "invalid_request", name+" is an RFC 3339 time, e.g. 2026-01-31T00:00:00Z")
	}
	return t, nil
}

// userIDParam reads and checks the {id} of an admin user route.
func (s *Server) userIDParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := mux.Vars(r)["id"]
	if _, err := uuid.Parse(id); err != nil {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidUserID", "invalid_request", "the user id is not a UUID"))
		return "", false
	}
	return id, true
}

// adminGetUser is GET /admin/users/{id}: the user with its identities and
// sessions, from the read models.
func (s *Server) adminGetUser(w http.ResponseWriter, r *http.Request) {
	id, ok := s.userIDParam(w, r)
	if !ok {
		return
	}
	d, err := s.Reads.GetUser(r.Context(), id)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if d.Identities == nil {
		d.Identities = []projections.IdentityRow{}
	}
	if d.Sessions == nil {
		d.Sessions = []projections.SessionRow{}
	}
	httpx.WriteJSON(w, http.StatusOK, d)
}

type adminReason struct {
	Reason string `json:"reason"`
}

// decodeOptionalJSON decodes a JSON body when there is one.
func decodeOptionalJSON(r *http.Request, v any) error {
	if r.ContentLength == 0 && r.Header.Get("Content-Type") == "" {
		return nil
	}
	return httpx.DecodeJSON(r, v)
}

// adminUserState is the answer to an operator command on a user: its state
// as the log has it right after the command.
type adminUserState struct {
	Sub      string `json:"sub"`
	Disabled bool   `json:"disabled"`
	Deleted  bool   `json:"deleted"`
}

// adminUserCommand runs disable, enable or delete; a user that does not
// exist (or was deleted) is 404.
func (s *Server) adminUserCommand(run func(r *http.Request, id, reason string, sessions []string) (domain.User, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, ok := s.userIDParam(w, r)
		if !ok {
			return
		}
		var body adminReason
		if err := decodeOptionalJSON(r, &body); err != nil {
			s.WriteAPIError(w, r, err)
			return
		}
		sessions, err := s.Reads.LiveSessionIDs(r.Context(), id, s.Service.Now())
		if err != nil {
			s.WriteAPIError(w, r, err)
			return
		}
		u, err := run(r, id, body.Reason, sessions)
		if err != nil {
			s.WriteAPIError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, adminUserState{Sub: id, Disabled: u.Disabled(), Deleted: u.Deleted()})
	}
}

func (s *Server) adminDisableUser() http.HandlerFunc {
	return s.adminUserCommand(func(r *http.Request, id, reason string, sessions []string) (domain.User, error) {
		return s.Service.DisableUser(r.Context(), id, reason, sessions, httpx.Meta(r))
	})
}

func (s *Server) adminEnableUser() http.HandlerFunc {
	return s.adminUserCommand(func(r *http.Request, id, _ string, _ []string) (domain.User, error) {
		return s.Service.EnableUser(r.Context(), id, httpx.Meta(r))
	})
}

func (s *Server) adminDeleteUser() http.HandlerFunc {
	return s.adminUserCommand(func(r *http.Request, id, reason string, sessions []string) (domain.User, error) {
		return s.Service.DeleteUser(r.Context(), id, reason, sessions, httpx.Meta(r))
	})
}

// adminRevokeSession is POST /admin/users/{id}/sessions/{sid}/revoke.
func (s *Server) adminRevokeSession(w http.ResponseWriter, r *http.Request) {
	id, ok := s.userIDParam(w, r)
	if !ok {
		return
	}
	sid := mux.Vars(r)["sid"]
	if _, err := uuid.Parse(sid); err != nil {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidSessionID", "invalid_request", "the session id is not a UUID"))
		return
	}
	if err := s.Service.RevokeUserSession(r.Context(), id, sid, httpx.Meta(r)); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
