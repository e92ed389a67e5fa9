package app

import (
	"container/list"
	"context"
	"reflect"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/idstream/idstream/domain"
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
// evolve functions are pure, and states are values that evolve copies on
// write, so a cached state is the fold of the subject's events up to its
// version and nothing can change it. Only states rebuilt from the log are
// kept, never one with an event that has not been appended; and a load on a
// lagging replica that has not caught up with a cached version gets the
// cached, newer state.
type aggregateCache struct {
	mu    sync.Mutex
	max   int
	lru   list.List // of *aggregateEntry, most recently used first
	items map[aggregateKey]*list.Element
}

// aggregateKey names a cached state: one subject, folded into one type.
type aggregateKey struct {
	subject string
	kind    reflect.Type
}

type aggregateEntry struct {
	key     aggregateKey
	state   any
	version uint64
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
	return &aggregateCache{max: max, items: make(map[aggregateKey]*list.Element)}
}

func (c *aggregateCache) get(k aggregateKey) (state any, version uint64, ok bool) {
	if c == nil {
		return nil, 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil, 0, false
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*aggregateEntry)
	return e.state, e.version, true
}

// put keeps state at version, unless the cache holds the subject at a later
// version already (a load that finished after a newer one).
func (c *aggregateCache) put(k aggregateKey, state any, version uint64) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		e := el.Value.(*aggregateEntry)
		if version > e.version {
			e.state, e.version = state, version
		}
		c.lru.MoveToFront(el)
		return
	}
	c.items[k] = c.lru.PushFront(&aggregateEntry{key: k, state: state, version: version})
	for c.lru.Len() > c.max {
		el := c.lru.Back()
		c.lru.Remove(el)
		delete(c.items, el.Value.(*aggregateEntry).key)
	}
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

// loadAggregate rebuilds the state of one subject from the log, and returns
// it with its version (the stream sequence of the subject's last event, 0
// when it has none). With a cache, it starts from the cached state and
// reads only the events after it.
func loadAggregate[S any](ctx context.Context, store Store, cache *aggregateCache, subject string, evolve func(S, domain.Event) S) (S, uint64, error) {
	var state S
	key := aggregateKey{subject: subject, kind: reflect.TypeFor[S]()}
	cached, after, hit := cache.get(key)
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
	for _, ev := range evs {
		state = evolve(state, ev)
	}
	if cache != nil {
		if hit {
			aggregateLoads.WithLabelValues("hit").Inc()
		} else {
			aggregateLoads.WithLabelValues("miss").Inc()
		}
		if v > after {
			cache.put(key, state, v)
		}
	}
	return state, v, nil
}
