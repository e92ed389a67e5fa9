package api

import (
	"context"
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"
)

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	httpx.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

type projectionReadiness struct {
	Name     string `json:"name"`
	Position uint64 `json:"position"`
	Lag      uint64 `json:"lag"`
	State    string `json:"state"`
}

// readyz reports ready when NATS and PostgreSQL answer and every projection
// is running within the lag bound.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	body := map[string]any{}
	ready := true
	if ok, state := s.NATSState(); !ok {
		ready = false
		body["nats"] = state
	} else {
		body["nats"] = "ok"
	}
	if err := s.Reads.Ping(ctx); err != nil {
		ready = false
		body["postgres"] = "unreachable"
	} else {
		body["postgres"] = "ok"
	}
	if last, err := s.Store.LastSequence(ctx); err != nil {
		ready = false
		body["log"] = "unreachable"
	} else if ready {
		cps, err := s.Reads.Checkpoints(ctx)
		if err != nil {
			ready = false
		} else {
			var ps []projectionReadiness
			for _, c := range cps {
				p := projectionReadiness{Name: c.Name, Position: c.Position, State: c.State}
				if last > p.Position {
					p.Lag = last - p.Position
				}
				if p.State != "running" || p.Lag > s.ReadyLagBound {
					ready = false
				}
				ps = append(ps, p)
			}
			if len(ps) == 0 {
				ready = false
			}
			body["projections"] = ps
		}
	}
	status := http.StatusOK
	body["status"] = "ready"
	if !ready {
		status = http.StatusServiceUnavailable
		body["status"] = "not ready"
	}
	httpx.WriteJSON(w, status, body)
}
