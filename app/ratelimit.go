package app

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/domain"
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

func limitOf(r domain.RateLimitSetting) Limit { return Limit{Burst: r.Burst, Per: r.Per.Duration()} }

// AllowAnonymousSignup checks the guest sign-up rate of a client IP.
func (s *Service) AllowAnonymousSignup(ctx context.Context, ip string) error {
	return s.fastLimiter.Allow(ctx, "signup:ip:"+addressKey(ip), limitOf(s.Settings().RateLimits.AnonymousSignup), s.clock.Now())
}

// AllowChallenge checks the challenge rate of a client IP.
func (s *Service) AllowChallenge(ctx context.Context, ip string) error {
	return s.fastLimiter.Allow(ctx, "challenge:ip:"+addressKey(ip), limitOf(s.Settings().RateLimits.Challenge), s.clock.Now())
}

// Limiter checks request rates per key, shared by every node.
type Limiter interface {
	// Allow records one request under key if the limit allows it.
	Allow(ctx context.Context, key string, l Limit, now time.Time) error
	// Check reports whether Allow would admit a request now, recording
	// nothing.
	Check(ctx context.Context, key string, l Limit, now time.Time) error
}

// gcraWait is how long a request at now must wait under a bucket whose
// theoretical arrival time is tat (GCRA); 0 or less admits it.
func gcraWait(tat, now time.Time, l Limit) time.Duration {
	emission := l.Per / time.Duration(l.Burst)
	return maxTime(tat, now).Add(emission).Sub(now) - emission*time.Duration(l.Burst)
}

func limitedFor(wait time.Duration) error {
	if wait > 0 {
		return &RateLimitedError{RetryAfter: max(wait, time.Second)}
	}
	return nil
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

// Check implements Limiter.
func (p PGLimiter) Check(ctx context.Context, key string, l Limit, now time.Time) error {
	if !l.Enabled() {
		return nil
	}
	var tat time.Time
	err := p.Pool.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, key).Scan(&tat)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: rate limit: %v", eventstore.ErrUnavailable, err)
	}
	return limitedFor(gcraWait(tat, now, l))
}

// SyncedLimiter decides locally and settles with the shared buckets in the
// background, so a check costs no round trip. Each node keeps, per key, the
// bucket as PostgreSQL last reported it plus the requests it admitted since;
// every interval it adds those to the shared bucket in one batch and reads
// back the total, which includes the other nodes' requests. Nodes together
// can over-admit by what they admit within one interval; the shared budget
// is otherwise exact. PostgreSQL remains the state: a restarted node starts
// from it.
type SyncedLimiter struct {
	pool     *pgxpool.Pool
	interval time.Duration

	mu      sync.Mutex
	buckets map[string]*localBucket
}

type localBucket struct {
	limit    Limit
	tat      time.Time // shared tat at the last sync
	pending  int       // admitted here since
	inflight int       // admitted here, being added to the shared bucket
	lastUsed time.Time
}

// NewSyncedLimiter makes a limiter that syncs every interval once Run runs.
func NewSyncedLimiter(pool *pgxpool.Pool, interval time.Duration) *SyncedLimiter {
	return &SyncedLimiter{pool: pool, interval: interval, buckets: map[string]*localBucket{}}
}

// Allow implements Limiter.
func (l *SyncedLimiter) Allow(ctx context.Context, key string, lim Limit, now time.Time) error {
	if !lim.Enabled() {
		return nil
	}
	emission := lim.Per / time.Duration(lim.Burst)
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		// First sight of this key on this node: start from the shared
		// bucket (one round trip), not from an empty one.
		l.mu.Unlock()
		tat := now
		err := l.pool.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, key).Scan(&tat)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("%w: rate limit: %v", eventstore.ErrUnavailable, err)
		}
		l.mu.Lock()
		if b = l.buckets[key]; b == nil {
			b = &localBucket{limit: lim, tat: tat}
			l.buckets[key] = b
		}
	}
	defer l.mu.Unlock()
	b.lastUsed = now
	tat := b.tat
	if tat.Before(now) {
		tat = now
	}
	next := tat.Add(time.Duration(b.pending+b.inflight+1) * emission)
	if wait := next.Sub(now) - emission*time.Duration(lim.Burst); wait > 0 {
		return &RateLimitedError{RetryAfter: max(wait, time.Second)}
	}
	b.pending++
	return nil
}

// Check implements Limiter, from what this node knows.
func (l *SyncedLimiter) Check(ctx context.Context, key string, lim Limit, now time.Time) error {
	if !lim.Enabled() {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		// Not seen here: the shared bucket is what Allow would start from.
		l.mu.Unlock()
		err := PGLimiter{Pool: l.pool}.Check(ctx, key, lim, now)
		l.mu.Lock()
		return err
	}
	emission := lim.Per / time.Duration(lim.Burst)
	next := maxTime(b.tat, now).Add(time.Duration(b.pending+b.inflight+1) * emission)
	return limitedFor(next.Sub(now) - emission*time.Duration(lim.Burst))
}

// Run syncs until ctx ends (and once more on the way out).
func (l *SyncedLimiter) Run(ctx context.Context, clk interface{ Now() time.Time }) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = l.Flush(context.WithoutCancel(ctx), clk.Now())
			return
		case <-t.C:
			_ = l.Flush(ctx, clk.Now())
		}
	}
}

// Flush adds what this node admitted to the shared buckets and reads back
// their state, in one round trip. Buckets unused for two periods are dropped.
func (l *SyncedLimiter) Flush(ctx context.Context, now time.Time) error {
	type item struct {
		key     string
		pending int
		b       *localBucket
	}
	l.mu.Lock()
	var items []item
	for k, b := range l.buckets {
		if b.pending == 0 && now.Sub(b.lastUsed) > 2*b.limit.Per {
			delete(l.buckets, k)
			continue
		}
		items = append(items, item{k, b.pending, b})
		// Until the shared bucket answers, these admissions still count.
		b.inflight += b.pending
		b.pending = 0
	}
	l.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, it := range items {
		emission := it.b.limit.Per / time.Duration(it.b.limit.Burst)
		batch.Queue(`INSERT INTO rate_buckets (key, tat) VALUES ($1, $2::timestamptz + $3::interval)
			ON CONFLICT (key) DO UPDATE SET tat = greatest(rate_buckets.tat, $2) + $3
			RETURNING tat`, it.key, now, time.Duration(it.pending)*emission)
	}
	res := l.pool.SendBatch(ctx, batch)
	defer res.Close()
	var firstErr error
	for _, it := range items {
		var tat time.Time
		if err := res.QueryRow().Scan(&tat); err != nil {
			// Not settled: keep the admissions for the next sync.
			l.mu.Lock()
			it.b.pending += it.pending
			it.b.inflight -= it.pending
			l.mu.Unlock()
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		l.mu.Lock()
		it.b.tat = tat
		it.b.inflight -= it.pending
		l.mu.Unlock()
	}
	return firstErr
}
