package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// countingStore is the real store, counting what loads read.
type countingStore struct {
	Store
	records atomic.Int64
	fromTop atomic.Int64 // loads that started at the subject's first event
	reads   atomic.Int64 // loads that asked the log
}

func (c *countingStore) LoadAfter(ctx context.Context, subject string, after uint64) ([]eventstore.Record, uint64, error) {
	c.reads.Add(1)
	recs, v, err := c.Store.LoadAfter(ctx, subject, after)
	c.records.Add(int64(len(recs)))
	if after == 0 {
		c.fromTop.Add(1)
	}
	return recs, v, err
}

// len is how many states the cache holds.
func (c *aggregateCache) len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func aggregateService(t *testing.T) (*core, *countingStore) {
	t.Helper()
	// The embedded server as testenv starts it (testenv imports this package).
	ns, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{StoreDir: t.TempDir(), Port: -1, SyncAlways: true, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	st, err := eventstore.Open(context.Background(), nc, eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	spy := &countingStore{Store: st}
	return &core{store: spy, clock: clock.NewFake(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)), aggregates: newAggregateCache(1000)}, spy
}

// coldUser rebuilds the user from its first event, without the cache.
func coldUser(t *testing.T, s *core, id string) (domain.User, uint64) {
	t.Helper()
	u, v, err := loadAggregate(context.Background(), s.store, nil, s.userSubject(id), domain.FoldUser)
	if err != nil {
		t.Fatal(err)
	}
	return u, v
}

func TestCachedLoadEqualsFullLoadAndReadsOnlyNewEvents(t *testing.T) {
	s, spy := aggregateService(t)
	// Another node: the same log, a cache of its own.
	s2 := &core{store: s.store, clock: s.clock, aggregates: newAggregateCache(1000)}
	ctx := context.Background()
	now := s.clock.Now()
	id, other := uuid.NewString(), uuid.NewString()
	for _, uid := range []string{id, other} {
		if err := s.appendEvents(ctx, Meta{}, pending{subject: s.userSubject(uid), event: domain.AnonymousUserCreated{
			UserID: uid, ClientID: "web", SessionID: uuid.NewString(), CreatedAt: now}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.LoadUser(ctx, id); err != nil {
		t.Fatal(err)
	}
	signIn := func(i int, v uint64) []pending {
		sid := uuid.NewString()
		return []pending{
			{subject: s.sessionSubject(sid), event: domain.SessionStarted{SessionID: sid, UserID: id, ClientID: "web", Kind: domain.SessionKindRefreshToken, StartedAt: now}},
			{subject: s.userSubject(id), expected: v, event: domain.UserSignedIn{UserID: id, SessionID: sid, Method: domain.MethodAnonymousKey, KeyID: "k", SignedInAt: now.Add(time.Duration(i) * time.Minute)}},
		}
	}
	// Every step appends to the user (and to others in between), from this
	// node or from the other one, then loads the user here, warm and cold.
	steps := []func(i int, v uint64) []pending{}
	for range 40 {
		steps = append(steps, signIn)
	}
	steps = append(steps,
		func(i int, v uint64) []pending {
			// Two events on the user in one append, another subject between.
			sid := uuid.NewString()
			return []pending{
				{subject: s.userSubject(id), expected: v, event: domain.AnonymousKeyRegistered{UserID: id, KeyID: "k1", Algorithm: "ES256", JWK: []byte(`{"kty":"EC"}`), RegisteredAt: now}},
				{subject: s.sessionSubject(sid), event: domain.SessionStarted{SessionID: sid, UserID: id, ClientID: "web", Kind: domain.SessionKindRefreshToken, StartedAt: now}},
				{subject: s.userSubject(id), event: domain.UserSignedIn{UserID: id, SessionID: sid, Method: domain.MethodAnonymousKey, KeyID: "k1", SignedInAt: now}},
			}
		},
		func(i int, v uint64) []pending {
			return []pending{{subject: s.userSubject(id), expected: v, event: domain.UserPromoted{UserID: id, LoginIDType: "email", LoginID: "a@example.com", PromotedAt: now}}}
		},
		func(i int, v uint64) []pending {
			return []pending{{subject: s.userSubject(id), expected: v, event: domain.UserDisabled{UserID: id}}}
		},
	)
	for i, step := range steps {
		// Even steps are this node's own commands: they advance its cache.
		// Odd ones are the other node's: a load here reads what they wrote.
		writer, newEvents := s, int64(0)
		if i%2 == 1 {
			writer = s2
			for _, p := range step(i, 0) {
				if p.subject == s.userSubject(id) {
					newEvents++
				}
			}
		}
		_, v, err := writer.LoadUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := writer.appendEvents(ctx, Meta{}, step(i, v)...); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		_, ov := coldUser(t, s, other)
		if err := s2.appendEvents(ctx, Meta{}, pending{subject: s.userSubject(other), expected: ov, event: domain.UserSignedIn{UserID: other, SessionID: uuid.NewString(), SignedInAt: now}}); err != nil {
			t.Fatal(err)
		}
		read, tops := spy.records.Load(), spy.fromTop.Load()
		warm, wv, err := s.LoadUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := spy.records.Load() - read; got != newEvents || spy.fromTop.Load() != tops {
			t.Fatalf("step %d: the warm load read %d events (from the top: %v), want %d", i, got, spy.fromTop.Load() != tops, newEvents)
		}
		cold, cv := coldUser(t, s, id)
		if wv != cv || !reflect.DeepEqual(warm, cold) {
			t.Fatalf("step %d: cached load differs from a full load:\n warm %d %+v\n cold %d %+v", i, wv, warm, cv, cold)
		}
	}
	if u, _ := coldUser(t, s, id); len(u.SessionIDs()) != 42 || u.IsAnonymous() || u.CanSignIn() == nil {
		t.Fatalf("history not folded: %d sessions, anonymous %v, can sign in %v", len(u.SessionIDs()), u.IsAnonymous(), u.CanSignIn())
	}

	// A failed append changes nothing cached.
	_, v, _ := s.LoadUser(ctx, id)
	if err := s.appendEvents(ctx, Meta{}, pending{subject: s.userSubject(id), expected: v - 1, event: domain.UserEnabled{UserID: id}}); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("stale append: %v", err)
	}
	again, av, err := s.LoadUser(ctx, id)
	if cold, cv := coldUser(t, s, id); err != nil || av != cv || !reflect.DeepEqual(again, cold) {
		t.Fatalf("after a rejected append: version %d want %d, %v", av, cv, err)
	}
	// What a caller does with a state's slices does not reach the cache.
	ids := again.SessionIDs()
	ids[0] = "changed"
	if after, _, _ := s.LoadUser(ctx, id); after.SessionIDs()[0] == "changed" {
		t.Fatal("a caller's change to a returned slice reached the cached state")
	}
}

func TestCachedSessionsUnderConcurrentRefreshes(t *testing.T) {
	s, _ := aggregateService(t)
	ctx := context.Background()
	sid := uuid.NewString()
	if err := s.appendEvents(ctx, Meta{}, pending{subject: s.sessionSubject(sid), event: domain.SessionStarted{
		SessionID: sid, UserID: "u", ClientID: "web", Kind: domain.SessionKindRefreshToken, TokenHash: "h0", StartedAt: s.clock.Now()}}); err != nil {
		t.Fatal(err)
	}
	// Eight writers refresh the one session at the version their (cached)
	// load saw; conflicts are retried, as commands do.
	var wins atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 15; {
				_, v, err := s.LoadSession(ctx, sid)
				if err != nil {
					t.Error(err)
					return
				}
				err = s.appendEvents(ctx, Meta{}, pending{subject: s.sessionSubject(sid), expected: v, event: domain.SessionRefreshed{
					SessionID: sid, UserID: "u", PreviousHash: fmt.Sprintf("h-%d", v), TokenHash: fmt.Sprintf("h-%d-%d", w, i), Generation: i, RefreshedAt: s.clock.Now()}})
				if errors.Is(err, eventstore.ErrConflict) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				wins.Add(1)
				i++
			}
		}()
	}
	wg.Wait()
	warm, wv, err := s.LoadSession(ctx, sid)
	if err != nil {
		t.Fatal(err)
	}
	cold, cv, err := loadAggregate(ctx, s.store, nil, s.sessionSubject(sid), domain.FoldSession)
	if err != nil {
		t.Fatal(err)
	}
	if wv != cv || !reflect.DeepEqual(warm, cold) {
		t.Fatalf("cached session differs from a full load: version %d / %d\n warm %+v\n cold %+v", wv, cv, warm, cold)
	}
	if recs, _, err := s.store.Load(ctx, s.sessionSubject(sid)); err != nil || len(recs) != 1+8*15 || wins.Load() != 8*15 {
		t.Fatalf("%d events after %d refreshes: %v", len(recs), wins.Load(), err)
	}
}

func TestCachedUsersUnderConcurrentGroupedAppends(t *testing.T) {
	s, spy := aggregateService(t)
	ctx := context.Background()
	now := s.clock.Now()
	// Eight guests sign in at once, many times, on one node: their appends
	// (a new session and the sign-in on the guest) share group commits, and
	// each advances the cached guest.
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = uuid.NewString()
		if err := s.appendEvents(ctx, Meta{}, pending{subject: s.userSubject(ids[i]), event: domain.AnonymousUserCreated{UserID: ids[i], ClientID: "web", CreatedAt: now}}); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 25 {
				_, v, err := s.LoadUser(ctx, id)
				if err != nil {
					t.Error(err)
					return
				}
				sid := uuid.NewString()
				if err := s.appendEvents(ctx, Meta{},
					pending{subject: s.sessionSubject(sid), event: domain.SessionStarted{SessionID: sid, UserID: id, ClientID: "web", Kind: domain.SessionKindRefreshToken, StartedAt: now}},
					pending{subject: s.userSubject(id), expected: v, event: domain.UserSignedIn{UserID: id, SessionID: sid, SignedInAt: now}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, id := range ids {
		read := spy.records.Load()
		warm, wv, err := s.LoadUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if spy.records.Load() != read {
			t.Fatalf("the cache was not advanced by the node's own appends: the load read %d events", spy.records.Load()-read)
		}
		cold, cv := coldUser(t, s, id)
		if wv != cv || !reflect.DeepEqual(warm, cold) || len(cold.SessionIDs()) != 25 {
			t.Fatalf("cached guest differs from a full load: version %d / %d, %d / %d sessions", wv, cv, len(warm.SessionIDs()), len(cold.SessionIDs()))
		}
	}
}

func TestAggregateCacheKeepsTheLaterVersionAndEvicts(t *testing.T) {
	c := newAggregateCache(2)
	user := reflect.TypeFor[domain.User]()
	entry := func(subject, state string, v uint64) *aggregateEntry {
		return &aggregateEntry{subject: subject, kind: user, state: state, version: v}
	}
	c.put(entry("a", "a@5", 5))
	c.put(entry("a", "a@3", 3)) // a load that finished late
	if st, v, ok := c.get("a", user); !ok || v != 5 || st != "a@5" {
		t.Fatalf("an older state replaced a newer one: %v %d %v", st, v, ok)
	}
	if _, _, ok := c.get("a", reflect.TypeFor[domain.Session]()); ok {
		t.Fatal("a state of another type was returned")
	}
	c.put(entry("b", "b", 1))
	c.get("a", user) // a is now the most recently used
	c.put(entry("c", "c", 1))
	if _, _, ok := c.get("b", user); ok || c.len() != 2 {
		t.Fatalf("least recently used not evicted: len %d", c.len())
	}
	if _, _, ok := c.get("a", user); !ok {
		t.Fatal("recently used state evicted")
	}
	off := newAggregateCache(0)
	off.put(entry("a", "a", 1))
	off.appended([]eventstore.Message{{Subject: "a"}}, []uint64{2})
	if _, _, ok := off.get("a", user); ok || off.len() != 0 {
		t.Fatal("a cache of size 0 kept a state")
	}
}

func TestAppendedFoldsOnlyWhatFollowsTheCachedVersion(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	user := reflect.TypeFor[domain.User]()
	signedIn := func(subject string, expected uint64) eventstore.Message {
		data, _ := json.Marshal(domain.UserSignedIn{UserID: "u", SessionID: uuid.NewString(), SignedInAt: now})
		return eventstore.Message{Subject: subject, ExpectedLastSubjectSequence: expected, Envelope: eventstore.Envelope{Type: domain.TypeUserSignedIn, Data: data}}
	}
	fold := func(st any, evs ...domain.Event) any { return domain.FoldUser(st.(domain.User), evs...) }
	c := newAggregateCache(10)
	c.put(&aggregateEntry{subject: "u", kind: user, state: domain.User{}, version: 10, fold: fold})
	sessions := func() int { st, _, _ := c.get("u", user); return len(st.(domain.User).SessionIDs()) }

	c.appended([]eventstore.Message{signedIn("u", 9)}, []uint64{12}) // checked against 9: not what is cached
	if _, v, _ := c.get("u", user); v != 10 || sessions() != 0 {
		t.Fatalf("an append that did not follow the cached version was folded: version %d", v)
	}
	c.appended([]eventstore.Message{signedIn("u", 10), signedIn("x", 0), signedIn("u", 0)}, []uint64{13, 14, 15})
	if _, v, _ := c.get("u", user); v != 15 || sessions() != 2 {
		t.Fatalf("the append's two events were not folded: version %d, %d sessions", v, sessions())
	}
	c.appended([]eventstore.Message{signedIn("u", 15)}, nil) // no sequences: an append that failed
	bad := signedIn("u", 15)
	bad.Envelope.Data = []byte(`{"user_id":`)
	c.appended([]eventstore.Message{bad}, []uint64{16})
	if _, _, ok := c.get("u", user); ok {
		t.Fatal("a state past an event it cannot decode was kept")
	}
}

// A claimed key is final: once cached, it is returned without asking the
// log; an unclaimed one is read every time (another node may claim it).
func TestClaimedKeyIsFinal(t *testing.T) {
	s, spy := aggregateService(t)
	ctx := context.Background()
	k := &KeyPairs{Sessions: &Sessions{core: s}}
	kid := "kid-" + uuid.NewString()
	for range 2 {
		before := spy.reads.Load()
		if key, v, err := k.loadKey(ctx, kid); err != nil || key.Claimed() || v != 0 {
			t.Fatalf("unclaimed key: %+v %d %v", key, v, err)
		}
		if spy.reads.Load() != before+1 {
			t.Fatal("an unclaimed key was not read from the log")
		}
	}
	claim := domain.AnonymousKeyClaimed{KeyID: kid, UserID: uuid.NewString(), Algorithm: "ES256", JWK: []byte(`{"kty":"EC"}`), Thumbprint: "tp", ClaimedAt: s.clock.Now()}
	// Claimed by another node (a cache of its own): this one reads it once.
	s2 := &core{store: s.store, clock: s.clock, aggregates: newAggregateCache(1000)}
	if err := s2.appendEvents(ctx, Meta{}, pending{subject: k.keySubject(kid), event: claim}); err != nil {
		t.Fatal(err)
	}
	before := spy.reads.Load()
	first, fv, err := k.loadKey(ctx, kid)
	if err != nil || !first.Claimed() || first.UserID() != claim.UserID || spy.reads.Load() != before+1 {
		t.Fatalf("first load of the claim: %+v %v (%d reads)", first, err, spy.reads.Load()-before)
	}
	for range 3 {
		again, v, err := k.loadKey(ctx, kid)
		if err != nil || v != fv || !reflect.DeepEqual(again, first) {
			t.Fatalf("cached claim: %+v %d %v", again, v, err)
		}
	}
	if spy.reads.Load() != before+1 {
		t.Fatalf("a cached claim was read again (%d reads)", spy.reads.Load()-before)
	}
	// Nothing can follow the claim: a second one expects version 0.
	if err := s2.appendEvents(ctx, Meta{}, pending{subject: k.keySubject(kid), event: claim}); !errors.Is(err, eventstore.ErrConflict) {
		t.Fatalf("a second claim: %v", err)
	}
}
