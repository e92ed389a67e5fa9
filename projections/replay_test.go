package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// subjects writes events keeping each subject's version.
type subjects struct {
	t       testing.TB
	s       *eventstore.Store
	mu      sync.Mutex
	version map[string]uint64
}

func newSubjects(t testing.TB, s *eventstore.Store) *subjects {
	return &subjects{t: t, s: s, version: map[string]uint64{}}
}

func (w *subjects) add(kind, id string, ev domain.Event) uint64 {
	w.t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	subj := w.s.Subject(kind, id)
	data, _ := json.Marshal(ev)
	seqs, err := w.s.Append(context.Background(), eventstore.Message{Subject: subj, ExpectedLastSubjectSequence: w.version[subj],
		Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: ev.EventType(), OccurredAt: time.Now().UTC(), Data: data}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.version[subj] = seqs[0]
	return seqs[0]
}

// keyGuests writes n guests with device keys, created a minute apart from
// base, and then what next writes for each (sid is the session to start).
func keyGuests(t testing.TB, s *eventstore.Store, n int, base time.Time, next func(w *subjects, i int, at time.Time, u, sid, kid string)) {
	t.Helper()
	w := newSubjects(t, s)
	for i := range n {
		at := base.Add(time.Duration(i) * time.Minute)
		u, sid, kid := uuid.NewString(), uuid.NewString(), uuid.NewString()
		w.add("user", u, domain.AnonymousUserCreated{UserID: u, ClientID: "c", CreatedAt: at, SessionID: sid})
		w.add("user", u, domain.AnonymousKeyRegistered{UserID: u, KeyID: kid, Algorithm: "ES256", JWK: json.RawMessage(`{}`), Thumbprint: "tp" + kid, RegisteredAt: at})
		next(w, i, at, u, sid, kid)
	}
}

// mixedHistory writes n guests signing in with device keys, and what may
// happen to them next: promotion, expiry, merge into a registered user,
// disabling and deletion (releasing the login ID), refreshes.
func mixedHistory(t testing.TB, s *eventstore.Store, n int) {
	t.Helper()
	keyGuests(t, s, n, time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), func(w *subjects, i int, at time.Time, u, sid, kid string) {
		login := "u" + uuid.NewString()[:8] + "-example-com"
		w.add("session", sid, domain.SessionStarted{SessionID: sid, UserID: u, ClientID: "c", Kind: domain.SessionKindRefreshToken,
			Method: "anonymous_key", TokenHash: "h", IdleTimeout: 60, Lifetime: 600, StartedAt: at.Add(time.Second), KeyID: kid})
		w.add("user", u, domain.UserSignedIn{UserID: u, SessionID: sid, Method: "anonymous_key", KeyID: kid, SignedInAt: at.Add(time.Second)})
		promote := func() {
			w.add("user", u, domain.UserPromoted{UserID: u, LoginIDType: "email", LoginID: login, GuestCreatedAt: at, PromotedAt: at.Add(2 * time.Second)})
			w.add("user", u, domain.AnonymousKeyRemoved{UserID: u, KeyID: kid, RemovedAt: at.Add(2 * time.Second)})
			w.add("loginid", "email:"+login, domain.LoginIDClaimed{LoginIDType: "email", LoginID: login, UserID: u, ClaimedAt: at.Add(2 * time.Second)})
		}
		switch i % 5 {
		case 0:
			promote()
		case 1:
			w.add("session", sid, domain.SessionRevoked{SessionID: sid, UserID: u, Reason: "expired", RevokedAt: at.Add(time.Hour)})
			w.add("user", u, domain.AnonymousUserExpired{UserID: u, Reason: "idle", LastActivityAt: at, ExpiredAt: at.Add(time.Hour)})
		case 2:
			r := uuid.NewString()
			w.add("user", r, domain.UserRegistered{UserID: r, ClientID: "c", LoginIDType: "email", LoginID: login, RegisteredAt: at})
			w.add("loginid", "email:"+login, domain.LoginIDClaimed{LoginIDType: "email", LoginID: login, UserID: r, ClaimedAt: at})
			w.add("user", u, domain.AnonymousUserMerged{GuestID: u, IntoUserID: r, MergedAt: at.Add(3 * time.Second)})
		case 3:
			promote()
			w.add("user", u, domain.UserDisabled{UserID: u, DisabledAt: at.Add(4 * time.Second)})
			w.add("user", u, domain.UserEnabled{UserID: u, EnabledAt: at.Add(5 * time.Second)})
			w.add("user", u, domain.UserDeleted{UserID: u, DeletedAt: at.Add(6 * time.Second)})
			w.add("loginid", "email:"+login, domain.LoginIDReleased{LoginIDType: "email", LoginID: login, UserID: u, ReleasedAt: at.Add(6 * time.Second)})
		case 4:
			w.add("session", sid, domain.SessionRefreshed{SessionID: sid, UserID: u, PreviousHash: "h", TokenHash: "h2", Generation: 1, RefreshedAt: at.Add(time.Minute)})
		}
	})
}

