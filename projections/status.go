package projections

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/eventstore"
)

// Failure is an event that stopped a projection.
type Failure struct {
	Sequence  uint64    `json:"sequence"`
	Subject   string    `json:"subject"`
	EventType string    `json:"event_type"`
	EventID   string    `json:"event_id"`
	Error     string    `json:"error"`
	FailedAt  time.Time `json:"failed_at"`
}

// Status is one projection's position against the log.
type Status struct {
	Name         string `json:"name"`
	Position     uint64 `json:"position"`
	LastSequence uint64 `json:"stream_last_sequence"`
	LagEvents    uint64 `json:"lag_events"`
	// LagSeconds is the age of the oldest event not yet applied (0 when
	// caught up).
	LagSeconds  float64    `json:"lag_seconds"`
	State       string     `json:"state"`
	LastEventAt *time.Time `json:"last_event_at,omitempty"`
	Failures    []Failure  `json:"failures,omitempty"`
}

// Reader is what status needs from the log.
type Reader interface {
	LastSequence(ctx context.Context) (uint64, error)
	Get(ctx context.Context, seq uint64) (eventstore.Record, error)
}

// Statuses reports every projection that has a checkpoint, with its last
// ten failures.
func Statuses(ctx context.Context, pool *pgxpool.Pool, log Reader, now time.Time) ([]Status, error) {
	last, err := log.LastSequence(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := pool.Query(ctx, `SELECT name, position, state, last_event_at FROM projection_checkpoints ORDER BY name`)
	if err != nil {
		return nil, err
	}
	var out []Status
	for rows.Next() {
		var st Status
		var pos int64
		if err := rows.Scan(&st.Name, &pos, &st.State, &st.LastEventAt); err != nil {
			rows.Close()
			return nil, err
		}
		st.Position, st.LastSequence = uint64(pos), last
		if last > st.Position {
			st.LagEvents = last - st.Position
		}
		out = append(out, st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for i := range out {
		st := &out[i]
		if st.LagEvents > 0 {
			if rec, err := log.Get(ctx, st.Position+1); err == nil {
				st.LagSeconds = now.Sub(rec.OccurredAt).Seconds()
			}
		}
		frows, err := pool.Query(ctx, `SELECT sequence, subject, event_type, event_id, error, failed_at FROM projection_failures
			WHERE projection = $1 ORDER BY id DESC LIMIT 10`, st.Name)
		if err != nil {
			return nil, err
		}
		for frows.Next() {
			var f Failure
			var seq int64
			if err := frows.Scan(&seq, &f.Subject, &f.EventType, &f.EventID, &f.Error, &f.FailedAt); err != nil {
				frows.Close()
				return nil, err
			}
			f.Sequence = uint64(seq)
			st.Failures = append(st.Failures, f)
		}
		frows.Close()
	}
	return out, nil
}
