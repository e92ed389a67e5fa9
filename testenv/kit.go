package testenv

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
)

// CheapHashes keeps argon2id at its minimum cost, for tests that hash a lot.
func CheapHashes(c *config.Config) {
	c.Password.MemoryKiB = 8 * 1024
	c.Password.Iterations = 1
}

// WaitFor polls cond until it holds, failing the test after within.
func WaitFor(t testing.TB, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// CaughtUp reports whether every projection has its checkpoint at the log's
// last sequence (a runner that has not started yet has no checkpoint row),
// and that sequence.
func CaughtUp(t testing.TB, pool *pgxpool.Pool, s *eventstore.Store) (bool, uint64) {
	t.Helper()
	ctx := context.Background()
	last, err := s.LastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// One statement, so a runner cannot insert rows between two counts.
	var rows, behind int
	if err := pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE position < $1) FROM projection_checkpoints`,
		int64(last)).Scan(&rows, &behind); err != nil {
		t.Fatal(err)
	}
	return rows == len(projections.All()) && behind == 0, last
}

// Settle waits until every projection has applied the whole log and
// returns the log's last sequence; after within it fails the test with the
// projections' recorded failures.
func Settle(t testing.TB, pool *pgxpool.Pool, s *eventstore.Store, within time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, last := CaughtUp(t, pool, s)
		if ok {
			return last
		}
		if time.Now().After(deadline) {
			var fails []string
			rows, err := pool.Query(context.Background(), `SELECT projection || ': ' || event_type || ': ' || error FROM projection_failures`)
			if err == nil {
				for rows.Next() {
					var f string
					_ = rows.Scan(&f)
					fails = append(fails, f)
				}
				rows.Close()
			}
			t.Fatalf("projections did not catch up in %s (log at %d); failures: %s", within, last, strings.Join(fails, "; "))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
