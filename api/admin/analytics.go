package admin

import (
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"
)

// adminFunnel is GET /admin/analytics/funnel: the guest funnel of the
// guests created in [from, to) (dates, UTC; default the last 30 days), of
// one client or all.
func (s *Server) adminFunnel(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	day := func(name string, def time.Time) (time.Time, bool) {
		v := q.Get(name)
		if v == "" {
			return def, true
		}
		t, err := time.Parse(time.DateOnly, v)
		return t, err == nil
	}
	today := s.Service.Now().UTC().Truncate(24 * time.Hour)
	to, ok1 := day("to", today.Add(24*time.Hour))
	from, ok2 := day("from", to.Add(-30*24*time.Hour))
	if !ok1 || !ok2 || !from.Before(to) || to.Sub(from) > 366*24*time.Hour {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidDateRange", "invalid_request",
			"from and to are dates (YYYY-MM-DD, UTC), from before to (exclusive), at most 366 days apart"))
		return
	}
	rep, err := s.Reads.Funnel(r.Context(), from, to, q.Get("client_id"))
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, rep)
}
