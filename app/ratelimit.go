package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/eventstore"
)

// RateLimitedError says an attempt was refused and when to try again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many attempts; retry in %s", e.RetryAfter.Round(time.Second))
}

// ErrRateLimited matches any *RateLimitedError with errors.Is.
var ErrRateLimited = errors.New("rate limited")

// Is implements errors.Is.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Limiter counts attempts per key in fixed windows shared by every node.
type Limiter interface {
	// Allow records one attempt under key and reports whether it is within
	// limit attempts per window.
	Allow(ctx context.Context, key string, limit int, window time.Duration, now time.Time) error
}

// PGLimiter keeps the counters in PostgreSQL: one upsert per attempt.
type PGLimiter struct{ Pool *pgxpool.Pool }

// Allow implements Limiter.
func (l PGLimiter) Allow(ctx context.Context, key string, limit int, window time.Duration, now time.Time) error {
	var count int
	var start time.Time
	err := l.Pool.QueryRow(ctx, `
		INSERT INTO rate_limits (key, window_start, count) VALUES ($1, $2, 1)
		ON CONFLICT (key) DO UPDATE SET
			count = CASE WHEN rate_limits.window_start <= $2 - $3::interval THEN 1 ELSE rate_limits.count + 1 END,
			window_start = CASE WHEN rate_limits.window_start <= $2 - $3::interval THEN $2 ELSE rate_limits.window_start END
		RETURNING count, window_start`, key, now, window).Scan(&count, &start)
	if err != nil {
		return fmt.Errorf("%w: rate limit: %v", eventstore.ErrUnavailable, err)
	}
	if count > limit {
		return &RateLimitedError{RetryAfter: max(start.Add(window).Sub(now), time.Second)}
	}
	return nil
}
