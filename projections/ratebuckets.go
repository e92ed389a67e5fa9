package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// RateLimit is a token bucket: Burst requests at once, refilled at
// Per / Burst each; Burst 0 (or Per 0) turns it off.
type RateLimit struct {
	Burst int
	Per   time.Duration
}

func (l RateLimit) enabled() bool { return l.Burst > 0 && l.Per > 0 }

// The rate buckets (GCRA, table rate_buckets) answer how long a request
// must wait: 0 admits it.

// gcraWait is how long a request at now must wait under a bucket whose
// theoretical arrival time is tat (GCRA); 0 or less admits it.
func gcraWait(tat, now time.Time, l RateLimit) time.Duration {
	emission := l.Per / time.Duration(l.Burst)
	return laterOf(tat, now).Add(emission).Sub(now) - emission*time.Duration(l.Burst)
}

// RateBuckets keeps token buckets (GCRA) in PostgreSQL: one function call
// per check, row-locked, so every node shares one budget exactly.
type RateBuckets struct{ Pool *pgxpool.Pool }

// Allow records one request under key if the bucket admits it now, and
// returns 0; else how long to wait.
func (p RateBuckets) Allow(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (time.Duration, error) {
	l := RateLimit{Burst: burst, Per: per}
	if !l.enabled() {
		return 0, nil
	}
	emission := l.Per / time.Duration(l.Burst)
	var allowed bool
	var retry time.Duration
	err := p.Pool.QueryRow(ctx, `SELECT allowed, retry_after FROM idstream_rate_check($1, $2, $3, $4)`,
		key, now, emission, l.Burst).Scan(&allowed, &retry)
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	if !allowed {
		return max(retry, time.Nanosecond), nil
	}
	return 0, nil
}

// Refund gives back one request Allow recorded under key: the bucket's
// theoretical arrival time moves back by one emission, never before now (a
// full bucket).
func (p RateBuckets) Refund(ctx context.Context, key string, burst int, per time.Duration, now time.Time) error {
	l := RateLimit{Burst: burst, Per: per}
	if !l.enabled() {
		return nil
	}
	emission := l.Per / time.Duration(l.Burst)
	if _, err := p.Pool.Exec(ctx, `UPDATE rate_buckets SET tat = greatest($2::timestamptz, tat - $3::interval) WHERE key = $1`, key, now, emission); err != nil {
		return fmt.Errorf("rate limit: %w", err)
	}
	return nil
}

// Check returns what Allow would, recording nothing.
func (p RateBuckets) Check(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (time.Duration, error) {
	l := RateLimit{Burst: burst, Per: per}
	if !l.enabled() {
		return 0, nil
	}
	var tat time.Time
	err := p.Pool.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, key).Scan(&tat)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("rate limit: %w", err)
	}
	return max(gcraWait(tat, now, l), 0), nil
}

// SyncedRateBuckets decide locally and settles with the shared buckets in the
// background, so a check costs no round trip. Each node keeps, per key, the
// bucket as PostgreSQL last reported it plus the requests it admitted since;
// every interval it adds those to the shared bucket in one batch and reads
// back the total, which includes the other nodes' requests (and, for a key
// used in the last two intervals, reads it back even if nothing was
// admitted). Any other key is not synced (the cost follows the requests,
// not the number of keys): its next request reads the shared bucket again
// first. Nodes together can over-admit by what they admit
// within one interval; the shared budget is otherwise exact. PostgreSQL
// remains the state: a restarted node starts from it. Admissions count at
// the limit they were made under, so a limit changed in the settings holds
// at once for keys in use.
type SyncedRateBuckets struct {
	pool     *pgxpool.Pool
	interval time.Duration

	mu      sync.Mutex
	buckets map[string]*localBucket
}

type localBucket struct {
	limit    RateLimit     // the latest admission's
	tat      time.Time     // shared tat at the last sync
	synced   time.Time     // when tat was read (the caller's clock)
	gen      uint64        // counts the times tat was set
	pending  time.Duration // emission intervals admitted here since
	inflight time.Duration // admitted here, being added to the shared bucket
	lastUsed time.Time
}

// stale: no bucket, or one with nothing admitted here and not read from
// the shared bucket within the last interval.
func (b *localBucket) stale(now time.Time, interval time.Duration) bool {
	return b == nil || (b.pending == 0 && b.inflight == 0 && now.Sub(b.synced) >= interval)
}

