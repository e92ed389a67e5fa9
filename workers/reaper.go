// Package workers runs idstream's background jobs. Workers find their work
// in read models and act only through commands (the same decide path as the
// API), never by writing events of their own.
package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/projections"
)

var (
	reaperCandidates = promauto.NewCounter(prometheus.CounterOpts{
		Name: "idstream_reaper_candidates_total", Help: "Guests the reaper found idle in the read models."})
	reaperExpired = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "idstream_reaper_expired_total", Help: "Guests the reaper expired, by reason."}, []string{"reason"})
	reaperSkipped = promauto.NewCounter(prometheus.CounterOpts{
		Name: "idstream_reaper_skipped_active_total", Help: "Candidates the decision found active after all (signed in, promoted, cookie activity)."})
	reaperErrors = promauto.NewCounter(prometheus.CounterOpts{
		Name: "idstream_reaper_errors_total", Help: "Candidates the reaper could not decide on (retried next tick)."})
	reaperLease = promauto.NewGauge(prometheus.GaugeOpts{
		Name: "idstream_reaper_lease_held", Help: "1 while this node holds the reaper lease."})
)

// ReaperConfig paces the reaper.
type ReaperConfig struct {
	Interval time.Duration
	Batch    int
	// Workers decide on candidates in parallel.
	Workers int
	// LeasePoll is how often a standby node tries to take the lease.
	LeasePoll time.Duration
}

// Reaper expires idle guests. Exactly one runs across all nodes: the lease
// is a PostgreSQL session advisory lock, released on shutdown and, when a
// node dies, by PostgreSQL closing its connection.
type Reaper struct {
	held  atomic.Bool
	pool  *pgxpool.Pool
	svc   *app.Lifetime
	clock clock.Clock
	log   *slog.Logger
	cfg   ReaperConfig
}

// NewReaper builds a reaper; it refuses missing dependencies.
func NewReaper(pool *pgxpool.Pool, svc *app.Lifetime, clk clock.Clock, log *slog.Logger, cfg ReaperConfig) (*Reaper, error) {
	if pool == nil || svc == nil || clk == nil || log == nil {
		return nil, errors.New("workers: pool, service, clock and logger are required")
	}
	if cfg.Workers < 1 {
		cfg.Workers = 1
	}
	if cfg.Interval <= 0 || cfg.Batch < 1 || cfg.LeasePoll <= 0 {
		return nil, errors.New("workers: reaper interval, batch and lease poll must be positive")
	}
	return &Reaper{pool: pool, svc: svc, clock: clk, log: log, cfg: cfg}, nil
}

const reaperLock = 7230020

// Run holds the lease and reaps every interval until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.runWithLease(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reaper lost its lease or database; retrying", "error", err)
			clock.Sleep(ctx, r.cfg.LeasePoll)
		}
	}
}

