package eventstore

import (
	"context"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// OpenHeld opens a store whose committers start only when start is called,
// so that a test can queue appends first and have them grouped at once.
func OpenHeld(ctx context.Context, nc *nats.Conn, opts Options) (s *Store, queued func() int, start func(), err error) {
	s, err = open(ctx, nc, opts)
	if err != nil {
		return nil, nil, nil, err
	}
	return s, func() int { return len(s.queue) }, s.startCommitters, nil
}

// GroupCounters are the group retries, held conflicts and commits counted
// so far.
func GroupCounters() (retries, held, sent float64) {
	return counterValue(groupRetries), counterValue(heldConflicts), counterValue(commits)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// IncompleteBatch and Classify expose the error handling of commits.
var (
	IncompleteBatch = incompleteBatch
	Classify        = classify
)
