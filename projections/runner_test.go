package projections_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func appendEvent(t *testing.T, s *eventstore.Store, subject string, expected uint64, ev domain.Event) uint64 {
	t.Helper()
	data, _ := json.Marshal(ev)
	typ := ""
	if ev != nil {
		typ = ev.EventType()
	}
	return appendRaw(t, s, subject, expected, typ, data)
}

func appendRaw(t *testing.T, s *eventstore.Store, subject string, expected uint64, typ string, data []byte) uint64 {
	t.Helper()
	seqs, err := s.Append(context.Background(), eventstore.Message{Subject: subject, ExpectedLastSubjectSequence: expected,
		Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: typ, OccurredAt: time.Now().UTC(), Data: data}})
	if err != nil {
		t.Fatal(err)
	}
	return seqs[0]
}

// history writes n guests, each with a session that is refreshed and, for
// every third, revoked.
func history(t *testing.T, s *eventstore.Store, n int) {
	t.Helper()
	at := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		u, sid := uuid.NewString(), uuid.NewString()
		appendEvent(t, s, s.Subject("user", u), 0, domain.AnonymousUserCreated{UserID: u, ClientID: "c", CreatedAt: at})
		v := appendEvent(t, s, s.Subject("session", sid), 0, domain.SessionStarted{SessionID: sid, UserID: u, ClientID: "c",
			Kind: domain.SessionKindRefreshToken, Method: "anonymous", TokenHash: "h", IdleTimeout: 60, Lifetime: 600, StartedAt: at})
		v = appendEvent(t, s, s.Subject("session", sid), v, domain.SessionRefreshed{SessionID: sid, UserID: u, PreviousHash: "h",
			TokenHash: "h2", Generation: 1, RefreshedAt: at.Add(time.Duration(i) * time.Second)})
		if i%3 == 0 {
			appendEvent(t, s, s.Subject("session", sid), v, domain.SessionRevoked{SessionID: sid, UserID: u, Reason: "logout", RevokedAt: at.Add(time.Hour)})
		}
	}
}