func (r *Reaper) runWithLease(ctx context.Context) error {
	lease := projections.Lease{Pool: r.pool, Key: reaperLock, Poll: r.cfg.LeasePoll, Check: r.cfg.LeasePoll}
	return lease.Hold(ctx, func(ctx context.Context) error {
		reaperLease.Set(1)
		r.held.Store(true)
		r.log.Info("reaper lease taken")
		defer func() {
			r.held.Store(false)
			reaperLease.Set(0)
		}()
		t := time.NewTicker(r.cfg.Interval)
		defer t.Stop()
		for {
			if _, err := r.Tick(ctx, false); err != nil && ctx.Err() == nil {
				r.log.Warn("reaper tick failed", "error", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
}

// Holding reports whether this node holds the reaper lease.
func (r *Reaper) Holding() bool { return r.held.Load() }

// Verdict is what the reaper decided about one candidate.
type Verdict struct {
	UserID    string
	Reason    string
	LastSeen  time.Time
	NotBefore time.Time
	Expired   bool
}

// TickSummary counts one pass.
type TickSummary struct {
	Candidates, Expired, Skipped, Errors int
	Verdicts                             []Verdict
}

// Tick finds up to a batch of candidates and sends each the expiry command.
// With dryRun it reports what would expire and why, and writes nothing.
func (r *Reaper) Tick(ctx context.Context, dryRun bool) (TickSummary, error) {
	now := r.clock.Now()
	if !dryRun {
		if _, err := r.pool.Exec(ctx, `DELETE FROM reaper_checks WHERE not_before <= $1`, now); err != nil {
			return TickSummary{}, err
		}
	}
	ids, err := r.candidates(ctx, now)
	if err != nil {
		return TickSummary{}, err
	}
	sum := TickSummary{Candidates: len(ids)}
	reaperCandidates.Add(float64(len(ids)))
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan string)
	for range r.cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				v, counted := r.decide(ctx, id, dryRun, now)
				mu.Lock()
				switch counted {
				case "expired":
					sum.Expired++
				case "skipped":
					sum.Skipped++
				case "error":
					sum.Errors++
				}
				if v != nil {
					sum.Verdicts = append(sum.Verdicts, *v)
				}
				mu.Unlock()
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	r.log.Info("reaper tick", "dry_run", dryRun, "candidates", sum.Candidates, "expired", sum.Expired,
		"skipped_active", sum.Skipped, "errors", sum.Errors)
	return sum, nil
}

// decide sends one candidate the expiry command.
func (r *Reaper) decide(ctx context.Context, id string, dryRun bool, now time.Time) (*Verdict, string) {
	// The read model's sessions too: guests from before their first
	// session was recorded on the user list none on their subject.
	sessions, err := projections.Reads{Pool: r.pool}.SessionIDs(ctx, id)
	if err != nil {
		reaperErrors.Inc()
		r.log.Warn("reaper could not list a guest's sessions", "user_id", id, "error", err)
		return nil, "error"
	}
	out, err := r.svc.ExpireAnonymousUser(ctx, id, sessions, dryRun, app.Meta{CorrelationID: "reaper"})
	switch {
	case errors.Is(err, domain.ErrStillActive):
		reaperSkipped.Inc()
		if !dryRun {
			r.postpone(ctx, id, out.NotBefore, now)
		}
		return &Verdict{UserID: id, NotBefore: out.NotBefore}, "skipped"
	case err != nil:
		reaperErrors.Inc()
		r.log.Warn("reaper could not decide on a guest", "user_id", id, "error", err)
		return nil, "error"
	case out.Expired:
		if !dryRun {
			reaperExpired.WithLabelValues(out.Reason).Inc()
		}
		return &Verdict{UserID: id, Reason: out.Reason, LastSeen: out.LastSeen, Expired: true}, "expired"
	}
	// Promoted or gone: nothing to do.
	reaperSkipped.Inc()
	return nil, "skipped"
}

// postpone records that a guest found active need not be looked at before
// it could expire (never, for a key guest with no inactivity rule).
func (r *Reaper) postpone(ctx context.Context, id string, notBefore, now time.Time) {
	if notBefore.IsZero() {
		notBefore = now.Add(365 * 24 * time.Hour)
	}
	if _, err := r.pool.Exec(ctx, `INSERT INTO reaper_checks (user_id, not_before) VALUES ($1, $2)
		ON CONFLICT (user_id) DO UPDATE SET not_before = excluded.not_before`, id, notBefore); err != nil {
		r.log.Warn("reaper could not postpone a guest", "user_id", id, "error", err)
	}
}

// candidates reads idle guests from the users and sessions read models, both
// rules by indexed scans, oldest first, at most a batch. The read models may
// lag; the decision on the log is what counts.
func (r *Reaper) candidates(ctx context.Context, now time.Time) ([]string, error) {
	rules := r.svc.LifetimeRules()
	var ids []string
	collect := func(sql string, args ...any) error {
		rows, err := r.pool.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	}
	// Web guests: no session live within the grace period.
	cutoff := now.Add(-rules.WebGuestGrace)
	if err := collect(`SELECT u.id::text FROM users u
		WHERE u.is_anonymous AND u.state = 'active' AND NOT u.has_anonymous_key AND u.last_seen_at < $1
		  AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id AND s.revoked_at IS NULL
		        AND s.expires_at > $1 AND s.last_active_at + make_interval(secs => s.idle_timeout_seconds) > $1)
		  AND NOT EXISTS (SELECT 1 FROM reaper_checks c WHERE c.user_id = u.id AND c.not_before > $2)
		ORDER BY u.last_seen_at LIMIT $3`, cutoff, now, r.cfg.Batch); err != nil {
		return nil, fmt.Errorf("web guest candidates: %w", err)
	}
	if rules.KeyGuestInactivity > 0 && len(ids) < r.cfg.Batch {
		if err := collect(`SELECT u.id::text FROM users u
			WHERE u.is_anonymous AND u.state = 'active' AND u.has_anonymous_key
			  AND coalesce(u.last_sign_in_at, u.created_at) < $1
			  AND NOT EXISTS (SELECT 1 FROM reaper_checks c WHERE c.user_id = u.id AND c.not_before > $2)
			ORDER BY coalesce(u.last_sign_in_at, u.created_at) LIMIT $3`,
			now.Add(-rules.KeyGuestInactivity), now, r.cfg.Batch-len(ids)); err != nil {
			return nil, fmt.Errorf("key guest candidates: %w", err)
		}
	}
	return ids, nil
}

// ReaperStatus is what operators see of the reaper.
type ReaperStatus struct {
	// Running: some node holds the reaper lease.
	Running bool
	// Postponed guests were found still active and are not looked at
	// again before their time.
	Postponed int64
	// ExpiredLastDay counts guests the read model shows expired in the
	// last 24 hours; LastExpiry is the newest expiry.
	ExpiredLastDay int64
	LastExpiry     *time.Time
	Rules          domain.LifetimeRules
}

// Status reads the reaper's state from PostgreSQL (any node can answer).
func (r *Reaper) Status(ctx context.Context) (ReaperStatus, error) {
	st := ReaperStatus{Rules: r.svc.LifetimeRules()}
	now := r.clock.Now()
	err := r.pool.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
		        AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		        AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1),
		(SELECT count(*) FROM reaper_checks WHERE not_before > $2),
		(SELECT count(*) FROM users WHERE expired_at > $2 - interval '24 hours'),
		(SELECT max(expired_at) FROM users WHERE expired_at IS NOT NULL)`, int64(reaperLock), now).
		Scan(&st.Running, &st.Postponed, &st.ExpiredLastDay, &st.LastExpiry)
	return st, err
}
