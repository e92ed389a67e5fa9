package webhooks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/message/router/middleware"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/sony/gobreaker"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// Metadata keys of a delivery message (and NATS headers of a dead letter).
const (
	metaEventID = "Idstream-Webhook-Event-Id"
	metaSeq     = "Idstream-Webhook-Seq"
	metaSub     = "Idstream-Webhook-Sub"
	metaType    = "Idstream-Webhook-Type"
	// metaBuilt: when the body was made from the log (Unix nanoseconds).
	metaBuilt = "Idstream-Webhook-Built"
)

// freshBody: a body made this recently is sent as made; an older one (a
// retry, a replay) is checked against the log for its user's deletion.
const freshBody = time.Second

// runner delivers to one endpoint: a Watermill router with two handlers,
// the endpoint's consumer of the event log and its replay consumer, behind
// the same middleware: poison queue, retry, circuit breaker.
type runner struct {
	svc    *Service
	ep     atomic.Pointer[Endpoint]
	client *http.Client
	log    *slog.Logger
	cancel context.CancelFunc
	done   chan struct{}
	// posts bounds the requests in flight to the endpoint (Config.Lanes).
	// It is taken around each POST only: a delivery waiting out its
	// backoff holds no place, so users whose events keep failing cannot
	// stop the others'.
	posts chan struct{}

	mu        sync.Mutex
	delivered int64
	failed    int64
	dead      int64
	circuit   string
	pending   []LastError // not yet written to the endpoint's row
	lastAt    *time.Time
	lastSeq   uint64
}

func consumerName(id string) string       { return "webhook_" + id }
func replayConsumerName(id string) string { return "webhook_replay_" + id }

// logConsumer is the endpoint's consumer of the event log, starting where
// the endpoint asked.
func (s *Service) logConsumer(ep Endpoint) jetstream.ConsumerConfig {
	c := jetstream.ConsumerConfig{Durable: consumerName(ep.ID), Description: "webhook endpoint " + ep.ID,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cfg.AckWait, MaxDeliver: -1, MaxAckPending: 1024,
		Replicas: s.cfg.Replicas}
	start, _ := parseStart(ep.StartFrom)
	switch {
	case start.IsZero():
		c.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		c.OptStartSeq = ep.CreatedSeq + 1
	case start.Unix() == 0:
		c.DeliverPolicy = jetstream.DeliverAllPolicy
	default:
		c.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		c.OptStartTime = &start
	}
	return c
}

func (s *Service) replayConsumer(ep Endpoint) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{Durable: replayConsumerName(ep.ID), Description: "webhook replays " + ep.ID,
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: s.cfg.AckWait, MaxDeliver: -1, MaxAckPending: 1024,
		FilterSubject: s.replaySubject(ep.ID), DeliverPolicy: jetstream.DeliverAllPolicy, Replicas: s.cfg.Replicas}
}

func (s *Service) startRunner(ctx context.Context, ep Endpoint) (*runner, error) {
	r := &runner{svc: s, client: s.client, log: s.log.With("webhook_endpoint", ep.ID), done: make(chan struct{}), circuit: "closed",
		posts: make(chan struct{}, s.cfg.Lanes)}
	r.ep.Store(&ep)
	sub := &jsSubscriber{js: s.js, ackWait: s.cfg.AckWait, log: r.log, sources: map[string]source{
		consumerName(ep.ID): {stream: s.store.StreamName(), consumer: s.logConsumer(ep), key: logKey, convert: r.convertLog,
			read: s.noteDeletion},
		replayConsumerName(ep.ID): {stream: replayStream, consumer: s.replayConsumer(ep),
			key: func(m jetstream.Msg) string { return m.Headers().Get(metaSub) }, convert: r.convertReplay},
	}}
	if err := sub.prepare(ctx); err != nil {
		return nil, err
	}
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 15 * time.Second},
		watermill.NewSlogLoggerWithLevelMapping(r.log, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug}))
	if err != nil {
		return nil, err
	}
	poison, err := middleware.PoisonQueueWithFilter(deadPublisher{js: s.js, log: r.log, svc: s, onPoint: r.deadLettered}, s.deadSubject(ep.ID),
		func(err error) bool { var g *gaveUp; return errors.As(err, &g) })
	if err != nil {
		return nil, err
	}
	breaker := middleware.NewCircuitBreaker(gobreaker.Settings{
		Name: ep.ID, MaxRequests: 1, Timeout: s.cfg.BreakerCooldown,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= s.cfg.BreakerFailures },
		IsSuccessful: func(err error) bool {
			return err == nil || errors.Is(err, context.Canceled) || errors.Is(err, ErrGone)
		},
		OnStateChange: r.circuitChanged,
	})
	router.AddMiddleware(middleware.Recoverer, poison, retry{cfg: s.cfg}.Middleware, breaker.Middleware)
	router.AddConsumerHandler(consumerName(ep.ID), consumerName(ep.ID), sub, r.deliver)
	router.AddConsumerHandler(replayConsumerName(ep.ID), replayConsumerName(ep.ID), sub, r.deliver)
	rctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go func() {
		defer close(r.done)
		defer cancel()
		flushDone := make(chan struct{})
		go func() { defer close(flushDone); r.flushLoop(rctx) }()
		if err := router.Run(rctx); err != nil && rctx.Err() == nil {
			r.log.Warn("webhook router stopped", "error", err)
		}
		_ = router.Close()
		cancel()
		<-flushDone
	}()
	return r, nil
}

