package projections_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

func admitted(t *testing.T, l *projections.SyncedRateBuckets, key string, n, burst int, per time.Duration, now time.Time) int {
	t.Helper()
	return admittedBy(t, l.Allow, key, n, burst, per, now)
}

// admittedBy counts how many of n requests allow admits.
func admittedBy(t *testing.T, allow func(context.Context, string, int, time.Duration, time.Time) (time.Duration, error),
	key string, n, burst int, per time.Duration, now time.Time) int {
	t.Helper()
	ok := 0
	for range n {
		w, err := allow(context.Background(), key, burst, per, now)
		if err != nil {
			t.Fatal(err)
		}
		if w == 0 {
			ok++
		}
	}
	return ok
}

// Two nodes share one budget: what one spent, the other sees, also for a
// key it last saw with a full bucket and has not synced since (it reads the
// shared bucket again before admitting).
func TestSyncedBucketsShareOneBudget(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	a := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	b := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	now := time.Now().UTC().Truncate(time.Second)
	const key = "signup:ip:203.0.113.7"
	// b sees the key once, and the bucket refills.
	if got := admitted(t, b, key, 1, 10, time.Minute, now); got != 1 {
		t.Fatalf("b's first: %d", got)
	}
	_ = b.Flush(ctx, now)
	now = now.Add(10 * time.Second)
	_ = b.Flush(ctx, now) // full again: b has nothing to sync
	// a spends the whole burst and settles it.
	if got := admitted(t, a, key, 15, 10, time.Minute, now); got != 10 {
		t.Fatalf("a admitted %d of 15, want the burst of 10", got)
	}
	_ = a.Flush(ctx, now)
	now = now.Add(time.Second) // less than the 6 s one request refills
	if got := admitted(t, b, key, 5, 10, time.Minute, now); got != 0 {
		t.Fatalf("b admitted %d after a spent the budget", got)
	}
}

