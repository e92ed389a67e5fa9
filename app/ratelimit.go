package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/config"
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

// Limit is a rate: Burst requests at once, refilled at Per / Burst each.
type Limit struct {
	Burst int
	Per   time.Duration
}

// Enabled reports whether the limit applies (Burst 0 turns it off).
func (l Limit) Enabled() bool { return l.Burst > 0 && l.Per > 0 }

func limitOf(r config.RateLimit) Limit { return Limit{Burst: *r.Burst, Per: r.Per.D()} }

// AllowAnonymousSignup checks the guest sign-up rate of a client IP.
func (s *Service) AllowAnonymousSignup(ctx context.Context, ip string) error {
	return s.limiter.Allow(ctx, "signup:ip:"+ip, limitOf(s.cfg.RateLimits.AnonymousSignup), s.clock.Now())
}

// AllowChallenge checks the challenge rate of a client IP.
func (s *Service) AllowChallenge(ctx context.Context, ip string) error {
	return s.limiter.Allow(ctx, "challenge:ip:"+ip, limitOf(s.cfg.RateLimits.Challenge), s.clock.Now())
}

// Limiter checks request rates per key, shared by every node.
type Limiter interface {
	// Allow records one request under key if the limit allows it.
	Allow(ctx context.Context, key string, l Limit, now time.Time) error
}

// PGLimiter keeps token buckets (GCRA) in PostgreSQL: one function call per
// check, row-locked, so every node shares one budget.
type PGLimiter struct{ Pool *pgxpool.Pool }

// Allow implements Limiter.
func (p PGLimiter) Allow(ctx context.Context, key string, l Limit, now time.Time) error {
	if !l.Enabled() {
		return nil
	}
	emission := l.Per / time.Duration(l.Burst)
	var allowed bool
	var retry time.Duration
	err := p.Pool.QueryRow(ctx, `SELECT allowed, retry_after FROM idstream_rate_check($1, $2, $3, $4)`,
		key, now, emission, l.Burst).Scan(&allowed, &retry)
	if err != nil {
		return fmt.Errorf("%w: rate limit: %v", eventstore.ErrUnavailable, err)
	}
	if !allowed {
		return &RateLimitedError{RetryAfter: max(retry, time.Second)}
	}
	return nil
}