func (r *runner) stop() {
	r.cancel()
	<-r.done
}

func (r *runner) stopped() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// redactIfDeleted is the body to send (or keep) of a delivery: as made,
// unless its user was deleted since (redactedBody). A body made moments ago
// is taken as made on the deletions this node has seen; an older one asks
// the log.
func (s *Service) redactIfDeleted(ctx context.Context, msg *message.Message) ([]byte, error) {
	sub := msg.Metadata.Get(metaSub)
	if sub == "" {
		return msg.Payload, nil
	}
	deleted := s.states.isDeleted(sub)
	built, _ := strconv.ParseInt(msg.Metadata.Get(metaBuilt), 10, 64)
	if !deleted && time.Since(time.Unix(0, built)) >= freshBody && !s.readersCaughtUp(ctx) {
		var err error
		if deleted, err = s.deletedNow(ctx, sub); err != nil {
			return nil, err
		}
	}
	if !deleted {
		return msg.Payload, nil
	}
	return redactedBody(msg.Payload)
}

// noteDeletion is the log readers' look at every event as it is read (not
// when its turn comes, behind the user's earlier events): a user's
// deletion makes every delivery of theirs sent from then on redacted,
// whatever the endpoint takes.
func (s *Service) noteDeletion(m jetstream.Msg) {
	if m.Headers().Get(eventstore.HeaderEventType) == domain.TypeUserDeleted {
		s.states.markDeleted(strings.TrimPrefix(m.Subject(), s.store.Subject("user", "")))
	}
	if meta, err := m.Metadata(); err == nil {
		for {
			cur := s.readSeq.Load()
			if meta.Sequence.Stream <= cur || s.readSeq.CompareAndSwap(cur, meta.Sequence.Stream) {
				break
			}
		}
	}
}

// readersCaughtUp reports whether this node's log readers have read the
// log to its end as it was at most a second ago: the deletions noted are
// then all but the last second's, and a body need not be checked against
// the log. The log's end is asked at most once a second.
func (s *Service) readersCaughtUp(ctx context.Context) bool {
	s.lastMu.Lock()
	defer s.lastMu.Unlock()
	if time.Since(s.lastAt) >= freshBody {
		last, err := s.store.LastSequence(ctx)
		if err != nil {
			return false
		}
		s.last, s.lastAt = last, time.Now()
	}
	return s.readSeq.Load() >= s.last
}

// logKey orders the log's events by the user they are about.
func logKey(m jetstream.Msg) string {
	rec, err := eventstore.DecodeMsg(m)
	if err != nil {
		return m.Subject()
	}
	var f struct {
		UserID  string `json:"user_id"`
		GuestID string `json:"guest_id"`
	}
	_ = json.Unmarshal(rec.Data, &f)
	switch {
	case f.GuestID != "":
		return f.GuestID
	case f.UserID != "":
		return f.UserID
	}
	return m.Subject()
}

func (r *runner) convertLog(ctx context.Context, m jetstream.Msg) (*message.Message, error) {
	ep := r.ep.Load()
	rec, err := eventstore.DecodeMsg(m)
	if err != nil {
		// Not an event this code can read: nothing to deliver.
		r.log.Warn("webhook skipped an unreadable log message", "subject", m.Subject(), "error", err)
		return nil, nil
	}
	if !ep.wantsType(rec.Type) {
		return nil, nil
	}
	p, err := buildPayload(ctx, r.svc.store, &r.svc.states, rec, ep.CreatedSeq)
	if err != nil {
		return nil, err
	}
	if !ep.Wants(p.Type, p.ClientID) {
		return nil, nil
	}
	body, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	wm := message.NewMessage(p.ID, body)
	wm.Metadata.Set(metaEventID, p.ID)
	wm.Metadata.Set(metaSeq, strconv.FormatUint(p.Seq, 10))
	wm.Metadata.Set(metaSub, p.Sub)
	wm.Metadata.Set(metaType, p.Type)
	wm.Metadata.Set(metaBuilt, strconv.FormatInt(time.Now().UnixNano(), 10))
	return wm, nil
}