// A limit changed in the settings holds at once for a key in use: its
// admissions count at the limit they were made under.
func TestSyncedLimitChangeHoldsForKeysInUse(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	l := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	now := time.Now().UTC().Truncate(time.Second)
	const key = "signup:ip:203.0.113.50"
	admitted(t, l, key, 1, 60, time.Minute, now)
	_ = l.Flush(ctx, now)
	// The limit becomes 6 a minute; the key sends one request every
	// 100 ms for two minutes, the node settling every 50 ms.
	ok := 0
	for step := 1; step <= 2*60*20; step++ {
		now = now.Add(50 * time.Millisecond)
		if step%2 == 0 {
			ok += admitted(t, l, key, 1, 6, time.Minute, now)
		}
		if err := l.Flush(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	// 6 at once and 12 refilled in two minutes (the old limit: 180).
	if ok > 6+12+1 {
		t.Fatalf("admitted %d in two minutes under 6 a minute", ok)
	}
}

// A sync writes only the buckets something was admitted under: keys seen
// once and idle since cost nothing (an attacker with many addresses would
// otherwise make every node rewrite a row per address 20 times a second).
func TestSyncedFlushWritesOnlyAdmissions(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	l := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	now := time.Now().UTC().Truncate(time.Second)
	const keys = 2000
	for i := range keys {
		admitted(t, l, fmt.Sprintf("signup:ip:2001:db8:%x::/64", i), 1, 60, time.Minute, now)
	}
	if err := l.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	tats := func() map[string]time.Time {
		rows, err := pool.Query(ctx, `SELECT key, tat FROM rate_buckets`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]time.Time{}
		for rows.Next() {
			var k string
			var tat time.Time
			if err := rows.Scan(&k, &tat); err != nil {
				t.Fatal(err)
			}
			out[k] = tat
		}
		return out
	}
	before := tats()
	if len(before) != keys {
		t.Fatalf("%d rows, want %d", len(before), keys)
	}
	for range 5 {
		now = now.Add(700 * time.Millisecond)
		if err := l.Flush(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	after := tats()
	for k, tat := range before {
		if !after[k].Equal(tat) {
			t.Fatalf("%s: tat %v rewritten to %v by syncs with nothing admitted", k, tat, after[k])
		}
	}
}

// A node forgets a bucket once it is full again and unused for two sync
// intervals, so keys used once (a session's refresh: a period of an hour)
// do not pile up in memory for two periods; one still refilling is kept,
// and a forgotten key's next request starts from the shared bucket.
func TestSyncedForgetsFullBuckets(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	l := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	now := time.Now().UTC().Truncate(time.Second)
	for i := range 100 {
		admitted(t, l, fmt.Sprintf("refresh:session:%d", i), 1, 120, time.Hour, now) // 30 s to refill
	}
	if got := admitted(t, l, "refresh:session:busy", 120, 120, time.Hour, now); got != 120 {
		t.Fatalf("%d admitted of a fresh bucket's 120", got)
	}
	if err := l.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	now = now.Add(29 * time.Second)
	if err := l.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	if got := l.Held(); got != 101 {
		t.Fatalf("%d buckets held while refilling, want 101", got)
	}
	now = now.Add(2 * time.Second) // the 100 are full; the busy one is not
	if err := l.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	if got := l.Held(); got != 1 {
		t.Fatalf("%d buckets held, want the one still refilling", got)
	}
	// The busy key is still limited, and a forgotten key's budget is its
	// shared bucket's.
	if got := admitted(t, l, "refresh:session:busy", 5, 120, time.Hour, now); got != 1 {
		t.Fatalf("the busy key admitted %d after 31 s, want 1", got)
	}
	if err := l.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	other := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	if got := admitted(t, other, "refresh:session:busy", 1, 120, time.Hour, now); got != 0 {
		t.Fatalf("another node admitted %d on the busy key", got)
	}
}

// AllowLoose reads nothing first: a node new to a key spent elsewhere
// admits from a full bucket until its next sync, which adds what it
// admitted to the shared bucket (so the overshoot is owed, not lost) and
// brings the node up to date.
func TestSyncedLooseSettlesAtTheNextSync(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	a := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	b := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	now := time.Now().UTC().Truncate(time.Second)
	loose := func(l *projections.SyncedRateBuckets, n int) int {
		return admittedBy(t, l.AllowLoose, "refresh:session:s", n, 4, time.Minute, now)
	}
	if got := loose(a, 6); got != 4 {
		t.Fatalf("a admitted %d of a burst of 4", got)
	}
	if err := a.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	if got := loose(b, 6); got != 4 {
		t.Fatalf("b, new to the key, admitted %d (it reads nothing first)", got)
	}
	if err := b.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	// Both now owe b's 4: a minute (4 × 15 s) passes before either admits.
	now = now.Add(59 * time.Second)
	if got := loose(b, 1); got != 0 {
		t.Fatalf("b admitted %d while the overshoot is owed", got)
	}
	now = now.Add(17 * time.Second)
	if got := loose(b, 2); got != 1 {
		t.Fatalf("b admitted %d once 15 s were repaid, want 1", got)
	}
}

// Full shared buckets are deleted (keys carry made-up login IDs and client
// addresses); a bucket still refilling is kept, and a deleted one is full.
func TestPruneRateBuckets(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	exact := projections.RateBuckets{Pool: pool}
	for _, k := range []string{"signin:fail:old", "signin:fail:new"} {
		if w, err := exact.Allow(ctx, k, 3, 15*time.Minute, now); err != nil || w != 0 {
			t.Fatalf("%s: %v %v", k, w, err)
		}
	}
	now = now.Add(10 * time.Minute)
	for range 3 {
		_, _ = exact.Allow(ctx, "signin:fail:new", 3, 15*time.Minute, now)
	}
	now = now.Add(time.Minute) // old: full since 6 minutes; new: refilling
	if err := projections.PruneRateBuckets(ctx, pool, now); err != nil {
		t.Fatal(err)
	}
	var keys []string
	rows, err := pool.Query(ctx, `SELECT key FROM rate_buckets ORDER BY key`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		keys = append(keys, k)
	}
	rows.Close()
	if len(keys) != 1 || keys[0] != "signin:fail:new" {
		t.Fatalf("rows after the prune: %v, want only the refilling bucket", keys)
	}
	if w, _ := exact.Check(ctx, "signin:fail:new", 3, 15*time.Minute, now); w == 0 {
		t.Fatal("the refilling bucket lost its state")
	}
	for i := range 3 {
		if w, err := exact.Allow(ctx, "signin:fail:old", 3, 15*time.Minute, now); err != nil || w != 0 {
			t.Fatalf("deleted bucket, request %d: %v %v (want a full bucket)", i, w, err)
		}
	}
}

// A node reading a key's shared bucket again keeps what it read even when
// its own sync drops the idle bucket during the read (the read is held up
// by a table lock here, the sync runs meanwhile): the other node's
// spending still counts.
func TestSyncedRereadSurvivesTheBucketsDrop(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	a := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	b := projections.NewSyncedRateBuckets(pool, 50*time.Millisecond)
	now := time.Now().UTC().Truncate(time.Second)
	const key = "signup:ip:203.0.113.99"
	admitted(t, a, key, 1, 10, time.Minute, now)
	if err := a.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Minute) // a's bucket is idle for two periods
	if got := admitted(t, b, key, 10, 10, time.Minute, now); got != 10 {
		t.Fatalf("b admitted %d", got)
	}
	if err := b.Flush(ctx, now); err != nil {
		t.Fatal(err)
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE rate_buckets IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan int)
	go func() { done <- admitted(t, a, key, 1, 10, time.Minute, now) }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var waiting int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a's read never waited on the lock")
		}
	}
	if err := a.Flush(ctx, now); err != nil { // drops a's idle bucket
		t.Fatal(err)
	}
	_ = tx.Rollback(ctx)
	got := <-done + admitted(t, a, key, 10, 10, time.Minute, now)
	if got != 0 {
		t.Fatalf("a admitted %d after b spent the whole burst", got)
	}
}

// A prune racing exact checks of a full bucket admits no more than the
// burst: each check takes its row in one statement (migration 0013), so a
// row being checked is skipped by the prune or inserted again. A trigger
// holds the checks for half a second after their first statement, while
// the prune runs.
func TestPruneRacingExactChecks(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	exact := projections.RateBuckets{Pool: pool}
	const key = "signin:fail:raced"
	const burst, per = 3, 15 * time.Minute
	t0 := time.Now().UTC().Truncate(time.Second)
	for range burst {
		if w, err := exact.Allow(ctx, key, burst, per, t0); err != nil || w != 0 {
			t.Fatal(w, err)
		}
	}
	now := t0.Add(time.Hour) // full again, and old enough to prune
	if _, err := pool.Exec(ctx, `CREATE FUNCTION test_slow() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN PERFORM pg_sleep(0.5); RETURN NULL; END $$;
		CREATE TRIGGER test_slow AFTER INSERT ON rate_buckets FOR EACH STATEMENT EXECUTE FUNCTION test_slow()`); err != nil {
		t.Fatal(err)
	}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 5 {
		wg.Go(func() {
			if w, err := exact.Allow(ctx, key, burst, per, now); err != nil {
				t.Error(err)
			} else if w == 0 {
				ok.Add(1)
			}
		})
	}
	time.Sleep(150 * time.Millisecond)
	if err := projections.PruneRateBuckets(ctx, pool, now); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if _, err := pool.Exec(ctx, `DROP TRIGGER test_slow ON rate_buckets`); err != nil {
		t.Fatal(err)
	}
	for range burst + 2 {
		if w, err := exact.Allow(ctx, key, burst, per, now); err == nil && w == 0 {
			ok.Add(1)
		}
	}
	if got := ok.Load(); got > burst {
		t.Fatalf("%d admitted at one instant on a bucket of %d, a prune racing the checks", got, burst)
	}
}

// A refused exact check leaves its row as it was (no new row version: a
// flood of refused requests writes nothing), and an admitted one records
// itself.
func TestRefusedExactCheckWritesNothing(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	exact := projections.RateBuckets{Pool: pool}
	now := time.Now().UTC().Truncate(time.Second)
	const key = "signin:ip:203.0.113.5"
	for range 3 {
		if w, err := exact.Allow(ctx, key, 3, 15*time.Minute, now); err != nil || w != 0 {
			t.Fatal(w, err)
		}
	}
	version := func() (xmin string, tat time.Time) {
		if err := pool.QueryRow(ctx, `SELECT xmin::text, tat FROM rate_buckets WHERE key = $1`, key).Scan(&xmin, &tat); err != nil {
			t.Fatal(err)
		}
		return xmin, tat
	}
	x0, t0 := version()
	if !t0.Equal(now.Add(15 * time.Minute)) {
		t.Fatalf("tat %v after 3 admissions, want %v", t0, now.Add(15*time.Minute))
	}
	for range 5 {
		if w, err := exact.Allow(ctx, key, 3, 15*time.Minute, now); err != nil || w != 5*time.Minute {
			t.Fatalf("over the limit: wait %v, %v; want 5m", w, err)
		}
	}
	if x1, t1 := version(); x1 != x0 || !t1.Equal(t0) {
		t.Fatalf("refused checks wrote the row: xmin %s → %s, tat %v → %v", x0, x1, t0, t1)
	}
}
