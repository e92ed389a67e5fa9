package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// checkpoints returns each projection's position (missing rows absent).
func checkpoints(t *testing.T, pool *pgxpool.Pool) map[string]uint64 {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT name, position FROM projection_checkpoints`)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[string]uint64{}
	for rows.Next() {
		var name string
		var pos int64
		if err := rows.Scan(&name, &pos); err != nil {
			return nil
		}
		out[name] = uint64(pos)
	}
	return out
}

// lowest and highest of every projection's checkpoint; ok is false until
// every projection has one.
func span(cps map[string]uint64) (lo, hi uint64, ok bool) {
	lo = ^uint64(0)
	for _, p := range projections.All() {
		pos, found := cps[p.Name()]
		if !found {
			return 0, 0, false
		}
		lo, hi = min(lo, pos), max(hi, pos)
	}
	return lo, hi, true
}

// waitCheckpoints waits until every projection's checkpoint is the stream's
// last sequence.
func waitCheckpoints(t *testing.T, pool *pgxpool.Pool, s *eventstore.Store, within time.Duration) uint64 {
	t.Helper()
	return testenv.Settle(t, pool, s, within)
}

// logCounts reads the whole log and counts its events by type.
func logCounts(t *testing.T, s *eventstore.Store) (map[string]int, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	last, err := s.LastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	if last == 0 {
		return counts, 0
	}
	cons, err := s.JetStream().OrderedConsumer(ctx, s.StreamName(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{s.AllSubjects()}})
	if err != nil {
		t.Fatal(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(1000))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			t.Fatalf("read the log: %v", err)
		}
		rec, err := eventstore.DecodeMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		counts[rec.Type]++
		if rec.Sequence >= last {
			return counts, last
		}
	}
}

// freshReplay rebuilds every projection from the whole log with
// projections.Replay into pool's database (a new, empty one) and returns its
// read models.
func freshReplay(t *testing.T, s *eventstore.Store, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	last, err := s.LastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range projections.All() {
		res, err := projections.Replay(ctx, pool, s, p, projections.ReplayOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.From != 0 || res.Position != last {
			t.Fatalf("replay of %s: from %d to %d, want 0 to %d", p.Name(), res.From, res.Position, last)
		}
	}
	return testenv.Dump(t, pool, testenv.ReadModelTables...)
}

// noDoubleApply checks the read models' counts against the log's: one user
// per creation or registration, one session per start, one refresh count per
// refresh, no recorded failure, every projection running.
func noDoubleApply(t *testing.T, pool *pgxpool.Pool, counts map[string]int) {
	t.Helper()
	var users, sessions, refreshes, revoked, failures, notRunning int
	if err := pool.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM users), (SELECT count(*) FROM sessions),
		(SELECT coalesce(sum(refresh_count), 0) FROM sessions), (SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL),
		(SELECT count(*) FROM projection_failures), (SELECT count(*) FROM projection_checkpoints WHERE state <> 'running')`).
		Scan(&users, &sessions, &refreshes, &revoked, &failures, &notRunning); err != nil {
		t.Fatal(err)
	}
	want := counts[domain.TypeAnonymousUserCreated] + counts[domain.TypeUserRegistered]
	if users != want || sessions != counts[domain.TypeSessionStarted] || refreshes != counts[domain.TypeSessionRefreshed] || revoked != counts[domain.TypeSessionRevoked] {
		t.Fatalf("read models against the log: %d users (log %d), %d sessions (log %d), %d refreshes (log %d), %d revoked (log %d)",
			users, want, sessions, counts[domain.TypeSessionStarted], refreshes, counts[domain.TypeSessionRefreshed], revoked, counts[domain.TypeSessionRevoked])
	}
	if failures != 0 || notRunning != 0 {
		t.Fatalf("%d projection failures recorded, %d projections not running", failures, notRunning)
	}
}
