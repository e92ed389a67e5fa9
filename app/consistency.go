package app

import (
	"context"
	"errors"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// staleMiss reports an outcome a read from a lagging replica can cause: the
// session, token or user is not there yet, or retries kept conflicting.
func staleMiss(err error) bool {
	return errors.Is(err, domain.ErrInvalidToken) || errors.Is(err, domain.ErrSessionNotFound) ||
		errors.Is(err, domain.ErrUserNotFound) || errors.Is(err, ErrBusy)
}

// currentRead runs a read-then-decide operation on replica reads and, when
// the stream is replicated and the outcome is a miss a lagging replica could
// explain, once more with reads checked against the stream leader. A token
// issued a moment ago on another node is then accepted, not refused. Only
// operations safe to repeat (no single-use input spent) go through here.
func currentRead[T any](ctx context.Context, s *core, op func(context.Context) (T, error)) (T, error) {
	v, err := op(ctx)
	if err != nil && staleMiss(err) && s.replicated() {
		return op(eventstore.WithLeaderCheck(ctx))
	}
	return v, err
}

func (s *core) replicated() bool {
	r, ok := s.store.(interface{ Replicated() bool })
	return ok && r.Replicated()
}
