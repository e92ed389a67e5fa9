package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/clock"
)

// Lease makes one node of many do a job, through a PostgreSQL session
// advisory lock: the projections (one instance per projection) and the
// workers (one reaper, one exporter) hold one each.
type Lease struct {
	Pool *pgxpool.Pool
	Key  int64
	// Poll is how often a node waiting for the lock tries again; Check how
	// often the holder checks that the lock's connection still lives.
	Poll, Check time.Duration
	// Waiting, if set, is called each time the lock is found taken.
	Waiting func()
}

// Hold waits until it holds the lock on a connection of its own, then runs
// work with a context that ends when ctx ends or the lock's connection is
// lost, and releases the lock when work returns. A node that dies loses the
// lock with its connection. Hold returns work's error; a lost connection's
// when work ended for it; nil when ctx ended first.
func (l Lease) Hold(ctx context.Context, work func(ctx context.Context) error) error {
	conn, err := l.Pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("lease: acquire connection: %w", err)
	}
	defer conn.Release()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.Key).Scan(&got); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("lease: take lock: %w", err)
		}
		if got {
			break
		}
		if l.Waiting != nil {
			l.Waiting()
		}
		clock.Sleep(ctx, l.Poll)
		if ctx.Err() != nil {
			return nil
		}
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, l.Key) }()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- work(wctx) }()
	check := time.NewTicker(l.Check)
	defer check.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-check.C:
			if err := conn.Ping(ctx); err != nil {
				cancel()
				<-done
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("lease: lock connection lost: %w", err)
			}
		}
	}
}
