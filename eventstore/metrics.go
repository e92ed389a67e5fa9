package eventstore

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

var (
	appendSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "idstream_eventstore_append_seconds",
		Help:    "Time from Append to the answer its caller got, by what the caller saw: ok, conflict, duplicate, unavailable (an error it would pass on as 503), canceled (it went away first, e.g. its client disconnected; the write may have landed), error.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"outcome"})
	batchSize = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "idstream_eventstore_batch_messages",
		Help:    "Messages per grouped atomic batch.",
		Buckets: prometheus.ExponentialBuckets(2, 2, 10),
	})
	groupRetries = promauto.NewCounter(prometheus.CounterOpts{
		Name: "idstream_eventstore_group_retries_total",
		Help: "Grouped batches rejected as a whole and committed again in halves, down to the command at fault.",
	})
	commits = promauto.NewCounter(prometheus.CounterOpts{
		Name: "idstream_eventstore_commits_total",
		Help: "Writes sent to the stream: atomic batches and one-message publishes, each acknowledged after its fsync.",
	})
	heldConflicts = promauto.NewCounter(prometheus.CounterOpts{
		Name: "idstream_eventstore_held_conflicts_total",
		Help: "Commands answered conflict without being sent: held back from a batch in which another command wrote one of their subjects, and that command was written.",
	})
	leaderChecked = promauto.NewCounter(prometheus.CounterOpts{
		Name: "idstream_eventstore_leader_checked_loads_total",
		Help: "Loads re-checked with the stream leader after a miss on a replica.",
	})
	sweeps = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "idstream_kv_sweeps_total",
		Help: "Spent keys of a memory bucket (codes, challenges) purged after their delete marker was written, by bucket and outcome: ok, failed, skipped (too many in flight; the marker stays until the bucket's TTL).",
	}, []string{"bucket", "outcome"})
	loadSeconds = promauto.NewHistogram(prometheus.HistogramOpts{
		Name:    "idstream_eventstore_load_seconds",
		Help:    "Time to load one aggregate's events.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 14),
	})
)

// observeAppend records an append by what its caller saw: an append whose
// caller gave up (its context canceled: the client hung up, as every load
// generator's clients do when a run ends) is "canceled", not "unavailable",
// since nobody received an error.
func observeAppend(ctx context.Context, start time.Time, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(ctx.Err(), context.Canceled):
		outcome = "canceled"
	case errors.Is(err, ErrConflict):
		outcome = "conflict"
	case errors.Is(err, ErrDuplicate):
		outcome = "duplicate"
	case errors.Is(err, ErrUnavailable):
		outcome = "unavailable"
	default:
		outcome = "error"
	}
	appendSeconds.WithLabelValues(outcome).Observe(time.Since(start).Seconds())
}