// NewSyncedRateBuckets makes buckets that sync every interval once Run runs.
func NewSyncedRateBuckets(pool *pgxpool.Pool, interval time.Duration) *SyncedRateBuckets {
	return &SyncedRateBuckets{pool: pool, interval: interval, buckets: map[string]*localBucket{}}
}

// Allow is RateBuckets.Allow decided on this node.
func (l *SyncedRateBuckets) Allow(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (time.Duration, error) {
	return l.allow(ctx, key, burst, per, now, true)
}

// AllowLoose is Allow without reading the shared bucket first: a key this
// node does not hold starts full, and one not synced lately from what the
// node last knew; the next sync (within an interval) adds what it admitted
// and reads back the total. So a key's first requests on a node cost no
// round trip, and each node can over-admit a key by what it admits in one
// interval after a while without it (at most a burst). For limits that
// bound abuse over time, keyed by what a request proved it holds (a
// session), where the budget need not be exact.
func (l *SyncedRateBuckets) AllowLoose(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (time.Duration, error) {
	return l.allow(ctx, key, burst, per, now, false)
}

func (l *SyncedRateBuckets) allow(ctx context.Context, key string, burst int, per time.Duration, now time.Time, exact bool) (time.Duration, error) {
	lim := RateLimit{Burst: burst, Per: per}
	if !lim.enabled() {
		return 0, nil
	}
	emission := lim.Per / time.Duration(lim.Burst)
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil && !exact {
		b = &localBucket{tat: now, synced: now, gen: 1}
		l.buckets[key] = b
	}
	if exact && b.stale(now, l.interval) {
		// First sight of this key on this node, or a bucket not synced
		// within the last interval (other nodes may have spent it): start
		// from the shared bucket (one round trip).
		orig, gen := b, uint64(0)
		if b != nil {
			gen = b.gen
		}
		l.mu.Unlock()
		tat := now
		err := l.pool.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, key).Scan(&tat)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return 0, fmt.Errorf("rate limit: %w", err)
		}
		l.mu.Lock()
		if b = l.buckets[key]; b == nil {
			b = &localBucket{}
			l.buckets[key] = b
		}
		// Unless something fresher arrived meanwhile: a sync of the same
		// bucket, or another request's bucket made after a sync dropped
		// this one.
		if (b == orig && b.gen == gen) || (b != orig && b.gen == 0) {
			b.tat, b.synced = tat, now
			b.gen++
		}
	}
	defer l.mu.Unlock()
	b.limit, b.lastUsed = lim, now
	next := laterOf(b.tat, now).Add(b.pending + b.inflight + emission)
	if wait := next.Sub(now) - emission*time.Duration(lim.Burst); wait > 0 {
		return wait, nil
	}
	b.pending += emission
	return 0, nil
}

