package workers

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/clock"
)

// withLease makes one node of many do a job: it waits until it holds the
// PostgreSQL session advisory lock key on a connection of its own, then runs
// work with a context that ends when ctx ends or the lock's connection is
// lost (checked every poll), and releases the lock after work returns. A
// node that dies loses the lock with its connection.
func withLease(ctx context.Context, pool *pgxpool.Pool, key int64, poll time.Duration, work func(ctx context.Context)) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	for {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil {
			return err
		}
		if got {
			break
		}
		clock.Sleep(ctx, poll)
		if ctx.Err() != nil {
			return nil
		}
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key) }()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(wctx)
	}()
	check := time.NewTicker(poll)
	defer check.Stop()
	for {
		select {
		case <-done:
			cancel()
			return nil
		case <-check.C:
			if err := conn.Ping(ctx); err != nil {
				cancel()
				<-done
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("lease connection: %w", err)
			}
		}
	}
}
