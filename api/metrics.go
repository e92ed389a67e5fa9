package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"

	"github.com/idstream/idstream/api/httpx"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics tell an outsider a good deal (traffic, user and session counts,
// errors, the Go runtime), so outside development mode they are not open to
// the public: they are served on a listener of their own (metrics_addr, for
// a private network), or on the main listener to holders of metrics_token.

var errMetricsToken = httpx.NewError(401, "Unauthenticated", "InvalidToken", "invalid_token",
	"metrics need Authorization: Bearer <IDSTREAM_METRICS_TOKEN> (or IDSTREAM_METRICS_ADDR for a listener of their own)")

// metrics is GET /metrics on the main listener.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.MetricsAddr != "" {
		s.WriteAPIError(w, r, httpx.NewError(404, "NotFound", "NotFound", "invalid_request", "metrics are served on their own listener"))
		return
	}
	if s.cfg.MetricsToken == "" && s.cfg.Dev {
		promhttp.Handler().ServeHTTP(w, r)
		return
	}
	s.withMetricsToken(promhttp.Handler()).ServeHTTP(w, r)
}

// MetricsHandler serves GET /metrics alone, for the metrics listener; the
// token is required there too when one is configured.
func (s *Server) MetricsHandler() http.Handler {
	h := promhttp.Handler()
	if s.cfg.MetricsToken != "" {
		h = s.withMetricsToken(h)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return mux
}

// withMetricsToken requires the metrics token, compared in constant time
// (of hashes, so not even its length shows). With no token configured
// nothing matches.
func (s *Server) withMetricsToken(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.cfg.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(httpx.Bearer(r)))
		if s.cfg.MetricsToken == "" || subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			s.WriteAPIError(w, r, errMetricsToken)
			return
		}
		next.ServeHTTP(w, r)
	})
}
