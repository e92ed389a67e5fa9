package faults_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// TestPostgresRestartWhileProjecting runs a node on a private PostgreSQL
// server while guests sign up, refresh and are promoted, and takes the
// server away twice — a crash (SIGKILL) and a fast shutdown (SIGINT) — for
// a few seconds each while events keep being appended to NATS. The
// projections pause, reconnect and catch up: every checkpoint reaches the
// log's last sequence, the read models hold exactly what the log says (one
// user and one session per event, one refresh count per refresh) and equal a
// fresh replay, nothing acknowledged is lost, and no failure is recorded.
func TestPostgresRestartWhileProjecting(t *testing.T) {
	pg := startPostgresProc(t)
	ns := testenv.StartNATS(t)
	dbURL, pool := pg.database(t)
	n := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: cheap})
	ctx := context.Background()

	l := newLedger()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); l.run(wctx, n.URL, 4) }()
	defer func() { cancel(); <-done }()

	time.Sleep(2 * time.Second)
	waitCheckpoints(t, pool, n.Store, 30*time.Second)
	outages := []struct {
		name string
		stop func()
	}{{"crash (SIGKILL)", pg.crash}, {"fast shutdown (SIGINT)", pg.fastStop}, {"crash (SIGKILL)", pg.crash}}
	for i, o := range outages {
		before := lastSeq(t, n.Store)
		ops := l.ops.Load()
		logFrom := len(n.Logs.String())
		o.stop()
		time.Sleep(3 * time.Second)
		during := lastSeq(t, n.Store)
		restarted := time.Now()
		pg.start()
		// The projections resume and apply what was appended while
		// PostgreSQL was away.
		lag := waitPast(t, pool, during, 30*time.Second)
		t.Logf("%s: PostgreSQL away 3 s, %d operations and %d events appended meanwhile; checkpoints past them %s after the restart (%d events behind at the restart)",
			o.name, l.ops.Load()-ops, during-before, time.Since(restarted).Round(time.Millisecond), lag)
		// Each outage's pauses start from the first (100 ms), not from
		// where the previous outage left them.
		pauses := firstPauses(t, n.Logs.String()[logFrom:])
		t.Logf("outage %d: first retry pause per projection %v", i+1, pauses)
		for name, pause := range pauses {
			if pause != projections.DefaultConfig().RetryBackoff {
				t.Errorf("outage %d: %s paused %s first, want %s", i+1, name, pause, projections.DefaultConfig().RetryBackoff)
			}
		}
		time.Sleep(time.Second)
	}
	cancel()
	<-done

	last := waitCheckpoints(t, pool, n.Store, 60*time.Second)
	waitCaughtUp(t, n, 30*time.Second)
	for _, p := range projections.All() {
		if st := n.Runner.State(p.Name()); st != projections.StateRunning {
			t.Fatalf("projection %s is %s", p.Name(), st)
		}
	}
	lost := l.verify(t, n)
	l.report(t, lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged operations lost", lost)
	}
	if len(l.signups) == 0 {
		t.Fatal("the workload acknowledged nothing")
	}
	counts, _ := logCounts(t, n.Store)
	noDoubleApply(t, pool, counts)
	_, fresh := pg.database(t)
	testenv.SameDump(t, "after PostgreSQL restarts", freshReplay(t, n.Store, fresh), testenv.Dump(t, pool, testenv.ReadModelTables...))
	t.Logf("%d events (%v), checkpoints at %d, read models equal a fresh replay", last, counts, last)
}

func lastSeq(t *testing.T, s *eventstore.Store) uint64 {
	t.Helper()
	last, err := s.LastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return last
}

// waitPast waits until every checkpoint is at or past seq; it returns how
// far behind seq the slowest was when it started waiting (the first answer
// after the restart).
func waitPast(t *testing.T, pool *pgxpool.Pool, seq uint64, within time.Duration) uint64 {
	t.Helper()
	deadline := time.Now().Add(within)
	var behind uint64
	first := true
	for {
		lo, _, ok := span(checkpoints(t, pool))
		if ok && first {
			first = false
			behind = seq - min(seq, lo)
		}
		if ok && lo >= seq {
			return behind
		}
		if time.Now().After(deadline) {
			t.Fatalf("projections did not pass %d within %s of the restart: %v", seq, within, checkpoints(t, pool))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// firstPauses returns, per projection, the first retry pause the runner
// logged in logs (JSON lines).
func firstPauses(t *testing.T, logs string) map[string]time.Duration {
	t.Helper()
	out := map[string]time.Duration{}
	for _, line := range strings.Split(logs, "\n") {
		var l struct {
			Msg        string `json:"msg"`
			Projection string `json:"projection"`
			RetryIn    int64  `json:"retry_in"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "projection paused; will retry" {
			continue
		}
		if _, seen := out[l.Projection]; !seen {
			out[l.Projection] = time.Duration(l.RetryIn)
		}
	}
	return out
}