func (r *runner) convertReplay(ctx context.Context, m jetstream.Msg) (*message.Message, error) {
	h := m.Headers()
	if sub := h.Get(metaSub); sub != "" {
		// A dead letter may be older than anything this node has read:
		// the log says whether its user was deleted since.
		if _, deleted, err := userAt(ctx, r.svc.store, sub, 0); err != nil {
			return nil, err
		} else if deleted {
			r.svc.states.markDeleted(sub)
		}
	}
	wm := message.NewMessage(h.Get(metaEventID), m.Data())
	for _, k := range []string{metaEventID, metaSeq, metaSub, metaType} {
		wm.Metadata.Set(k, h.Get(k))
	}
	return wm, nil
}

// deliver is the handler: one signed POST, bounded by the timeout.
func (r *runner) deliver(msg *message.Message) error {
	select {
	case r.posts <- struct{}{}:
		defer func() { <-r.posts }()
	case <-msg.Context().Done():
		return msg.Context().Err()
	}
	ep := r.ep.Load()
	ctx, cancel := context.WithTimeout(msg.Context(), r.svc.cfg.Timeout)
	defer cancel()
	body, err := r.svc.redactIfDeleted(msg.Context(), msg)
	if err != nil {
		return err
	}
	now := time.Now()
	h := http.Header{}
	if err := signHeaders(h, msg.Metadata.Get(metaEventID), now, body, ep.signingSecrets(now)); err != nil {
		return err
	}
	seq, _ := strconv.ParseUint(msg.Metadata.Get(metaSeq), 10, 64)
	err = post(ctx, r.client, ep.URL, h, body, now)
	deliverySeconds.WithLabelValues(ep.ID).Observe(time.Since(now).Seconds())
	if err == nil {
		deliveries.WithLabelValues(ep.ID, "delivered").Inc()
		appendToDelivery.Observe(time.Since(occurredAt(msg.Payload)).Seconds())
		r.mu.Lock()
		r.delivered++
		t := time.Now().UTC()
		r.lastAt = &t
		r.lastSeq = max(r.lastSeq, seq)
		r.mu.Unlock()
		return nil
	}
	if msg.Context().Err() != nil {
		// Stopping: not the receiver's failure.
		return msg.Context().Err()
	}
	deliveries.WithLabelValues(ep.ID, "failed").Inc()
	r.mu.Lock()
	r.failed++
	r.pending = append([]LastError{{At: time.Now().UTC(), Sequence: seq, Error: err.Error()}}, r.pending...)
	if len(r.pending) > keptErrors {
		r.pending = r.pending[:keptErrors]
	}
	r.mu.Unlock()
	if errors.Is(err, ErrGone) {
		r.gone()
	}
	return err
}

func occurredAt(body []byte) time.Time {
	var p struct {
		OccurredAt time.Time `json:"occurred_at"`
	}
	_ = json.Unmarshal(body, &p)
	return p.OccurredAt
}

// gone disables the endpoint after a 410: its receiver asked for no more.
// The event that got the 410 stays unacknowledged, so re-enabling the
// endpoint delivers it first.
func (r *runner) gone() {
	ep := r.ep.Load()
	r.log.Warn("webhook receiver answered 410 Gone: endpoint disabled", "url_host", hostOf(ep.URL))
	if err := r.svc.reg.setState(context.WithoutCancel(context.Background()), ep.ID, StateDisabled, "receiver answered 410 Gone",
		r.svc.now()); err != nil {
		r.log.Warn("webhook endpoint could not be marked disabled", "error", err)
	}
	go r.cancel()
}

func (r *runner) circuitChanged(_ string, from, to gobreaker.State) {
	ep := r.ep.Load()
	state := "closed"
	switch to {
	case gobreaker.StateOpen:
		state = "open"
		r.log.Warn("webhook endpoint failing: circuit open, deliveries paused", "url_host", hostOf(ep.URL),
			"cooldown", r.svc.cfg.BreakerCooldown.String())
		circuitOpen.WithLabelValues(ep.ID).Set(1)
	case gobreaker.StateHalfOpen:
		state = "half_open"
		circuitOpen.WithLabelValues(ep.ID).Set(1)
	default:
		r.log.Info("webhook endpoint recovered: circuit closed", "from", from.String())
		circuitOpen.WithLabelValues(ep.ID).Set(0)
	}
	r.mu.Lock()
	r.circuit = state
	r.mu.Unlock()
}

