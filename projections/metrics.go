package projections

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	projectionPosition = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "idstream_projection_position",
		Help: "Stream sequence of the last event a projection applied on this node.",
	}, []string{"projection"})
	projectionEvents = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "idstream_projection_events_total",
		Help: "Events applied by a projection on this node.",
	}, []string{"projection"})
	projectionLagSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "idstream_projection_lag_seconds",
		Help:    "Time from an event's occurrence to its row being committed.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	}, []string{"projection"})
	projectionFailures = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "idstream_projection_failures_total",
		Help: "Events that stopped a projection.",
	}, []string{"projection"})
	projectionGaps = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "idstream_projection_delivery_gaps_total",
		Help: "Deliveries that skipped an event; the projection restarted from its checkpoint.",
	}, []string{"projection"})
	projectionRebuilds = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "idstream_projection_rebuilds_total",
		Help: "Read models rebuilt from the log at start because they held events the log no longer has (lost, unacknowledged, at a power cut).",
	}, []string{"projection"})
	projectionState = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "idstream_projection_state",
		Help: "1 for the state this node's instance of a projection is in.",
	}, []string{"projection", "state"})
)

func observeBatch(name string, n int, evs []decoded, _ time.Time) {
	if n == 0 {
		return
	}
	last := evs[len(evs)-1].rec
	projectionPosition.WithLabelValues(name).Set(float64(last.Sequence))
	projectionEvents.WithLabelValues(name).Add(float64(n))
	projectionLagSeconds.WithLabelValues(name).Observe(time.Since(last.OccurredAt).Seconds())
}
