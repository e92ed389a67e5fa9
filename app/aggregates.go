package app

import (
	"container/list"
	"context"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// Commands rebuild their aggregates (a user, a session, a key, a login ID)
// from the log every time. Some aggregates keep gathering events: a guest
// that signs in with its key every day, a session refreshed every few
// minutes. Reading a subject's events from the start costs more with each
// one, and more again with everything written between them, because the
// server walks the stream from one of the subject's events to the next.
//
// aggregateCache keeps, per node, the states most recently rebuilt and the
// version (stream sequence) each was rebuilt up to. A load starts from the
// cached state and reads only the events after its version. This is exact:
// events are never changed or removed (the stream denies delete and purge),
// folds are pure, and states are values that a fold copies before it writes
// them, so a cached state is the fold of the subject's events up to its
// version and nothing can change it. Only states rebuilt from the log are
// kept, never one with an event that has not been appended; and a load on a
// lagging replica that has not caught up with a cached version gets the
// cached, newer state.
type aggregateCache struct {
	mu    sync.Mutex
	max   int
	lru   list.List // of *aggregateEntry, most recently used first
	items map[string]*list.Element
}

// aggregateEntry is the state of one subject, folded into one type by fold,
// up to version.
type aggregateEntry struct {
	subject string
	kind    reflect.Type
	state   any
	version uint64
	fold    func(any, ...domain.Event) any
}

var aggregateLoads = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "idstream_aggregate_loads_total",
	Help: "Aggregates rebuilt from the log, by whether a cached state was the starting point (hit) or the subject was read from its first event (miss).",
}, []string{"cache"})

// newAggregateCache keeps up to max states; none (nil) when max <= 0.
func newAggregateCache(max int) *aggregateCache {
	if max <= 0 {
		return nil
	}
	return &aggregateCache{max: max, items: make(map[string]*list.Element)}
}

// get returns the cached state of subject if it was folded into kind.
func (c *aggregateCache) get(subject string, kind reflect.Type) (state any, version uint64, ok bool) {
	if c == nil {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[subject]
	if !ok || el.Value.(*aggregateEntry).kind != kind {
		return nil, 0, false
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*aggregateEntry)
	return e.state, e.version, true
}

// put keeps e, unless the cache holds its subject, in its kind, at a later
// version already (a load that finished after a newer one).
func (c *aggregateCache) put(e *aggregateEntry) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.subject]; ok {
		if old := el.Value.(*aggregateEntry); old.kind != e.kind || e.version > old.version {
			el.Value = e
		}
		c.lru.MoveToFront(el)
		return
	}
	c.items[e.subject] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.items, el.Value.(*aggregateEntry).subject)
	}
}

// appended advances cached states by an append that succeeded: msgs, stored
// at seqs. The first message of an append on a subject was checked against
// its expected sequence and the append is atomic, so when a state is cached
// at exactly that sequence, the append's events on the subject are the very
// next ones and fold onto it. They are folded as a load would read them:
// decoded from the payload that was written (outside the lock).
func (c *aggregateCache) appended(msgs []eventstore.Message, seqs []uint64) {
	if c == nil || len(seqs) != len(msgs) {
		return
	}
	cached := make([]bool, len(msgs))
	some := false
	c.mu.Lock()
	for i, m := range msgs {
		_, cached[i] = c.items[m.Subject]
		some = some || cached[i]
	}
	c.mu.Unlock()
	if !some {
		return
	}
	evs := make([]domain.Event, len(msgs))
	for i, m := range msgs {
		if cached[i] {
			evs[i], _ = domain.DecodeEvent(m.Envelope.Type, m.Envelope.Data)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	// prev is the sequence each message on a subject follows: the expected
	// one for the first, the one before it in this append for the others.
	prev := make(map[string]uint64, len(msgs))
	for i, m := range msgs {
		follows, later := prev[m.Subject]
		if !later {
			follows = m.ExpectedLastSubjectSequence
		}
		prev[m.Subject] = seqs[i]
		el, ok := c.items[m.Subject]
		if !ok || el.Value.(*aggregateEntry).version != follows {
			continue
		}
		e := el.Value.(*aggregateEntry)
		if evs[i] == nil {
			// Undecodable (a load will read it, and report it), or cached
			// only since the first look: not folded, so not kept.
			c.lru.Remove(el)
			delete(c.items, m.Subject)
			continue
		}
		el.Value = &aggregateEntry{subject: e.subject, kind: e.kind, state: e.fold(e.state, evs[i]), version: seqs[i], fold: e.fold}
	}
}

// loadAggregate rebuilds the state of one subject from the log with fold
// (domain.FoldUser, or each(evolve)), and returns it with its version (the
// stream sequence of the subject's last event, 0 when it has none). With a
// cache, it starts from the cached state and reads only the events after it.
func loadAggregate[S any](ctx context.Context, store Store, cache *aggregateCache, subject string, fold func(S, ...domain.Event) S) (S, uint64, error) {
	var state S
	kind := reflect.TypeFor[S]()
	cached, after, hit := cache.get(subject, kind)
	if hit {
		state = cached.(S)
	}
	recs, v, err := store.LoadAfter(ctx, subject, after)
	if err != nil {
		var zero S
		return zero, 0, err
	}
	evs, err := decodeAll(recs)
	if err != nil {
		var zero S
		return zero, 0, err
	}
	state = fold(state, evs...)
	if cache != nil {
		if hit {
			aggregateLoads.WithLabelValues("hit").Inc()
		} else {
			aggregateLoads.WithLabelValues("miss").Inc()
		}
		if v > after {
			cache.put(&aggregateEntry{subject: subject, kind: kind, state: state, version: v,
				fold: func(st any, evs ...domain.Event) any { return fold(st.(S), evs...) }})
		}
	}
	return state, v, nil
}

// loadFinal is loadAggregate for an aggregate whose states include final
// ones: a state the subject can never leave, because nothing is ever
// appended after it. A cached final state is returned as it is, without
// reading the log. An anonymous key is such an aggregate: its subject
// holds one event, the claim, written only at version 0 (a second claim
// expects 0 and is refused), and the stream denies delete and purge.
func loadFinal[S any](ctx context.Context, store Store, cache *aggregateCache, subject string, fold func(S, ...domain.Event) S, final func(S) bool) (S, uint64, error) {
	if cached, v, hit := cache.get(subject, reflect.TypeFor[S]()); hit && final(cached.(S)) {
		aggregateLoads.WithLabelValues("final").Inc()
		return cached.(S), v, nil
	}
	return loadAggregate(ctx, store, cache, subject, fold)
}

// each is a fold that applies evolve to one event at a time.
func each[S any](evolve func(S, domain.Event) S) func(S, ...domain.Event) S {
	return func(state S, evs ...domain.Event) S {
		for _, ev := range evs {
			state = evolve(state, ev)
		}
		return state
	}
}