func (r *runner) deadLettered() {
	r.mu.Lock()
	r.dead++
	r.mu.Unlock()
	deliveries.WithLabelValues(r.ep.Load().ID, "dead_lettered").Inc()
}

// flushLoop writes the counters to the endpoint's row and the lag to the
// metrics, every second and once more on the way out.
func (r *runner) flushLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	flush := func(ctx context.Context) {
		r.mu.Lock()
		d, f, dl, c, lastAt, lastSeq, errs := r.delivered, r.failed, r.dead, r.circuit, r.lastAt, r.lastSeq, r.pending
		r.delivered, r.failed, r.dead, r.pending = 0, 0, 0, nil
		r.mu.Unlock()
		if errs == nil {
			errs = []LastError{}
		}
		id := r.ep.Load().ID
		if err := r.svc.reg.flushCounters(ctx, id, d, f, dl, c, errs, lastAt, lastSeq); err != nil {
			r.mu.Lock()
			r.delivered, r.failed, r.dead = r.delivered+d, r.failed+f, r.dead+dl
			r.pending = append(r.pending, errs...)
			r.mu.Unlock()
		}
		if lag, err := r.svc.lag(ctx, id); err == nil {
			lagGauge.WithLabelValues(id).Set(float64(lag))
		}
	}
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			flush(fctx)
			cancel()
			return
		case <-t.C:
			flush(ctx)
		}
	}
}

// retry is the delivery retry middleware: exponential backoff with full
// jitter, at least what the receiver's Retry-After asked, until the message
// has been failing for MaxAge; then it gives up (and the poison queue takes
// the message). A 410 or a stop is not retried. While the circuit is open
// the attempt is not counted.
type retry struct{ cfg Config }

type gaveUp struct{ last error }

func (g *gaveUp) Error() string { return "gave up after the retry window: " + g.last.Error() }
func (g *gaveUp) Unwrap() error { return g.last }

func (rt retry) Middleware(h message.HandlerFunc) message.HandlerFunc {
	return func(msg *message.Message) ([]*message.Message, error) {
		first := time.Now()
		var last error // the receiver's last failure, rather than the breaker's refusal
		for attempt := 0; ; {
			out, err := h(msg)
			if err == nil {
				return out, nil
			}
			if errors.Is(err, ErrGone) || msg.Context().Err() != nil {
				return nil, err
			}
			var delay time.Duration
			if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
				delay = rt.cfg.BreakerCooldown/4 + rand.N(rt.cfg.BreakerCooldown/4+1)
				if last == nil {
					last = err
				}
			} else {
				last = err
				attempt++
				ceiling := rt.cfg.InitialBackoff << min(attempt-1, 30)
				if ceiling > rt.cfg.MaxBackoff || ceiling <= 0 {
					ceiling = rt.cfg.MaxBackoff
				}
				// Half fixed, half random: never a burst of retries at once.
				delay = ceiling/2 + rand.N(ceiling/2+1)
				var de *deliveryError
				if errors.As(err, &de) && de.retryAfter > delay {
					delay = min(de.retryAfter, rt.cfg.MaxAge)
				}
			}
			if time.Since(first)+delay > rt.cfg.MaxAge {
				return nil, &gaveUp{last: last}
			}
			select {
			case <-msg.Context().Done():
				return nil, msg.Context().Err()
			case <-time.After(delay):
			}
		}
	}
}

// deadPublisher is the poison queue's Watermill publisher: dead letters go
// to the endpoint's subject of the dead-letter stream, the metadata as
// headers.
type deadPublisher struct {
	js  jetstream.JetStream
	log *slog.Logger
	svc *Service
	// onPoint counts a dead letter.
	onPoint func()
}

func (p deadPublisher) Publish(topic string, msgs ...*message.Message) error {
	for _, m := range msgs {
		// A deleted user's data is not kept for a replay.
		delete(m.Metadata, metaBuilt)
		body, err := p.svc.redactIfDeleted(context.Background(), m)
		if err != nil {
			return err
		}
		nm := &nats.Msg{Subject: topic, Data: body, Header: nats.Header{}}
		for k, v := range m.Metadata {
			nm.Header.Set(k, v)
		}
		if _, err := p.js.PublishMsg(context.Background(), nm); err != nil {
			if p.log != nil {
				p.log.Warn("webhook dead letter refused (the endpoint's dead letters are full?): the delivery is tried again, and holds back its user's later events, until dead letters are replayed",
					"error", err)
			}
			return fmt.Errorf("webhooks: dead letter: %w", err)
		}
		if p.onPoint != nil {
			p.onPoint()
		}
	}
	return nil
}

func (p deadPublisher) Close() error { return nil }