// replayPool is a pool of its own for replays, as `idstream projections
// replay` has (the test's pool is small and the live runner's).
func replayPool(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func dumpAll(t *testing.T, pool *pgxpool.Pool) map[string][]string {
	t.Helper()
	return testenv.Dump(t, pool, testenv.ReadModelTables...)
}

// shape is every index (name and definition) and the persistence of the
// read-model tables.
func shape(t *testing.T, pool *pgxpool.Pool) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT format('%s %s %s', c.relname, c.relpersistence, coalesce(i.indexname || ' ' || i.indexdef, ''))
		FROM pg_class c LEFT JOIN pg_indexes i ON i.schemaname = 'public' AND i.tablename = c.relname
		WHERE c.relnamespace = 'public'::regnamespace AND c.relname = ANY($1) ORDER BY 1`, testenv.ReadModelTables)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// freshDump builds the read models from the whole log in a new database.
func freshDump(t *testing.T, s *eventstore.Store) map[string][]string {
	t.Helper()
	_, fresh := testenv.Database(t)
	stop := startRunner(t, fresh, s)
	waitFor(t, "fresh build", caughtUp(t, fresh, s))
	stop()
	return dumpAll(t, fresh)
}

func shadowSchemas(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'replay\_%'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestReplaySwapsInWhatTheLiveProjectionHas(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	history(t, s, 30)
	mixedHistory(t, s, 40)
	startRunner(t, pool, s)
	waitFor(t, "catch-up", caughtUp(t, pool, s))
	before, indexesBefore := dumpAll(t, pool), shape(t, pool)
	if len(before["identities"]) == 0 || len(before["users"]) < 70 {
		t.Fatalf("history too thin: %d users, %d identities", len(before["users"]), len(before["identities"]))
	}

	for _, p := range projections.All() {
		var phases []string
		res, err := projections.Replay(ctx, rpool, s, p, projections.ReplayOptions{BatchSize: 37, Progress: func(pr projections.ReplayProgress) {
			if len(phases) == 0 || phases[len(phases)-1] != pr.Phase {
				phases = append(phases, pr.Phase)
			}
		}})
		if err != nil {
			t.Fatal(err)
		}
		last, _ := s.LastSequence(ctx)
		if res.From != 0 || res.Position != last {
			t.Fatalf("%s: replayed from %d to %d, want 0 to %d", p.Name(), res.From, res.Position, last)
		}
		want := []string{projections.PhaseBuilding, projections.PhaseIndexing, projections.PhaseCatchingUp, projections.PhaseSwapping, projections.PhaseDone}
		if !reflect.DeepEqual(phases, want) {
			t.Fatalf("%s: phases %v, want %v", p.Name(), phases, want)
		}
	}
	testenv.SameDump(t, "after replay", before, dumpAll(t, pool))
	if got := shape(t, pool); !reflect.DeepEqual(got, indexesBefore) {
		t.Fatalf("indexes or persistence changed:\nbefore %q\nafter  %q", indexesBefore, got)
	}
	if n := shadowSchemas(t, pool); n != 0 {
		t.Fatalf("%d shadow schemas left", n)
	}

	// The live runner goes on, on the new tables.
	history(t, s, 5)
	mixedHistory(t, s, 5)
	waitFor(t, "catch-up after the swap", caughtUp(t, pool, s))
	testenv.SameDump(t, "live after the swap", freshDump(t, s), dumpAll(t, pool))
}

func TestReplayWhileEventsArrive(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	history(t, s, 50)
	startRunner(t, pool, s)
	waitFor(t, "catch-up", caughtUp(t, pool, s))

	// Events keep arriving during the replays, so the live projection is
	// ahead of or behind the shadow at the swap.
	more := make(chan struct{})
	go func() { defer close(more); mixedHistory(t, s, 60) }()
	for _, p := range projections.All() {
		if _, err := projections.Replay(ctx, rpool, s, p, projections.ReplayOptions{BatchSize: 25, SwapLag: 5}); err != nil {
			t.Fatal(err)
		}
	}
	<-more
	waitFor(t, "catch-up", caughtUp(t, pool, s))
	testenv.SameDump(t, "after replays under load", freshDump(t, s), dumpAll(t, pool))
}

func TestReplayResumesAfterInterruption(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	history(t, s, 40)
	mixedHistory(t, s, 30)
	startRunner(t, pool, s)
	waitFor(t, "catch-up", caughtUp(t, pool, s))
	before := dumpAll(t, pool)
	last, _ := s.LastSequence(ctx)

	interrupt := func(after uint64) uint64 {
		t.Helper()
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		_, err := projections.Replay(cctx, rpool, s, projections.Users{}, projections.ReplayOptions{BatchSize: 20, Progress: func(pr projections.ReplayProgress) {
			if pr.Position >= after {
				cancel()
			}
		}})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted replay: %v", err)
		}
		var pos int64
		if err := pool.QueryRow(ctx, `SELECT position FROM replay_users.replay_progress`).Scan(&pos); err != nil {
			t.Fatal(err)
		}
		if pos <= 0 || uint64(pos) >= last {
			t.Fatalf("shadow at %d after the interruption, want within (0, %d)", pos, last)
		}
		return uint64(pos)
	}

	// Interrupted, then started over.
	interrupt(last / 4)
	res, err := projections.Replay(ctx, rpool, s, projections.Users{}, projections.ReplayOptions{BatchSize: 20, Restart: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 {
		t.Fatalf("restart began at %d, want 0", res.From)
	}

	// Interrupted, then resumed.
	at := interrupt(last / 2)
	res, err = projections.Replay(ctx, rpool, s, projections.Users{}, projections.ReplayOptions{BatchSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != at || res.Position != last || res.Events() != last-at {
		t.Fatalf("resumed run: from %d to %d (%d events), want from %d to %d", res.From, res.Position, res.Events(), at, last)
	}
	testenv.SameDump(t, "after a resumed replay", before, dumpAll(t, pool))
}

// failingUsers is the users projection with a bug: it cannot apply the event
// at one sequence.
type failingUsers struct {
	projections.Users
	seq uint64
}

func (f failingUsers) Apply(q *projections.Queue, rec eventstore.Record, ev domain.Event) error {
	if rec.Sequence == f.seq {
		return errors.New("bug")
	}
	return f.Users.Apply(q, rec, ev)
}

func TestReplayRetriesAStoppedProjection(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	history(t, s, 10)
	u := uuid.NewString()
	bad := appendEvent(t, s, s.Subject("user", u), 0, domain.AnonymousUserCreated{UserID: u, ClientID: "c", CreatedAt: time.Now().UTC()})
	history(t, s, 10)

	r, err := projections.NewRunner(pool, s, quiet, projections.Config{BatchSize: 50, RetryBackoff: 50 * time.Millisecond, StandbyPoll: 100 * time.Millisecond},
		failingUsers{seq: bad}, projections.Sessions{}, projections.Identities{}, projections.Funnel{})
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, ctx, r)

	checkpoint := func() (state string, pos int64) {
		_ = pool.QueryRow(ctx, `SELECT state, position FROM projection_checkpoints WHERE name = 'users'`).Scan(&state, &pos)
		return state, pos
	}
	waitFor(t, "users projection to stop", func() bool {
		state, _ := checkpoint()
		return state == projections.StateStopped && r.State("users") == projections.StateStopped
	})
	if _, pos := checkpoint(); uint64(pos) != bad-1 {
		t.Fatalf("stopped with checkpoint %d, want %d", pos, bad-1)
	}

	// The fixed projector rebuilds past the event and swaps in.
	if _, err := projections.Replay(ctx, rpool, s, projections.Users{}, projections.ReplayOptions{BatchSize: 16}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "users projection to run again", func() bool { return r.State("users") == projections.StateRunning })
	history(t, s, 5)
	waitFor(t, "catch-up after the retry", caughtUp(t, pool, s))
	sts, err := projections.Statuses(ctx, pool, s, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range sts {
		if st.State != projections.StateRunning || st.LagEvents != 0 {
			t.Fatalf("status of %s: %s, %d behind", st.Name, st.State, st.LagEvents)
		}
	}
	testenv.SameDump(t, "after the retry", freshDump(t, s), dumpAll(t, pool))
}

func TestReplayStopsOnAnEventItCannotApply(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	history(t, s, 5)
	// A session for a user the log never created: the users projection
	// cannot apply it, live or replayed.
	bad := appendEvent(t, s, s.Subject("session", uuid.NewString()), 0, domain.SessionStarted{SessionID: uuid.NewString(), UserID: uuid.NewString(),
		ClientID: "c", Kind: domain.SessionKindCookie, Method: "anonymous", TokenHash: "h", IdleTimeout: 60, Lifetime: 60, StartedAt: time.Now()})
	history(t, s, 5)

	replayStopsOn(t, rpool, s, projections.Users{}, 8, bad, domain.TypeSessionStarted)
	var pos int64
	if err := pool.QueryRow(ctx, `SELECT position FROM replay_users.replay_progress`).Scan(&pos); err != nil {
		t.Fatalf("shadow not kept: %v", err)
	}
	if uint64(pos) != bad-1 {
		t.Fatalf("shadow kept at %d, want %d", pos, bad-1)
	}
	var live int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&live)
	if live != 0 {
		t.Fatalf("the live table has %d rows; a failed replay must not touch it", live)
	}
}

// BenchmarkReplay measures a replay of each projection over a log of
// REPLAY_BENCH_GUESTS web guests (default 500,000: 1M events, as written by
// `idstream seed guests`). One iteration is one replay of each.
func BenchmarkReplay(b *testing.B) {
	guests := 500000
	if v := os.Getenv("REPLAY_BENCH_GUESTS"); v != "" {
		guests, _ = strconv.Atoi(v)
	}
	s, err := eventstore.Open(context.Background(), testenv.StartNATS(b).Connect(b), eventstore.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	_, rpool := testenv.Database(b)
	ctx := context.Background()
	seedGuests(b, s, guests)
	last, _ := s.LastSequence(ctx)
	b.ResetTimer()
	for range b.N {
		for _, p := range projections.All() {
			res, err := projections.Replay(ctx, rpool, s, p, projections.ReplayOptions{Restart: true})
			if err != nil {
				b.Fatal(err)
			}
			if res.Position != last {
				b.Fatalf("%s replayed to %d, want %d", p.Name(), res.Position, last)
			}
			b.ReportMetric(res.Rate(), p.Name()+"_events/s")
		}
	}
}

// seedGuests appends n guests (user created, session started), 250 per
// atomic append.
func seedGuests(b *testing.B, s *eventstore.Store, n int) {
	b.Helper()
	at := time.Now().UTC().Add(-24 * time.Hour)
	msg := func(kind, id string, ev domain.Event) eventstore.Message {
		data, _ := json.Marshal(ev)
		return eventstore.Message{Subject: s.Subject(kind, id),
			Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: ev.EventType(), OccurredAt: at, Data: data}}
	}
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for size := range work {
				msgs := make([]eventstore.Message, 0, 2*size)
				for range size {
					u, sid := uuid.NewString(), uuid.NewString()
					msgs = append(msgs, msg("user", u, domain.AnonymousUserCreated{UserID: u, ClientID: "c", CreatedAt: at, SessionID: sid}),
						msg("session", sid, domain.SessionStarted{SessionID: sid, UserID: u, ClientID: "c", Kind: domain.SessionKindRefreshToken,
							Method: "anonymous", TokenHash: "h", IdleTimeout: 3600, Lifetime: 86400, StartedAt: at}))
				}
				if _, err := s.Append(context.Background(), msgs...); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for left := n; left > 0; left -= 250 {
		work <- min(left, 250)
	}
	close(work)
	wg.Wait()
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	fmt.Fprintf(os.Stderr, "seeded %d guests\n", n)
}

// A run of inserts is sent with COPY; when one of its rows cannot be stored,
// the live projection and a replay both still stop on exactly that event.
func TestDuplicateInACopiedRunStopsOnItsEvent(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	start := func(sid string) domain.SessionStarted {
		return domain.SessionStarted{SessionID: sid, UserID: uuid.NewString(), ClientID: "c", Kind: domain.SessionKindCookie,
			Method: "anonymous", TokenHash: "h", IdleTimeout: 60, Lifetime: 60, StartedAt: time.Now().UTC()}
	}
	var first string
	for i := range 40 {
		sid := uuid.NewString()
		if i == 0 {
			first = sid
		}
		appendEvent(t, s, s.Subject("session", sid), 0, start(sid))
	}
	// The same session started again, under another subject.
	bad := appendEvent(t, s, s.Subject("session", uuid.NewString()), 0, start(first))
	for range 20 {
		sid := uuid.NewString()
		appendEvent(t, s, s.Subject("session", sid), 0, start(sid))
	}

	replayStopsOn(t, rpool, s, projections.Sessions{}, 100, bad, domain.TypeSessionStarted)
	var pos int64
	if err := pool.QueryRow(ctx, `SELECT position FROM replay_sessions.replay_progress`).Scan(&pos); err != nil || uint64(pos) != bad-1 {
		t.Fatalf("shadow kept at %d (%v), want %d", pos, err, bad-1)
	}

	liveStopsOn(t, pool, s, projections.Sessions{}, bad)
	var n int
	_ = pool.QueryRow(ctx, `SELECT count(*) FROM sessions`).Scan(&n)
	if n != 40 {
		t.Fatalf("%d sessions projected, want the 40 before the duplicate", n)
	}
}

// runUntilCleanup runs the runner until the test ends.
func runUntilCleanup(t *testing.T, ctx context.Context, r *projections.Runner) {
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { r.Run(rctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// outOfOrder writes histories whose updates fold into the inserted rows in
// every way the projectors' updates can: times that go backwards (greatest
// keeps the later, also within a microsecond), repeated refreshes
// (refresh_count adds up), a key used again, a NULL set back, expiry.
func outOfOrder(t *testing.T, s *eventstore.Store, n int) {
	t.Helper()
	keyGuests(t, s, n, time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC), func(w *subjects, i int, at time.Time, u, sid, kid string) {
		// A session that started (by its clock) before the user was created.
		w.add("session", sid, domain.SessionStarted{SessionID: sid, UserID: u, ClientID: "c", Kind: domain.SessionKindRefreshToken,
			Method: "anonymous_key", TokenHash: "h", IdleTimeout: 60, Lifetime: 600, StartedAt: at.Add(-time.Second), KeyID: kid})
		for r := range 3 {
			w.add("session", sid, domain.SessionRefreshed{SessionID: sid, UserID: u, PreviousHash: "h", TokenHash: "h2", Generation: r + 1,
				RefreshedAt: at.Add(time.Duration(3-r) * time.Second)})
		}
		sid2 := uuid.NewString()
		w.add("session", sid2, domain.SessionStarted{SessionID: sid2, UserID: u, ClientID: "c", Kind: domain.SessionKindRefreshToken,
			Method: "anonymous_key", TokenHash: "h3", IdleTimeout: 60, Lifetime: 600, StartedAt: at.Add(-2 * time.Second), KeyID: kid})
		w.add("user", u, domain.UserSignedIn{UserID: u, SessionID: sid2, Method: "anonymous_key", KeyID: kid, SignedInAt: at.Add(-2 * time.Second)})
		w.add("session", sid2, domain.SessionRevoked{SessionID: sid2, UserID: u, Reason: "logout", RevokedAt: at.Add(time.Minute)})
		// Within a microsecond of the last refresh, either side.
		w.add("session", sid, domain.SessionRefreshed{SessionID: sid, UserID: u, PreviousHash: "h2", TokenHash: "h4", Generation: 4,
			RefreshedAt: at.Add(3*time.Second + time.Duration(i%3-1)*300*time.Nanosecond)})
		switch i % 3 {
		case 0:
			w.add("user", u, domain.UserDisabled{UserID: u, DisabledAt: at.Add(time.Minute)})
			w.add("user", u, domain.UserEnabled{UserID: u, EnabledAt: at.Add(2 * time.Minute)})
		case 1:
			w.add("user", u, domain.AnonymousUserExpired{UserID: u, Reason: "idle", LastActivityAt: at, ExpiredAt: at.Add(time.Hour)})
		}
	})
}

// TestFoldedReplayEqualsOneEventAtATime: a replay in batches large enough
// for updates to fold into their rows builds the same tables as the live
// runner applying one event per transaction, where nothing can fold.
func TestFoldedReplayEqualsOneEventAtATime(t *testing.T) {
	s := openStore(t)
	_, pool := testenv.Database(t)
	url, replayed := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	history(t, s, 20)
	mixedHistory(t, s, 40)
	outOfOrder(t, s, 20)

	r, err := projections.NewRunner(pool, s, quiet, projections.Config{BatchSize: 1, RetryBackoff: 50 * time.Millisecond, StandbyPoll: time.Hour},
		projections.All()...)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, ctx, r)
	waitFor(t, "one-at-a-time build", caughtUp(t, pool, s))
	want := dumpAll(t, pool)
	if len(want["users"]) < 80 || len(want["sessions"]) < 100 || len(want["identities"]) < 40 {
		t.Fatalf("history too thin: %d users, %d sessions, %d identities", len(want["users"]), len(want["sessions"]), len(want["identities"]))
	}
	for _, p := range projections.All() {
		res, err := projections.Replay(ctx, rpool, s, p, projections.ReplayOptions{BatchSize: 100000})
		if err != nil {
			t.Fatal(err)
		}
		// Every projection has updates of rows inserted earlier in the log.
		if res.Folded == 0 {
			t.Fatalf("%s: no update folded", p.Name())
		}
		t.Logf("%s: %d events, %d updates folded", p.Name(), res.Events(), res.Folded)
	}
	testenv.SameDump(t, "folded replay", want, dumpAll(t, replayed))
}

// TestFoldedRowThatFailsNamesItsEvent: a promotion to a login ID another
// user holds folds into the guest's row, which then fails as a whole; the
// replay and the live runner both stop on the promotion, not on the guest's
// creation, with everything before it landed.
func TestFoldedRowThatFailsNamesItsEvent(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	rpool := replayPool(t, url)
	ctx := context.Background()

	at := time.Now().UTC()
	history(t, s, 5)
	holder, guest := uuid.NewString(), uuid.NewString()
	appendEvent(t, s, s.Subject("user", holder), 0, domain.UserRegistered{UserID: holder, ClientID: "c", LoginIDType: "email",
		LoginID: "taken@example.com", RegisteredAt: at})
	v := appendEvent(t, s, s.Subject("user", guest), 0, domain.AnonymousUserCreated{UserID: guest, ClientID: "c", CreatedAt: at})
	bad := appendEvent(t, s, s.Subject("user", guest), v, domain.UserPromoted{UserID: guest, LoginIDType: "email",
		LoginID: "taken@example.com", GuestCreatedAt: at, PromotedAt: at})
	history(t, s, 5)

	replayStopsOn(t, rpool, s, projections.Users{}, 1000, bad, domain.TypeUserPromoted)
	var pos int64
	var guests int
	if err := pool.QueryRow(ctx, `SELECT position, (SELECT count(*) FROM replay_users.users WHERE id = $1)
		FROM replay_users.replay_progress`, guest).Scan(&pos, &guests); err != nil || uint64(pos) != bad-1 || guests != 1 {
		t.Fatalf("shadow kept at %d with %d guest rows (%v), want %d and the guest", pos, guests, err, bad-1)
	}

	liveStopsOn(t, pool, s, projections.Users{}, bad)
}

// liveStopsOn runs p live from the start of the log and checks that it stops
// on the event at bad, recorded as the failure, with the checkpoint right
// before it.
func liveStopsOn(t *testing.T, pool *pgxpool.Pool, s *eventstore.Store, p projections.Projector, bad uint64) {
	t.Helper()
	r, err := projections.NewRunner(pool, s, quiet, projections.Config{BatchSize: 500, RetryBackoff: 50 * time.Millisecond, StandbyPoll: time.Hour}, p)
	if err != nil {
		t.Fatal(err)
	}
	runUntilCleanup(t, context.Background(), r)
	waitFor(t, p.Name()+" projection to stop", func() bool { return r.State(p.Name()) == projections.StateStopped })
	var pos, failed int64
	if err := pool.QueryRow(context.Background(), `SELECT c.position, f.sequence FROM projection_checkpoints c
		JOIN projection_failures f ON f.projection = c.name WHERE c.name = $1`, p.Name()).Scan(&pos, &failed); err != nil {
		t.Fatal(err)
	}
	if uint64(failed) != bad || uint64(pos) != bad-1 {
		t.Fatalf("live projection stopped at %d with checkpoint %d, want %d and %d", failed, pos, bad, bad-1)
	}
}

// replayStopsOn replays p in batches of batch events and checks that it
// stops with an error naming the event at bad, of type typ.
func replayStopsOn(t *testing.T, rpool *pgxpool.Pool, s *eventstore.Store, p projections.Projector, batch int, bad uint64, typ string) {
	t.Helper()
	_, err := projections.Replay(context.Background(), rpool, s, p, projections.ReplayOptions{BatchSize: batch})
	var ee *projections.EventError
	if !errors.As(err, &ee) || ee.Sequence != bad || ee.Type != typ {
		t.Fatalf("replay error %v, want one naming event %d (%s)", err, bad, typ)
	}
}