// Check returns what Allow would, from what this node knows, recording
// nothing.
func (l *SyncedRateBuckets) Check(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (time.Duration, error) {
	lim := RateLimit{Burst: burst, Per: per}
	if !lim.enabled() {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b.stale(now, l.interval) {
		// Not seen here, or not lately: the shared bucket is what Allow
		// would start from.
		l.mu.Unlock()
		wait, err := RateBuckets{Pool: l.pool}.Check(ctx, key, burst, per, now)
		l.mu.Lock()
		return wait, err
	}
	emission := lim.Per / time.Duration(lim.Burst)
	next := laterOf(b.tat, now).Add(b.pending + b.inflight + emission)
	return max(next.Sub(now)-emission*time.Duration(lim.Burst), 0), nil
}

// Run syncs until ctx ends (and once more on the way out), and every
// pruneEvery deletes the shared buckets that are full again
// (PruneRateBuckets), on a goroutine of its own so that syncs go on.
func (l *SyncedRateBuckets) Run(ctx context.Context, clk interface{ Now() time.Time }) {
	t := time.NewTicker(l.interval)
	defer t.Stop()
	var pruning sync.WaitGroup
	defer pruning.Wait()
	lastPrune := clk.Now()
	for {
		select {
		case <-ctx.Done():
			_ = l.Flush(context.WithoutCancel(ctx), clk.Now())
			return
		case <-t.C:
			now := clk.Now()
			_ = l.Flush(ctx, now)
			if now.Sub(lastPrune) >= pruneEvery {
				lastPrune = now
				pruning.Go(func() {
					pctx, cancel := context.WithTimeout(ctx, pruneEvery/2)
					defer cancel()
					_ = PruneRateBuckets(pctx, l.pool, now)
				})
			}
		}
	}
}

// pruneEvery is how often a node deletes full shared buckets;
// pruneBatch how many rows one statement deletes.
const (
	pruneEvery = 10 * time.Minute
	pruneBatch = 1000
)

// PruneRateBuckets deletes the shared buckets that are full again (their
// theoretical arrival time a minute or more past: the same as no row) of
// every limit, exact or synced; keys carry client addresses and login IDs
// anybody can make up, so the table would otherwise only grow. It deletes
// pruneBatch rows a statement, skipping rows a check holds, so that no
// request waits long behind it; a check that takes a row being deleted
// inserts it again (idstream_rate_check, migration 0013).
func PruneRateBuckets(ctx context.Context, pool *pgxpool.Pool, now time.Time) error {
	for {
		tag, err := pool.Exec(ctx, `DELETE FROM rate_buckets WHERE key IN (
			SELECT key FROM rate_buckets WHERE tat < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now.Add(-time.Minute), pruneBatch)
		if err != nil {
			return err
		}
		if tag.RowsAffected() < pruneBatch {
			return nil
		}
	}
}

// Flush adds what this node admitted to the shared buckets and reads back
// their state, in one round trip, with the state of keys used within the
// last two intervals that are not full; other keys cost nothing. Buckets
// unused for two periods, or full and unused for two intervals, are
// dropped.
func (l *SyncedRateBuckets) Flush(ctx context.Context, now time.Time) error {
	type item struct {
		key     string
		pending time.Duration
		b       *localBucket
	}
	l.mu.Lock()
	var items []item
	var reads []string
	readOf := map[string]*localBucket{}
	readGen := map[string]uint64{}
	for k, b := range l.buckets {
		switch {
		case b.pending > 0:
			items = append(items, item{k, b.pending, b})
			// Until the shared bucket answers, these admissions still
			// count.
			b.inflight += b.pending
			b.pending = 0
		case b.inflight > 0:
			// Being settled by a sync still running.
		case now.Sub(b.lastUsed) > 2*b.limit.Per,
			!b.tat.After(now) && now.Sub(b.lastUsed) > 2*l.interval:
			// Unused for two periods, or full again and unused for two
			// intervals: a missing bucket is read from the shared one on
			// its next request, as a stale one would be, so keys used once
			// (a session's refresh) do not pile up here.
			delete(l.buckets, k)
		case now.Sub(b.lastUsed) <= 2*l.interval && b.tat.After(now):
			// Used a moment ago and not full: what the other nodes
			// admitted since counts for its next requests.
			reads = append(reads, k)
			readOf[k], readGen[k] = b, b.gen
		}
	}
	l.mu.Unlock()
	if len(items) == 0 && len(reads) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, it := range items {
		batch.Queue(`INSERT INTO rate_buckets (key, tat) VALUES ($1, $2::timestamptz + $3::interval)
			ON CONFLICT (key) DO UPDATE SET tat = greatest(rate_buckets.tat, $2) + $3
			RETURNING tat`, it.key, now, it.pending)
	}
	if len(reads) > 0 {
		batch.Queue(`SELECT key, tat FROM rate_buckets WHERE key = ANY($1)`, reads)
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
		it.b.tat, it.b.synced = tat, now
		it.b.gen++
		it.b.inflight -= it.pending
		l.mu.Unlock()
	}
	if len(reads) > 0 {
		if err := l.readBack(res, reads, readOf, readGen, now); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// readBack takes a sync's read of keys with nothing admitted: each bucket
// gets the shared tat unless it admitted, or was read or synced, since.
func (l *SyncedRateBuckets) readBack(res pgx.BatchResults, reads []string, readOf map[string]*localBucket, readGen map[string]uint64, now time.Time) error {
	rows, err := res.Query()
	if err != nil {
		return err
	}
	seen := map[string]time.Time{}
	for rows.Next() {
		var k string
		var tat time.Time
		if err := rows.Scan(&k, &tat); err != nil {
			rows.Close()
			return err
		}
		seen[k] = tat
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range reads {
		b := readOf[k]
		if b.pending > 0 || b.inflight > 0 || b.gen != readGen[k] {
			continue
		}
		tat, ok := seen[k]
		if !ok {
			tat = now // pruned: a full bucket
		}
		b.tat, b.synced = tat, now
		b.gen++
	}
	return nil
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
