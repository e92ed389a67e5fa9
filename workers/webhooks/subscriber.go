package webhooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go/jetstream"
)

// source is one durable JetStream consumer a subscriber reads: the event
// log for deliveries, the endpoint's replay subject for replays.
type source struct {
	stream   string
	consumer jetstream.ConsumerConfig
	// cons is the consumer, made (or reset) by prepare before the router
	// starts, so that Subscribe cannot fail half-way through a router's
	// start.
	cons jetstream.Consumer
	// key is the message's ordering key: the user it is about.
	key func(m jetstream.Msg) string
	// read, if set, sees every message as it is read, before it is queued.
	read func(m jetstream.Msg)
	// convert turns a JetStream message into a Watermill message; nil
	// means the message is not for this endpoint (acked at once).
	convert func(ctx context.Context, m jetstream.Msg) (*message.Message, error)
}

// jsSubscriber is a Watermill subscriber over JetStream durable consumers.
// Messages are queued by their ordering key (the user's sub): each key's
// queue hands the router one message at a time and waits for its ack, so
// the events of one user go out in log order while different users
// interleave (how many requests run at once is the runner's limit, taken
// around each POST, not around a message's retries). A message is acked on
// JetStream only once the router acked it (delivered, or dead-lettered);
// messages held longer than the ack wait are kept alive with in-progress
// acks.
type jsSubscriber struct {
	js      jetstream.JetStream
	sources map[string]source
	ackWait time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	closed bool
	cancel []context.CancelFunc
	wg     sync.WaitGroup
}

var _ message.Subscriber = (*jsSubscriber)(nil)

// Subscribe starts reading the consumer named by topic, as prepare left
// it: (re)created at its ack floor, so messages a previous holder had in
// flight come again, before any later one, and a takeover keeps each
// user's order (at the cost of sending again what was acked above the
// floor).
func (s *jsSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	src, ok := s.sources[topic]
	if !ok || src.cons == nil {
		return nil, fmt.Errorf("webhooks: unknown or unprepared topic %s", topic)
	}
	cons := src.cons
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		cancel()
		return nil, errors.New("webhooks: subscriber closed")
	}
	s.cancel = append(s.cancel, cancel)
	s.mu.Unlock()
	out := make(chan *message.Message)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(out)
		s.run(ctx, cons, src, out)
	}()
	return out, nil
}

// prepare creates or resets every source's consumer.
func (s *jsSubscriber) prepare(ctx context.Context) error {
	for topic, src := range s.sources {
		c, err := resetConsumer(ctx, s.js, src.stream, src.consumer)
		if err != nil {
			return err
		}
		src.cons = c
		s.sources[topic] = src
	}
	return nil
}

// Close stops every subscription and waits for them.
func (s *jsSubscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	for _, c := range s.cancel {
		c()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// resetConsumer creates the durable consumer, or re-creates it from its ack
// floor when it had delivered messages.
func resetConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, stream, cfg.Durable)
	switch {
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		c, err = js.CreateConsumer(ctx, stream, cfg)
		if err != nil {
			return nil, fmt.Errorf("webhooks: create consumer %s: %w", cfg.Durable, err)
		}
		return c, nil
	case err != nil:
		return nil, fmt.Errorf("webhooks: consumer %s: %w", cfg.Durable, err)
	}
	info := c.CachedInfo()
	if info.Delivered.Stream == 0 || info.Delivered.Stream == info.AckFloor.Stream {
		// Nothing in flight: it resumes where it is.
		return c, nil
	}
	next := info.Config
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return nil, fmt.Errorf("webhooks: reset consumer %s: %w", cfg.Durable, err)
	}
	workQueue := st.CachedInfo().Config.Retention == jetstream.WorkQueuePolicy
	// A work queue (the replays) keeps only what is not yet acknowledged:
	// delivering all of it is starting at the floor, and the only start it
	// allows.
	if info.AckFloor.Stream > 0 && !workQueue {
		next.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		next.OptStartSeq = info.AckFloor.Stream + 1
		next.OptStartTime = nil
	}
	if err := js.DeleteConsumer(ctx, stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("webhooks: reset consumer %s: %w", cfg.Durable, err)
	}
	if c, err = js.CreateConsumer(ctx, stream, next); err != nil {
		return nil, fmt.Errorf("webhooks: reset consumer %s: %w", cfg.Durable, err)
	}
	return c, nil
}

type held struct {
	mu   sync.Mutex
	msgs map[uint64]jetstream.Msg
}