func openStore(t *testing.T) *eventstore.Store {
	t.Helper()
	s, err := eventstore.Open(context.Background(), testenv.StartNATS(t).Connect(t), eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func startRunner(t *testing.T, pool *pgxpool.Pool, s *eventstore.Store) context.CancelFunc {
	t.Helper()
	r, err := projections.NewRunner(pool, s, quiet, projections.Config{BatchSize: 50, RetryBackoff: 50 * time.Millisecond, StandbyPoll: 100 * time.Millisecond}, projections.All()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, what, 20*time.Second, cond)
}

func caughtUp(t *testing.T, pool *pgxpool.Pool, s *eventstore.Store) func() bool {
	return func() bool { ok, _ := testenv.CaughtUp(t, pool, s); return ok }
}

func dump(t *testing.T, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	return testenv.Dump(t, pool, "users", "sessions")
}

func TestStopRestartEqualsFreshReplay(t *testing.T) {
	s := openStore(t)
	_, pool := testenv.Database(t)

	history(t, s, 60)
	stop := startRunner(t, pool, s)
	// Stop while more events arrive, so the stop falls mid-stream.
	more := make(chan struct{})
	go func() { defer close(more); history(t, s, 60) }()
	time.Sleep(30 * time.Millisecond)
	stop()
	history(t, s, 30)
	<-more
	startRunner(t, pool, s)
	waitFor(t, "catch-up after restart", caughtUp(t, pool, s))

	_, fresh := testenv.Database(t)
	startRunner(t, fresh, s)
	waitFor(t, "fresh replay", caughtUp(t, fresh, s))

	live, replayed := dump(t, pool), dump(t, fresh)
	if len(live["users"]) != 150 || len(live["sessions"]) != 150 {
		t.Fatalf("live has %d users and %d sessions, want 150 each", len(live["users"]), len(live["sessions"]))
	}
	if len(replayed["users"]) != len(live["users"]) || len(replayed["sessions"]) != len(live["sessions"]) {
		t.Fatalf("replay has %d users, %d sessions; live %d, %d", len(replayed["users"]), len(replayed["sessions"]), len(live["users"]), len(live["sessions"]))
	}
	if !reflect.DeepEqual(live, replayed) {
		for table := range live {
			for i := range live[table] {
				if i >= len(replayed[table]) || live[table][i] != replayed[table][i] {
					t.Fatalf("%s row %d differs:\nlive     %s\nreplayed %v", table, i, live[table][i], replayed[table][min(i, len(replayed[table])-1)])
				}
			}
		}
		t.Fatal("rows after stop and restart differ from a fresh replay")
	}
	var refreshes int
	_ = pool.QueryRow(context.Background(), `SELECT sum(refresh_count) FROM sessions`).Scan(&refreshes)
	if refreshes != 150 {
		t.Fatalf("refresh_count sums to %d, want 150: an event was applied twice or not at all", refreshes)
	}
}

func TestFailingEventStopsAndIsRecorded(t *testing.T) {
	s := openStore(t)
	_, pool := testenv.Database(t)
	ctx := context.Background()

	history(t, s, 3)
	// A session event for a session the read model never saw: the users
	// projection must not silently skip it.
	ghost := uuid.NewString()
	bad := appendEvent(t, s, s.Subject("session", uuid.NewString()), 0, domain.SessionStarted{SessionID: uuid.NewString(), UserID: ghost,
		ClientID: "c", Kind: domain.SessionKindCookie, Method: "anonymous", TokenHash: "h", IdleTimeout: 60, Lifetime: 60, StartedAt: time.Now()})
	history(t, s, 2)
	unknown := appendRaw(t, s, s.Subject("user", uuid.NewString()), 0, "user.from_the_future.v7", []byte(`{}`))

	startRunner(t, pool, s)
	waitFor(t, "users projection to stop", func() bool {
		var state string
		_ = pool.QueryRow(ctx, `SELECT state FROM projection_checkpoints WHERE name = 'users'`).Scan(&state)
		return state == "stopped"
	})
	var pos int64
	var failedSeq int64
	var msg string
	_ = pool.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = 'users'`).Scan(&pos)
	if err := pool.QueryRow(ctx, `SELECT sequence, error FROM projection_failures WHERE projection = 'users' ORDER BY id LIMIT 1`).Scan(&failedSeq, &msg); err != nil {
		t.Fatal(err)
	}
	if uint64(failedSeq) != bad || uint64(pos) != bad-1 {
		t.Fatalf("stopped at %d with checkpoint %d; want failure at %d, checkpoint %d (%s)", failedSeq, pos, bad, bad-1, msg)
	}
	var users int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&users)
	if users != 3 {
		t.Fatalf("%d users projected; events past the failure must wait", users)
	}
	// The sessions projection reads session subjects only: the ghost session
	// is fine for it, and it catches up to the last session event.
	waitFor(t, "sessions projection", func() bool {
		var p int64
		_ = pool.QueryRow(ctx, `SELECT position FROM projection_checkpoints WHERE name = 'sessions'`).Scan(&p)
		return uint64(p) >= unknown-1
	})
}

func userIDs(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id::text FROM users ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// After a power cut the log may have lost events it had stored, delivered
// to the projections and not yet synced (so never acknowledged); PostgreSQL
// kept what was made of them. The runner finds such a read model at start,
// whether the log now ends before its checkpoint or new events have taken
// the lost sequence numbers, and rebuilds it from the log.
func TestReadModelAheadOfTheLogIsRebuilt(t *testing.T) {
	for _, reused := range []bool{false, true} {
		name := map[bool]string{false: "log ends before the checkpoint", true: "lost sequence numbers reused"}[reused]
		t.Run(name, func(t *testing.T) {
			_, pool := testenv.Database(t)
			at := time.Now().UTC()
			guest := func(s *eventstore.Store, id string) {
				appendEvent(t, s, s.Subject("user", id), 0, domain.AnonymousUserCreated{UserID: id, ClientID: "c", CreatedAt: at})
			}
			kept, lost1, lost2 := uuid.NewString(), uuid.NewString(), uuid.NewString()
			before := openStore(t)
			guest(before, kept)
			guest(before, lost1)
			guest(before, lost2)
			stop := startRunner(t, pool, before)
			waitFor(t, "catch-up before the cut", caughtUp(t, pool, before))
			stop()

			// The log as the restart finds it: the first event kept, the
			// last two gone; maybe new ones in their place.
			after := openStore(t)
			guest(after, kept)
			want := []string{kept}
			if reused {
				for range 2 {
					id := uuid.NewString()
					guest(after, id)
					want = append(want, id)
				}
			}
			slices.Sort(want)
			stop = startRunner(t, pool, after)
			defer stop()
			// The checkpoint is at or past the log's end from the start:
			// caught up, by the count, with the wrong rows.
			testenv.WaitFor(t, "the read model rebuilt from the log", 10*time.Second, func() bool {
				return slices.Equal(userIDs(t, pool), want)
			})
			waitFor(t, "catch-up after the rebuild", caughtUp(t, pool, after))
			if got := userIDs(t, pool); !slices.Equal(got, want) {
				t.Fatalf("users after the restart: %v, want the log's %v", got, want)
			}
		})
	}
}
