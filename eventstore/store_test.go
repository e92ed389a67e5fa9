package eventstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
)

func openStore(t *testing.T, n *testenv.NATS) *eventstore.Store {
	t.Helper()
	s, err := eventstore.Open(context.Background(), n.Connect(t), eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func msg(subject string, expected uint64, n int) eventstore.Message {
	data, _ := json.Marshal(map[string]int{"n": n})
	return eventstore.Message{
		Subject:                     subject,
		ExpectedLastSubjectSequence: expected,
		Envelope: eventstore.Envelope{
			ID: uuid.NewString(), Type: "test.happened.v1", OccurredAt: time.Now().UTC(), Data: data,
		},
	}
}

func TestAppendAndLoad(t *testing.T) {
	s := openStore(t, testenv.StartNATS(t))
	ctx := context.Background()
	subj := s.Subject("user", uuid.NewString())

	recs, v, err := s.Load(ctx, subj)
	if err != nil || len(recs) != 0 || v != 0 {
		t.Fatalf("empty load: %v %d %v", recs, v, err)
	}
	seqs, err := s.Append(ctx, msg(subj, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	other := s.Subject("session", uuid.NewString())
	seqs2, err := s.Append(ctx, msg(subj, seqs[0], 2), msg(other, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	if seqs2[1] != seqs2[0]+1 {
		t.Fatalf("atomic batch not contiguous: %v", seqs2)
	}
	recs, v, err = s.Load(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || v != seqs2[0] || recs[0].Sequence != seqs[0] || recs[1].Type != "test.happened.v1" {
		t.Fatalf("load: %+v version %d", recs, v)
	}
	// A stale expectation is a conflict, and a multi-message append with one
	// stale expectation writes nothing at all.
	if _, err := s.Append(ctx, msg(subj, seqs[0], 4)); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("want conflict, got %v", err)
	}
	third := s.Subject("session", uuid.NewString())
	if _, err := s.Append(ctx, msg(third, 0, 5), msg(subj, seqs[0], 6)); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("want conflict, got %v", err)
	}
	if recs, _, _ := s.Load(ctx, third); len(recs) != 0 {
		t.Fatalf("half of a rejected append was written: %+v", recs)
	}
}

func TestLoadManyEvents(t *testing.T) {
	s := openStore(t, testenv.StartNATS(t))
	ctx := context.Background()
	subj := s.Subject("session", uuid.NewString())
	var v uint64
	for i := range 1200 {
		seqs, err := s.Append(ctx, msg(subj, v, i))
		if err != nil {
			t.Fatal(err)
		}
		v = seqs[0]
	}
	recs, version, err := s.Load(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1200 || version != v {
		t.Fatalf("loaded %d events, version %d want %d", len(recs), version, v)
	}
	// From a cached version: the one next event first, then batches.
	later, lv, err := s.LoadAfter(ctx, subj, recs[0].Sequence)
	if err != nil || len(later) != 1199 || lv != v || later[0].Sequence != recs[1].Sequence {
		t.Fatalf("loaded %d events after the first (version %d), %v", len(later), lv, err)
	}
}

// One winner among concurrent appends on one subject: one-message appends
// published on their own (DirectSingles) or grouped into batches, and
// two-message appends (always batches), mixed.
func TestConcurrentAppendsOneWinner(t *testing.T) {
	for _, direct := range []bool{true, false} {
		t.Run(fmt.Sprintf("direct singles %v", direct), func(t *testing.T) {
			opts := eventstore.DefaultOptions()
			opts.DirectSingles = direct
			s, err := eventstore.Open(context.Background(), testenv.StartNATS(t).Connect(t), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			concurrentAppendsOneWinner(t, s)
		})
	}
}

func concurrentAppendsOneWinner(t *testing.T, s *eventstore.Store) {
	ctx := context.Background()
	for round := range 20 {
		subj := s.Subject("user", fmt.Sprintf("race-%d", round))
		var wins, conflicts atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				msgs := []eventstore.Message{msg(subj, 0, i)}
				if i%2 == 1 {
					msgs = append(msgs, msg(s.Subject("session", uuid.NewString()), 0, i))
				}
				_, err := s.Append(ctx, msgs...)
				switch {
				case err == nil:
					wins.Add(1)
				case errors.Is(err, eventstore.ErrConflict):
					conflicts.Add(1)
				default:
					t.Errorf("unexpected: %v", err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 || conflicts.Load() != 7 {
			t.Fatalf("round %d: %d wins, %d conflicts", round, wins.Load(), conflicts.Load())
		}
		if recs, _, _ := s.Load(ctx, subj); len(recs) != 1 {
			t.Fatalf("round %d: %d events", round, len(recs))
		}
	}
}

func TestGroupedAppendsIsolateConflicts(t *testing.T) {
	s := openStore(t, testenv.StartNATS(t))
	ctx := context.Background()
	taken := s.Subject("user", "taken")
	if _, err := s.Append(ctx, msg(taken, 0, 0)); err != nil {
		t.Fatal(err)
	}
	// Many appends at once are grouped; the few that conflict must not take
	// the others down with them.
	const n = 400
	var ok, conflicts atomic.Int32
	var wg sync.WaitGroup
	// Each sequence returned must be that of its own message (the aggregate
	// cache in app folds appended events at them).
	var mu sync.Mutex
	written := map[uint64]eventstore.Message{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subj := s.Subject("user", uuid.NewString())
			if i%50 == 0 {
				subj = taken
			}
			msgs := []eventstore.Message{msg(subj, 0, i), msg(s.Subject("session", uuid.NewString()), 0, i)}
			seqs, err := s.Append(ctx, msgs...)
			switch {
			case err == nil:
				ok.Add(1)
				mu.Lock()
				for j, q := range seqs {
					written[q] = msgs[j]
				}
				mu.Unlock()
			case errors.Is(err, eventstore.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != n-n/50 || conflicts.Load() != n/50 {
		t.Fatalf("%d ok, %d conflicts", ok.Load(), conflicts.Load())
	}
	if len(written) != 2*int(ok.Load()) {
		t.Fatalf("%d distinct sequences for %d messages", len(written), 2*ok.Load())
	}
	for q, m := range written {
		rec, err := s.Get(ctx, q)
		if err != nil || rec.Subject != m.Subject || rec.ID != m.Envelope.ID {
			t.Fatalf("sequence %d holds %s %s, the append returned it for %s %s (%v)", q, rec.Subject, rec.ID, m.Subject, m.Envelope.ID, err)
		}
	}
}

func TestIdempotencyKeyDedupes(t *testing.T) {
	s := openStore(t, testenv.StartNATS(t))
	ctx := context.Background()
	m := msg(s.Subject("user", uuid.NewString()), 0, 1)
	m.MsgID = "key-1"
	if _, err := s.Append(ctx, m); err != nil {
		t.Fatal(err)
	}
	m2 := msg(s.Subject("user", uuid.NewString()), 0, 2)
	m2.MsgID = "key-1"
	if _, err := s.Append(ctx, m2, msg(s.Subject("session", uuid.NewString()), 0, 3)); !errors.Is(err, eventstore.ErrDuplicate) {
		t.Fatalf("want duplicate, got %v", err)
	}
	if _, err := s.Append(ctx, m2); !errors.Is(err, eventstore.ErrDuplicate) {
		t.Fatalf("want duplicate, got %v", err)
	}
	if recs, _, _ := s.Load(ctx, m2.Subject); len(recs) != 0 {
		t.Fatal("duplicate was written")
	}
}

func TestAcknowledgedAppendSurvivesRestart(t *testing.T) {
	n := testenv.StartNATS(t)
	ctx := context.Background()
	s, err := eventstore.Open(ctx, n.Connect(t), eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	subj := s.Subject("user", uuid.NewString())
	if _, err := s.Append(ctx, msg(subj, 0, 1), msg(s.Subject("session", uuid.NewString()), 0, 2)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	n.Restart(t)
	s2 := openStore(t, n)
	recs, _, err := s2.Load(ctx, subj)
	if err != nil || len(recs) != 1 {
		t.Fatalf("after restart: %v %v", recs, err)
	}
}

func openStoreB(b *testing.B, n *testenv.NATS) *eventstore.Store {
	b.Helper()
	s, err := eventstore.Open(context.Background(), n.Connect(b), eventstore.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

func msgsFor(s *eventstore.Store, from, n int) []eventstore.Message {
	out := make([]eventstore.Message, n)
	for i := range out {
		out[i] = msg(s.Subject("session", fmt.Sprintf("s-%d", from+i)), 0, i)
	}
	return out
}

func TestLoadAfter(t *testing.T) {
	for _, replicas := range []int{1, 3} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			nc := func() *nats.Conn {
				if replicas == 1 {
					return testenv.StartNATS(t).Connect(t)
				}
				c := testenv.StartCluster(t, 3)
				conn, err := nats.Connect(c.Servers[0].ClientURL())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(conn.Close)
				return conn
			}()
			opts := eventstore.DefaultOptions()
			opts.Stream.Replicas = replicas
			s, err := eventstore.Open(context.Background(), nc, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.Close)
			// With the leader check, the load is confirmed with the leader
			// from where it started, not from the subject's first event.
			ctx := eventstore.WithLeaderCheck(context.Background())
			subj, other := s.Subject("user", uuid.NewString()), s.Subject("user", uuid.NewString())
			var seqs []uint64
			var v, ov uint64
			for i := range 5 {
				got, err := s.Append(ctx, msg(subj, v, i), msg(other, ov, i))
				if err != nil {
					t.Fatal(err)
				}
				v, ov = got[0], got[1]
				seqs = append(seqs, v)
			}
			for _, after := range []uint64{0, seqs[1], seqs[1] + 1, seqs[4]} {
				recs, version, err := s.LoadAfter(ctx, subj, after)
				if err != nil {
					t.Fatal(err)
				}
				var want []uint64
				for _, q := range seqs {
					if q > after {
						want = append(want, q)
					}
				}
				var got []uint64
				for _, r := range recs {
					got = append(got, r.Sequence)
				}
				if fmt.Sprint(got) != fmt.Sprint(want) || version != seqs[4] {
					t.Fatalf("after %d: sequences %v version %d, want %v version %d", after, got, version, want, seqs[4])
				}
			}
		})
	}
}

// openHeld opens a store whose committer starts when start is called.
func openHeld(t *testing.T, nc *nats.Conn) (*eventstore.Store, func() int, func()) {
	t.Helper()
	s, queued, start, err := eventstore.OpenHeld(context.Background(), nc, eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, queued, start
}

// appendQueued makes n two-message appends on a held store (a user subject
// subjectOf(i) expecting no event, and a new session), starts its
// committer once all are queued (after before), and counts the outcomes.
func appendQueued(t *testing.T, s *eventstore.Store, queued func() int, start func(), n int, subjectOf func(i int) string, before func()) (ok, conflicts int) {
	t.Helper()
	ctx := context.Background()
	var oks, refused atomic.Int32
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Append(ctx, msg(subjectOf(i), 0, i), msg(s.Subject("session", uuid.NewString()), 0, i))
			switch {
			case err == nil:
				oks.Add(1)
			case errors.Is(err, eventstore.ErrConflict):
				refused.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	testenv.WaitFor(t, "every append queued", 10*time.Second, func() bool { return queued() == n })
	before()
	start()
	wg.Wait()
	return int(oks.Load()), int(refused.Load())
}

// Commands of one group that write the same subject: all but the first are
// held back from the batch (in it, the second would make the server refuse
// the whole batch, and every command be committed again) and, once the
// first is written, answered ErrConflict without being sent; the others of
// the group are written in one batch. Issue 22: under key-pair re-logins at
// 128 clients, such refusals took the committer for about a third of the
// time.
func TestGroupHoldsBackCommandsOnASubjectTaken(t *testing.T) {
	nc := testenv.StartNATS(t).Connect(t)
	s, queued, start := openHeld(t, nc)
	ctx := context.Background()
	const subjects, contenders, others = 10, 4, 40
	var retries, held float64
	ok, conflicts := appendQueued(t, s, queued, start, subjects*contenders+others, func(i int) string {
		if i < subjects*contenders {
			return s.Subject("user", fmt.Sprintf("contended-%d", i%subjects))
		}
		return s.Subject("user", uuid.NewString())
	}, func() { retries, held, _ = eventstore.GroupCounters() })
	if ok != subjects+others || conflicts != subjects*(contenders-1) {
		t.Fatalf("%d written, %d conflicts; want %d, %d", ok, conflicts, subjects+others, subjects*(contenders-1))
	}
	r2, h2, _ := eventstore.GroupCounters()
	if r2 != retries || h2-held != subjects*(contenders-1) {
		t.Fatalf("group retries +%v (want 0), held conflicts +%v (want %d)", r2-retries, h2-held, subjects*(contenders-1))
	}
	for i := range subjects {
		if recs, _, _ := s.Load(ctx, s.Subject("user", fmt.Sprintf("contended-%d", i))); len(recs) != 1 {
			t.Fatalf("subject %d: %d events", i, len(recs))
		}
	}
}

// staleSubjects writes one event on each of n new user subjects, through
// another store, so that a command expecting none of them is stale.
func staleSubjects(t *testing.T, nc *nats.Conn, n int) []string {
	t.Helper()
	ctx := context.Background()
	direct, err := eventstore.Open(ctx, nc, eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	out := make([]string, n)
	for i := range out {
		out[i] = direct.Subject("user", uuid.NewString())
		if _, err := direct.Append(ctx, msg(out[i], 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// A command that conflicts with the log fails its group's batch; the group
// is committed again in halves down to it, not command by command.
func TestRefusedGroupIsSplitDownToTheCommandAtFault(t *testing.T) {
	nc := testenv.StartNATS(t).Connect(t)
	taken := staleSubjects(t, nc, 1)[0]
	s, queued, start := openHeld(t, nc)
	const n = 64
	var retries, sent float64
	ok, conflicts := appendQueued(t, s, queued, start, n, func(i int) string {
		if i == n/3 {
			return taken
		}
		return s.Subject("user", uuid.NewString())
	}, func() { retries, _, sent = eventstore.GroupCounters() })
	if ok != n-1 || conflicts != 1 {
		t.Fatalf("%d ok, %d conflicts", ok, conflicts)
	}
	// The refused batch, then two halves at each of log2(64) = 6 levels: 13
	// commits (a few more if the server abandoned a batch as incomplete and
	// it was sent again), where one by one took 65.
	r2, _, sent2 := eventstore.GroupCounters()
	if r2-retries != 1 || sent2-sent < 13 || sent2-sent > 16 {
		t.Fatalf("group retries +%v (want 1), commits +%v (want 13)", r2-retries, sent2-sent)
	}
	// Nothing written twice: the one event before, and 63 commands of two.
	if last, _ := s.LastSequence(context.Background()); last != 1+2*(n-1) {
		t.Fatalf("last sequence %d, want %d", last, 1+2*(n-1))
	}
}

// Many stale commands in one group: the halves are committed side by side;
// every other command is written once, every stale one refused.
func TestRefusedGroupWithManyStaleCommands(t *testing.T) {
	nc := testenv.StartNATS(t).Connect(t)
	const n, stale = 240, 60
	taken := staleSubjects(t, nc, stale)
	s, queued, start := openHeld(t, nc)
	ok, conflicts := appendQueued(t, s, queued, start, n, func(i int) string {
		if i%(n/stale) == 0 {
			return taken[i/(n/stale)]
		}
		return s.Subject("user", uuid.NewString())
	}, func() {})
	if ok != n-stale || conflicts != stale {
		t.Fatalf("%d ok, %d conflicts; want %d, %d", ok, conflicts, n-stale, stale)
	}
	if last, _ := s.LastSequence(context.Background()); last != uint64(stale+2*(n-stale)) {
		t.Fatalf("last sequence %d, want %d (nothing written twice)", last, stale+2*(n-stale))
	}
}

// The server's "batch incomplete" answer (nothing written) is recognised as
// such once classified, so the batch is sent again rather than split.
func TestIncompleteBatchIsRecognised(t *testing.T) {
	err := eventstore.Classify(&eventstore.APIError{Code: 400, ErrCode: 10176, Description: "atomic publish batch is incomplete"})
	if !eventstore.IncompleteBatch(err) {
		t.Fatalf("%v not recognised as an incomplete batch", err)
	}
	if eventstore.IncompleteBatch(eventstore.Classify(&eventstore.APIError{Code: 400, ErrCode: 10071, Description: "wrong last sequence"})) {
		t.Fatal("a conflict taken for an incomplete batch")
	}
}