func (h *held) add(seq uint64, m jetstream.Msg) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.msgs[seq]; dup {
		h.msgs[seq] = m
		return false
	}
	h.msgs[seq] = m
	return true
}

func (h *held) take(seq uint64) jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.msgs[seq]
	delete(h.msgs, seq)
	return m
}

func (h *held) all() []jetstream.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]jetstream.Msg, 0, len(h.msgs))
	for _, m := range h.msgs {
		out = append(out, m)
	}
	return out
}

type queued struct {
	seq uint64
	msg jetstream.Msg
}

// queues holds, per ordering key, the messages read and not yet handed to
// the router. A key present in the map has a goroutine draining it (one at
// a time, in read order); the goroutine removes the key when its queue is
// empty. The reader only appends, so one user whose event a receiver keeps
// refusing holds back that user's later events and nobody else's. What is
// held in all is bounded by the consumer's MaxAckPending: the server sends
// no more while that many are unacknowledged.
type queues struct {
	mu   sync.Mutex
	byID map[string][]queued
}

// push appends it to key's queue and reports whether the key was idle (the
// caller then starts a drain for it).
func (q *queues) push(key string, it queued) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	cur, busy := q.byID[key]
	q.byID[key] = append(cur, it)
	return !busy
}

// next pops key's oldest message; ok false means the queue was empty and
// the key is now idle.
func (q *queues) next(key string) (queued, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	cur := q.byID[key]
	if len(cur) == 0 {
		delete(q.byID, key)
		return queued{}, false
	}
	it := cur[0]
	cur[0] = queued{}
	q.byID[key] = cur[1:]
	return it, true
}

func (s *jsSubscriber) run(ctx context.Context, cons jetstream.Consumer, src source, out chan<- *message.Message) {
	it, err := cons.Messages(jetstream.PullMaxMessages(256))
	if err != nil {
		s.log.Warn("webhook subscription did not start", "consumer", src.consumer.Durable, "error", err)
		return
	}
	go func() { <-ctx.Done(); it.Stop() }()
	h := &held{msgs: map[uint64]jetstream.Msg{}}
	q := &queues{byID: map[string][]queued{}}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); s.keepAlive(ctx, h) }()
	defer wg.Wait()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return
			}
			s.log.Warn("webhook subscription read failed", "consumer", src.consumer.Durable, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		meta, err := m.Metadata()
		if err != nil {
			continue
		}
		seq := meta.Sequence.Stream
		if !h.add(seq, m) {
			// Redelivered while still held: the held copy goes on.
			continue
		}
		if src.read != nil {
			src.read(m)
		}
		key := src.key(m)
		if q.push(key, queued{seq: seq, msg: m}) {
			wg.Add(1)
			go func() { defer wg.Done(); s.drain(ctx, src, h, q, key, out) }()
		}
	}
}

// drain hands key's messages to the router one at a time, each once the
// previous one was acked (delivered or dead-lettered), until the key's
// queue is empty.
func (s *jsSubscriber) drain(ctx context.Context, src source, h *held, q *queues, key string, out chan<- *message.Message) {
	for {
		it, ok := q.next(key)
		if !ok {
			return
		}
		if !s.handOver(ctx, src, h, it, out) {
			return
		}
	}
}

// handOver gives one message to the router until it is acked; false means
// the subscription is stopping.
func (s *jsSubscriber) handOver(ctx context.Context, src source, h *held, it queued, out chan<- *message.Message) bool {
	wm, err := src.convert(ctx, it.msg)
	for err != nil {
		// The payload could not be made (the log unreadable for a
		// moment): try again, in order.
		s.log.Warn("webhook payload not built; retrying", "consumer", src.consumer.Durable, "seq", it.seq, "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
		wm, err = src.convert(ctx, it.msg)
	}
	if wm == nil {
		_ = h.take(it.seq).Ack()
		return true
	}
	for {
		m := wm.Copy()
		m.SetContext(ctx)
		select {
		case out <- m:
		case <-ctx.Done():
			return false
		}
		select {
		case <-m.Acked():
			if jm := h.take(it.seq); jm != nil {
				_ = jm.Ack()
			}
			return true
		case <-m.Nacked():
		case <-ctx.Done():
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Second):
		}
	}
}

// keepAlive tells JetStream the held messages are being worked on.
func (s *jsSubscriber) keepAlive(ctx context.Context, h *held) {
	t := time.NewTicker(s.ackWait / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, m := range h.all() {
				_ = m.InProgress()
			}
		}
	}
}
