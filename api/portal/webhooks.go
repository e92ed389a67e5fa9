package portal

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/idstream/idstream/api/httpx"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/workers/webhooks"
)

// The portal's webhook pages (issue 21): endpoints with their state, one
// endpoint with its last errors and dead letters, replay and replay all.

type webhooksData struct {
	Endpoints   []webhooks.Status
	Endpoint    *webhooks.Status
	DeadLetters []webhooks.DeadLetter
	// Secret is set on the page that answers a creation, only there.
	Secret   string
	Problems []string
}

func (s *Server) portalWebhooks(w http.ResponseWriter, r *http.Request) {
	var d webhooksData
	if r.Method == http.MethodPost {
		split := func(v string) *[]string { f := strings.Fields(v); return &f }
		u, start := r.PostForm.Get("url"), r.PostForm.Get("start_from")
		spec := webhooks.Spec{URL: &u, EventTypes: split(r.PostForm.Get("event_types")), ClientIDs: split(r.PostForm.Get("client_ids")), StartFrom: &start}
		st, secret, err := s.Webhooks.Create(r.Context(), spec)
		if err != nil {
			d.Problems = append(d.Problems, "The endpoint was not created: "+httpx.Classify(err).Message)
		} else {
			d.Endpoint, d.Secret = &st, secret
			s.renderPortal(w, r, http.StatusCreated, "webhooks", portalPage{Title: "Webhook endpoint created", Section: "webhooks", Data: &d})
			return
		}
	}
	var err error
	if d.Endpoints, err = s.Webhooks.List(r.Context()); err != nil {
		d.Problems = append(d.Problems, "Endpoints are not available: "+err.Error())
	}
	status := http.StatusOK
	if len(d.Problems) > 0 && r.Method == http.MethodPost {
		status = http.StatusBadRequest
	}
	s.renderPortal(w, r, status, "webhooks", portalPage{Title: "Webhooks", Section: "webhooks", Data: &d})
}

func (s *Server) portalWebhook(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	st, err := s.Webhooks.Get(r.Context(), id)
	if err != nil {
		e := httpx.Classify(err)
		s.portalMessage(w, r, e.Status, "No such endpoint", e.Message)
		return
	}
	d := webhooksData{Endpoint: &st}
	if d.DeadLetters, _, err = s.Webhooks.DeadLetters(r.Context(), id, 0, 200); err != nil {
		d.Problems = append(d.Problems, "Dead letters are not available: "+err.Error())
	}
	s.renderPortal(w, r, http.StatusOK, "webhooks", portalPage{Title: "Webhook endpoint", Section: "webhooks", Data: &d})
}

func (s *Server) portalWebhookState(w http.ResponseWriter, r *http.Request) {
	id, state := mux.Vars(r)["id"], r.PostForm.Get("state")
	if _, err := s.Webhooks.Update(r.Context(), id, webhooks.Spec{State: &state}); err != nil {
		e := httpx.Classify(err)
		s.portalMessage(w, r, e.Status, "The endpoint was not changed", e.Message)
		return
	}
	http.Redirect(w, r, "/portal/webhooks/"+id, http.StatusSeeOther)
}

func (s *Server) portalWebhookReplay(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	var err error
	if dl, ok := mux.Vars(r)["dl"]; ok {
		n, perr := strconv.ParseUint(dl, 10, 64)
		if perr != nil {
			err = webhooks.ErrNoSuchDeadLetter
		} else {
			err = s.Webhooks.Replay(r.Context(), id, n)
		}
	} else {
		_, err = s.Webhooks.ReplayAll(r.Context(), id)
	}
	if err != nil {
		e := httpx.Classify(err)
		s.portalMessage(w, r, e.Status, "Not replayed", e.Message)
		return
	}
	http.Redirect(w, r, "/portal/webhooks/"+id, http.StatusSeeOther)
}
