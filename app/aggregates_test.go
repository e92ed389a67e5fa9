package app

import (
	"context"
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
}

func (c *countingStore) LoadAfter(ctx context.Context, subject string, after uint64) ([]eventstore.Record, uint64, error) {
	recs, v, err := c.Store.LoadAfter(ctx, subject, after)
	c.records.Add(int64(len(recs)))
	if after == 0 {
		c.fromTop.Add(1)
	}
	return recs, v, err
}

func aggregateService(t *testing.T) (*Service, *countingStore) {
	t.Helper()
	// The embedded server as testenv starts it (testenv imports this package).
	ns, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{StoreDir: t.TempDir(), Port: -1, SyncAlways: true})
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
	return &Service{store: spy, clock: clock.NewFake(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)), aggregates: newAggregateCache(1000)}, spy
}

// coldUser rebuilds the user from its first event, without the cache.
func coldUser(t *testing.T, s *Service, id string) (domain.User, uint64) {
	t.Helper()
	u, v, err := loadAggregate(context.Background(), s.store, nil, s.userSubject(id), domain.EvolveUser)
	if err != nil {
		t.Fatal(err)
	}
	return u, v
}

func TestCachedLoadEqualsFullLoadAndReadsOnlyNewEvents(t *testing.T) {
	s, spy := aggregateService(t)
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
	// Every step appends one event to the user (and others elsewhere, in
	// between), then loads it warm and cold.
	steps := []func(i int, v uint64) []pending{}
	for range 40 {
		steps = append(steps, func(i int, v uint64) []pending {
			sid := uuid.NewString()
			return []pending{
				{subject: s.sessionSubject(sid), event: domain.SessionStarted{SessionID: sid, UserID: id, ClientID: "web", Kind: domain.SessionKindRefreshToken, StartedAt: now}},
				{subject: s.userSubject(id), expected: v, event: domain.UserSignedIn{UserID: id, SessionID: sid, Method: domain.MethodAnonymousKey, KeyID: "k", SignedInAt: now.Add(time.Duration(i) * time.Minute)}},
			}
		})
	}
	steps = append(steps,
		func(i int, v uint64) []pending {
			return []pending{{subject: s.userSubject(id), expected: v, event: domain.AnonymousKeyRegistered{UserID: id, KeyID: "k1", Algorithm: "ES256", JWK: []byte(`{"kty":"EC"}`), RegisteredAt: now}}}
		},
		func(i int, v uint64) []pending {
			return []pending{{subject: s.userSubject(id), expected: v, event: domain.UserPromoted{UserID: id, LoginIDType: "email", LoginID: "a@example.com", PromotedAt: now}}}
		},
		func(i int, v uint64) []pending {
			return []pending{{subject: s.userSubject(id), expected: v, event: domain.UserDisabled{UserID: id}}}
		},
	)
	for i, step := range steps {
		_, v := coldUser(t, s, id)
		if err := s.appendEvents(ctx, Meta{}, step(i, v)...); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		_, ov := coldUser(t, s, other)
		if err := s.appendEvents(ctx, Meta{}, pending{subject: s.userSubject(other), expected: ov, event: domain.UserSignedIn{UserID: other, SessionID: uuid.NewString(), SignedInAt: now}}); err != nil {
			t.Fatal(err)
		}
		read, tops := spy.records.Load(), spy.fromTop.Load()
		warm, wv, err := s.LoadUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := spy.records.Load() - read; got != 1 || spy.fromTop.Load() != tops {
			t.Fatalf("step %d: the warm load read %d events (from the top: %v), want only the new one", i, got, spy.fromTop.Load() != tops)
		}
		cold, cv := coldUser(t, s, id)
		if wv != cv || !reflect.DeepEqual(warm, cold) {
			t.Fatalf("step %d: cached load differs from a full load:\n warm %d %+v\n cold %d %+v", i, wv, warm, cv, cold)
		}
	}
	if u, _ := coldUser(t, s, id); len(u.SessionIDs()) != 41 || u.IsAnonymous() || u.CanSignIn() == nil {
		t.Fatalf("history not folded: %d sessions, anonymous %v, can sign in %v", len(u.SessionIDs()), u.IsAnonymous(), u.CanSignIn())
	}

	// Nothing new: the cached state, read from nothing.
	read := spy.records.Load()
	again, av, err := s.LoadUser(ctx, id)
	if err != nil || spy.records.Load() != read {
		t.Fatalf("load with nothing new read %d events: %v", spy.records.Load()-read, err)
	}
	if _, cv := coldUser(t, s, id); av != cv {
		t.Fatalf("load with nothing new: version %d, want %d", av, cv)
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
	cold, cv, err := loadAggregate(ctx, s.store, nil, s.sessionSubject(sid), domain.EvolveSession)
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

func TestAggregateCacheKeepsTheLaterVersionAndEvicts(t *testing.T) {
	c := newAggregateCache(2)
	k := func(s string) aggregateKey { return aggregateKey{subject: s, kind: reflect.TypeFor[domain.User]()} }
	c.put(k("a"), "a@5", 5)
	c.put(k("a"), "a@3", 3) // a load that finished late
	if st, v, ok := c.get(k("a")); !ok || v != 5 || st != "a@5" {
		t.Fatalf("an older state replaced a newer one: %v %d %v", st, v, ok)
	}
	if _, _, ok := c.get(aggregateKey{subject: "a", kind: reflect.TypeFor[domain.Session]()}); ok {
		t.Fatal("a state of another type was returned")
	}
	c.put(k("b"), "b", 1)
	c.get(k("a")) // a is now the most recently used
	c.put(k("c"), "c", 1)
	if _, _, ok := c.get(k("b")); ok || c.len() != 2 {
		t.Fatalf("least recently used not evicted: len %d", c.len())
	}
	if _, _, ok := c.get(k("a")); !ok {
		t.Fatal("recently used state evicted")
	}
	var off *aggregateCache = newAggregateCache(0)
	off.put(k("a"), "a", 1)
	if _, _, ok := off.get(k("a")); ok || off.len() != 0 {
		t.Fatal("a cache of size 0 kept a state")
	}
}
