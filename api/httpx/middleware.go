package httpx

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "idstream_http_request_duration_seconds",
	Help:    "HTTP request latency by route and status.",
	Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
}, []string{"route", "method", "status"})

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Chain is the middleware chain in front of the router: request id,
// recovery, Before (CORS), body limit, routing, and an access log line with
// no query string or token.
type Chain struct {
	*Base
	Router *mux.Router
	// Before may answer a request before routing (it reports whether it
	// did).
	Before       func(w http.ResponseWriter, r *http.Request) bool
	MaxBodyBytes int64
}

// ServeHTTP runs the middleware chain: request id, recovery, CORS, body
// limit, routing, and an access log line with no query string or token.
func (s *Chain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	id := r.Header.Get("X-Request-Id")
	if id == "" || len(id) > 64 {
		id = uuid.NewString()
	}
	w.Header().Set("X-Request-Id", id)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	r = r.WithContext(context.WithValue(r.Context(), requestIDKey, id))
	rec := &statusRecorder{ResponseWriter: w}
	route := "unmatched"
	var match mux.RouteMatch
	if s.Router.Match(r, &match) && match.Route != nil {
		if t, err := match.Route.GetPathTemplate(); err == nil {
			route = t
		}
	}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("panic in handler", "request_id", id, "route", route, "panic", fmt.Sprint(p))
			if rec.status == 0 {
				s.WriteAPIError(rec, r, errors.New("panic"))
			}
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		d := time.Since(start)
		httpDuration.WithLabelValues(route, r.Method, strconv.Itoa(status)).Observe(d.Seconds())
		if route != "/metrics" && route != "/healthz" {
			s.Log.Debug("request", "request_id", id, "method", r.Method, "route", route, "status", status, "duration_ms", float64(d.Microseconds())/1000)
		}
	}()
	if s.Before != nil && s.Before(rec, r) {
		return
	}
	r.Body = http.MaxBytesReader(rec, r.Body, s.MaxBodyBytes)
	s.Router.ServeHTTP(rec, r)
}
