// Package webhooks pushes the event log to HTTP endpoints (issue 21).
//
// Each endpoint is a durable JetStream consumer of the log, read through a
// Watermill subscriber (subscriber.go) by a Watermill router whose
// middleware retries, breaks the circuit and dead-letters (runner.go). One
// node delivers at a time: the holder of a PostgreSQL advisory lock
// (projections.Lease). Endpoints and their signing secrets live in the
// webhook_endpoints table, never in the log or NATS; dead letters in the
// IDSTREAM_WEBHOOK_DEAD stream, replays in IDSTREAM_WEBHOOK_REPLAYS.
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
)

var (
	deliveries = promauto.NewCounterVec(prometheus.CounterOpts{Name: "idstream_webhook_deliveries_total",
		Help: "Webhook delivery attempts by endpoint and outcome (delivered, failed, dead_lettered)."}, []string{"endpoint", "outcome"})
	deliverySeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{Name: "idstream_webhook_delivery_seconds",
		Help: "Time of one webhook POST, by endpoint.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)}, []string{"endpoint"})
	appendToDelivery = promauto.NewHistogram(prometheus.HistogramOpts{Name: "idstream_webhook_append_to_delivery_seconds",
		Help: "Time from an event's occurred_at to its successful delivery.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	circuitOpen = promauto.NewGaugeVec(prometheus.GaugeOpts{Name: "idstream_webhook_circuit_open",
		Help: "1 while an endpoint's circuit is open or half open (deliveries paused)."}, []string{"endpoint"})
	lagGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{Name: "idstream_webhook_lag_events",
		Help: "Log events an endpoint has not yet acknowledged (pending and in flight)."}, []string{"endpoint"})
	leaseHeld = promauto.NewGauge(prometheus.GaugeOpts{Name: "idstream_webhook_lease_held",
		Help: "1 while this node holds the webhook lease and delivers."})
)

// Config tunes delivery.
type Config struct {
	// AllowPrivate lets deliveries go to loopback and private addresses
	// (development mode only).
	AllowPrivate bool
	// MaxAge is how long a delivery is retried before it is dead-lettered.
	MaxAge time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	// InitialBackoff and MaxBackoff shape the exponential backoff.
	InitialBackoff, MaxBackoff time.Duration
	// Lanes: how many requests one endpoint has in flight at once.
	Lanes int
	// BreakerFailures consecutive failures open the circuit for
	// BreakerCooldown.
	BreakerFailures uint32
	BreakerCooldown time.Duration
	// AckWait is the consumers' ack wait (held messages are kept alive).
	AckWait time.Duration
	// Poll: how often the holder reads the endpoints; LeasePoll how often a
	// standby node tries to take the lease.
	Poll, LeasePoll time.Duration
	Replicas        int
	// RotationOverlap is how long a replaced secret still signs by default.
	RotationOverlap time.Duration
	// MaxDeadLetters per endpoint: a delivery that gives up once an endpoint
	// has this many is not dead-lettered (nothing is dropped, neither it
	// nor an older one) but tried again, holding back its user's later
	// events, until dead letters are replayed or the endpoint deleted.
	MaxDeadLetters int
}

// DefaultConfig is the configuration of `idstream serve`.
func DefaultConfig() Config {
	return Config{MaxAge: 24 * time.Hour, Timeout: 10 * time.Second, InitialBackoff: time.Second, MaxBackoff: 10 * time.Minute,
		Lanes: 8, BreakerFailures: 10, BreakerCooldown: 30 * time.Second, AckWait: 30 * time.Second, Poll: time.Second,
		LeasePoll: 2 * time.Second, Replicas: 1, RotationOverlap: 24 * time.Hour, MaxDeadLetters: 100000}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.MaxAge <= 0 || c.Timeout <= 0 || c.InitialBackoff <= 0 || c.MaxBackoff < c.InitialBackoff:
		return errors.New("webhooks: max age, timeout and backoff must be positive (max backoff at least the initial)")
	case c.Lanes < 1 || c.Lanes > 256:
		return errors.New("webhooks: lanes must be 1 to 256")
	case c.MaxDeadLetters < 1:
		return errors.New("webhooks: max dead letters must be positive")
	case c.BreakerFailures < 1 || c.BreakerCooldown <= 0:
		return errors.New("webhooks: breaker failures and cooldown must be positive")
	case c.AckWait < time.Second || c.Poll <= 0 || c.LeasePoll <= 0 || c.Replicas < 1:
		return errors.New("webhooks: ack wait (at least 1s), polls and replicas must be positive")
	case c.RotationOverlap < 0:
		return errors.New("webhooks: rotation overlap must not be negative")
	}
	return nil
}

// Streams of the webhook machinery (the log itself is eventstore's).
const (
	deadStream   = "IDSTREAM_WEBHOOK_DEAD"
	replayStream = "IDSTREAM_WEBHOOK_REPLAYS"
	deadPrefix   = "idstream_webhook_dead."
	replayPrefix = "idstream_webhook_replays."
	leaseKey     = 7230040 // next to migrations 7230011, keys 7230012, reaper 7230020, exports 7230030
)

// Service registers endpoints (any node) and delivers (the lease holder).
type Service struct {
	pool   *pgxpool.Pool
	store  *eventstore.Store
	js     jetstream.JetStream
	clock  clock.Clock
	random io.Reader
	log    *slog.Logger
	cfg    Config
	reg    registry
	client *http.Client
	held   atomic.Bool
	// runs are the endpoints this node has a runner for (Running).
	runs sync.Map
	// states is shared by the endpoints: one read of a user per event.
	states userStates
	// events is the event log's stream (deletedNow reads from it).
	events jetstream.Stream
	// readSeq is the furthest log sequence a reader of this node has read;
	// last the log's last sequence when asked at lastAt.
	readSeq atomic.Uint64
	lastMu  sync.Mutex
	last    uint64
	lastAt  time.Time
}

// deletedNow reports whether the user's deletion is in the log: the last
// event on its subject (nothing is appended after it). The deletions this
// node has seen answer first; otherwise one direct get asks the log, so the
// answer does not depend on what a reader held back by unacknowledged
// deliveries has read.
func (s *Service) deletedNow(ctx context.Context, sub string) (bool, error) {
	if s.states.isDeleted(sub) {
		return true, nil
	}
	m, err := s.events.GetLastMsgForSubject(ctx, s.store.Subject("user", sub))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("webhooks: is the user deleted: %w", err)
	}
	if m.Header.Get(eventstore.HeaderEventType) != domain.TypeUserDeleted {
		return false, nil
	}
	s.states.markDeleted(sub)
	return true, nil
}

// Delivering reports whether this node holds the webhook lease.
func (s *Service) Delivering() bool { return s.held.Load() }

// Running reports whether this node runs a delivery for the endpoint now
// (a paused or disabled endpoint's runner stops at the next poll).
func (s *Service) Running(id string) bool {
	_, ok := s.runs.Load(id)
	return ok
}

// New checks the configuration and makes the webhook streams.
func New(ctx context.Context, pool *pgxpool.Pool, store *eventstore.Store, clk clock.Clock, random io.Reader, log *slog.Logger,
	cfg Config) (*Service, error) {
	if pool == nil || store == nil || clk == nil || random == nil || log == nil {
		return nil, errors.New("webhooks: pool, store, clock, random and logger are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	js := store.JetStream()
	events, err := js.Stream(ctx, store.StreamName())
	if err != nil {
		return nil, fmt.Errorf("webhooks: event stream: %w", err)
	}
	maxDead, err := deadLetterLimit(ctx, js, int64(cfg.MaxDeadLetters), log)
	if err != nil {
		return nil, err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: deadStream, Subjects: []string{deadPrefix + ">"},
		Description: "webhook deliveries that gave up, per endpoint, until replayed or the endpoint is deleted",
		Storage:     jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Replicas: cfg.Replicas,
		// Full is full: a new dead letter is refused (and its delivery
		// tried again), never an old one dropped to make room.
		MaxMsgsPerSubject: maxDead, Discard: jetstream.DiscardNew, DiscardNewPerSubject: true}); err != nil {
		return nil, fmt.Errorf("webhooks: dead-letter stream: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: replayStream, Subjects: []string{replayPrefix + ">"},
		Description: "dead letters an operator replays, consumed once", Storage: jetstream.FileStorage,
		Retention: jetstream.WorkQueuePolicy, Replicas: cfg.Replicas}); err != nil {
		return nil, fmt.Errorf("webhooks: replay stream: %w", err)
	}
	return &Service{pool: pool, store: store, js: js, clock: clk, random: random, log: log, cfg: cfg,
		reg: registry{pool: pool}, client: newClient(cfg.AllowPrivate, cfg.Timeout), events: events}, nil
}

// deadLetterLimit is the dead-letter stream's per-endpoint limit to set:
// the configured one, unless the stream has a higher one and some endpoint
// holds more dead letters than the configured: lowering the limit then
// would have the server drop what is over it, and dead letters are never
// dropped (another node, or an earlier start, had the higher one). The
// limit is lowered once the endpoints' dead letters fit under it.
func deadLetterLimit(ctx context.Context, js jetstream.JetStream, configured int64, log *slog.Logger) (int64, error) {
	st, err := js.Stream(ctx, deadStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return configured, nil
	}
	if err != nil {
		return 0, fmt.Errorf("webhooks: dead-letter stream: %w", err)
	}
	current := st.CachedInfo().Config.MaxMsgsPerSubject
	if current <= configured {
		return configured, nil
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(deadPrefix+">"))
	if err != nil {
		return 0, fmt.Errorf("webhooks: dead-letter stream: %w", err)
	}
	var most uint64
	for _, n := range info.State.Subjects {
		most = max(most, n)
	}
	if most <= uint64(configured) {
		return configured, nil
	}
	log.Warn("webhooks.max_dead_letters is below the dead letters an endpoint holds: the limit stays where it is until they are replayed",
		"configured", configured, "kept", current, "most_held", most)
	return current, nil
}

func (s *Service) now() time.Time                 { return s.clock.Now().UTC() }
func (s *Service) deadSubject(id string) string   { return deadPrefix + id }
func (s *Service) replaySubject(id string) string { return replayPrefix + id }

// Run delivers while this node holds the webhook lease, until ctx ends.
func (s *Service) Run(ctx context.Context) {
	lease := projections.Lease{Pool: s.pool, Key: leaseKey, Poll: s.cfg.LeasePoll, Check: time.Second}
	for ctx.Err() == nil {
		if err := lease.Hold(ctx, s.dispatch); err != nil && ctx.Err() == nil {
			s.log.Warn("webhook delivery lost its lease or database; retrying", "error", err)
			clock.Sleep(ctx, s.cfg.LeasePoll)
		}
	}
}

// dispatch runs one router per enabled endpoint and follows changes.
func (s *Service) dispatch(ctx context.Context) error {
	leaseHeld.Set(1)
	s.held.Store(true)
	defer func() { leaseHeld.Set(0); s.held.Store(false) }()
	s.log.Info("webhook lease taken: this node delivers")
	running := map[string]*runner{}
	defer func() {
		for id, r := range running {
			r.stop()
			s.runs.Delete(id)
		}
	}()
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		eps, err := s.reg.list(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("webhook endpoints unreadable", "error", err)
		}
		if err == nil {
			seen := map[string]bool{}
			for _, ep := range eps {
				seen[ep.ID] = true
				r := running[ep.ID]
				if ep.State != StateEnabled {
					if r != nil {
						r.stop()
						delete(running, ep.ID)
						s.runs.Delete(ep.ID)
					}
					continue
				}
				if r != nil && !r.stopped() {
					r.ep.Store(&ep)
					continue
				}
				if ctx.Err() != nil {
					// Stopping: the runners ended with the lease.
					break
				}
				nr, err := s.startRunner(ctx, ep)
				if err != nil {
					s.log.Warn("webhook endpoint not started", "webhook_endpoint", ep.ID, "error", err)
					continue
				}
				running[ep.ID] = nr
				s.runs.Store(ep.ID, true)
			}
			for id, r := range running {
				if !seen[id] {
					r.stop()
					delete(running, id)
					s.runs.Delete(id)
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Status is an endpoint with its delivery state.
type Status struct {
	Endpoint
	Counters
	// Lag: log events not yet acknowledged by the endpoint; nil before its
	// first run.
	Lag *uint64 `json:"lag"`
	// DeadLetters waiting for a replay.
	DeadLetters uint64 `json:"dead_letters"`
}

// ConfiguredEndpoint is an endpoint from the configuration file.
type ConfiguredEndpoint struct {
	ID, URL, Secret, StartFrom string
	EventTypes, ClientIDs      []string
}

// SyncConfigured writes the configured endpoints (called at start, with
// none when the file lists none): each follows the file, and one the file
// no longer lists is disabled (state reason "no longer in the
// configuration file"), its position and dead letters kept, so that a
// receiver taken out of the file gets nothing more.
func (s *Service) SyncConfigured(ctx context.Context, eps []ConfiguredEndpoint) error {
	keep := make([]string, 0, len(eps))
	for _, c := range eps {
		keep = append(keep, c.ID)
	}
	for _, c := range eps {
		if _, err := uuid.Parse(c.ID); err != nil {
			return fmt.Errorf("%w: configured endpoint id %q is not a UUID", ErrInvalidEndpoint, c.ID)
		}
		spec := Spec{URL: &c.URL, EventTypes: &c.EventTypes, ClientIDs: &c.ClientIDs, StartFrom: &c.StartFrom}
		if err := validateSpec(spec, true); err != nil {
			return fmt.Errorf("configured endpoint %s: %w", c.ID, err)
		}
		if _, err := secretKey(c.Secret); err != nil {
			return fmt.Errorf("configured endpoint %s: %w", c.ID, err)
		}
		last, err := s.store.LastSequence(ctx)
		if err != nil {
			return err
		}
		ep := Endpoint{ID: c.ID, URL: c.URL, EventTypes: c.EventTypes, ClientIDs: orEmpty(c.ClientIDs), State: StateEnabled,
			StartFrom: startOrNow(c.StartFrom), CreatedSeq: last, CreatedAt: s.now(), secrets: secrets{current: c.Secret}}
		if err := s.reg.upsertConfig(ctx, ep); err != nil {
			return err
		}
	}
	gone, err := s.reg.disableUnlisted(ctx, keep, s.now())
	if err != nil {
		return err
	}
	for _, id := range gone {
		s.log.Warn("webhook endpoint disabled: the configuration file no longer lists it (delete it with the admin API, or list it again)",
			"webhook_endpoint", id)
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func startOrNow(s string) string {
	if s == "" {
		return "now"
	}
	return s
}

// Create registers an endpoint and returns it with its secret, which is
// shown this once.
func (s *Service) Create(ctx context.Context, spec Spec) (Status, string, error) {
	if err := validateSpec(spec, true); err != nil {
		return Status{}, "", err
	}
	secret, err := NewSecret(s.random)
	if err != nil {
		return Status{}, "", err
	}
	last, err := s.store.LastSequence(ctx)
	if err != nil {
		return Status{}, "", err
	}
	start := "now"
	if spec.StartFrom != nil && *spec.StartFrom != "" {
		start = *spec.StartFrom
	}
	state := StateEnabled
	if spec.State != nil {
		state = *spec.State
	}
	var clients []string
	if spec.ClientIDs != nil {
		clients = *spec.ClientIDs
	}
	ep := Endpoint{ID: uuid.NewString(), URL: *spec.URL, EventTypes: *spec.EventTypes, ClientIDs: orEmpty(clients), State: state,
		StartFrom: start, CreatedSeq: last, Source: "api", CreatedAt: s.now(), UpdatedAt: s.now(), secrets: secrets{current: secret}}
	if err := s.reg.insert(ctx, ep); err != nil {
		return Status{}, "", err
	}
	st, err := s.Get(ctx, ep.ID)
	return st, secret, err
}

// List returns every endpoint with its state.
func (s *Service) List(ctx context.Context) ([]Status, error) {
	eps, err := s.reg.list(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Status, 0, len(eps))
	for _, ep := range eps {
		st, err := s.status(ctx, ep)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Get returns one endpoint with its state.
func (s *Service) Get(ctx context.Context, id string) (Status, error) {
	ep, err := s.reg.get(ctx, id)
	if err != nil {
		return Status{}, err
	}
	return s.status(ctx, ep)
}

func (s *Service) status(ctx context.Context, ep Endpoint) (Status, error) {
	c, err := s.reg.counters(ctx, ep.ID)
	if err != nil {
		return Status{}, err
	}
	st := Status{Endpoint: ep, Counters: c}
	if lag, err := s.lag(ctx, ep.ID); err == nil {
		st.Lag = &lag
	}
	st.DeadLetters, _ = s.deadCount(ctx, ep.ID)
	return st, nil
}

func (s *Service) lag(ctx context.Context, id string) (uint64, error) {
	c, err := s.js.Consumer(ctx, s.store.StreamName(), consumerName(id))
	if err != nil {
		return 0, err
	}
	info := c.CachedInfo()
	return info.NumPending + uint64(info.NumAckPending), nil
}

func (s *Service) deadCount(ctx context.Context, id string) (uint64, error) {
	st, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(s.deadSubject(id)))
	if err != nil {
		return 0, err
	}
	return info.State.Subjects[s.deadSubject(id)], nil
}

// Update changes an endpoint; configured endpoints take only a state.
func (s *Service) Update(ctx context.Context, id string, spec Spec) (Status, error) {
	if err := validateSpec(spec, false); err != nil {
		return Status{}, err
	}
	ep, err := s.reg.get(ctx, id)
	if err != nil {
		return Status{}, err
	}
	if ep.Source == "config" && (spec.URL != nil || spec.EventTypes != nil || spec.ClientIDs != nil) {
		return Status{}, ErrConfigEndpoint
	}
	if ep, err = s.reg.update(ctx, id, spec, s.now()); err != nil {
		return Status{}, err
	}
	return s.status(ctx, ep)
}

// RotateSecret gives the endpoint a new secret (returned, shown once);
// the old one keeps signing too for overlap (0: the default).
func (s *Service) RotateSecret(ctx context.Context, id string, overlap time.Duration) (Status, string, error) {
	if overlap < 0 || overlap > 7*24*time.Hour {
		return Status{}, "", fmt.Errorf("%w: the overlap is 0 to 7 days", ErrInvalidEndpoint)
	}
	if overlap == 0 {
		overlap = s.cfg.RotationOverlap
	}
	ep, err := s.reg.get(ctx, id)
	if err != nil {
		return Status{}, "", err
	}
	if ep.Source == "config" {
		return Status{}, "", ErrConfigEndpoint
	}
	secret, err := NewSecret(s.random)
	if err != nil {
		return Status{}, "", err
	}
	if ep, err = s.reg.rotate(ctx, id, secret, s.now().Add(overlap), s.now()); err != nil {
		return Status{}, "", err
	}
	st, err := s.status(ctx, ep)
	return st, secret, err
}

// Delete removes an endpoint, its consumers and its dead letters.
func (s *Service) Delete(ctx context.Context, id string) error {
	ep, err := s.reg.get(ctx, id)
	if err != nil {
		return err
	}
	if err := s.reg.delete(ctx, ep.ID); err != nil {
		return err
	}
	for _, c := range []struct{ stream, name string }{{s.store.StreamName(), consumerName(id)}, {replayStream, replayConsumerName(id)}} {
		if err := s.js.DeleteConsumer(ctx, c.stream, c.name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			s.log.Warn("webhook consumer not deleted", "consumer", c.name, "error", err)
		}
	}
	for _, st := range []struct{ stream, subj string }{{deadStream, s.deadSubject(id)}, {replayStream, s.replaySubject(id)}} {
		if str, err := s.js.Stream(ctx, st.stream); err == nil {
			_ = str.Purge(ctx, jetstream.WithPurgeSubject(st.subj))
		}
	}
	return nil
}

// DeadLetter is a delivery that gave up.
type DeadLetter struct {
	// ID is the dead letter's position in the dead-letter stream (the
	// replay handle).
	ID      uint64    `json:"id"`
	EventID string    `json:"event_id"`
	Seq     uint64    `json:"seq"`
	Type    string    `json:"type"`
	Sub     string    `json:"sub,omitempty"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"dead_lettered_at"`
}

// DeadLetters lists an endpoint's dead letters after the given id, oldest
// first, at most limit; next is the cursor of the next page (0: none).
func (s *Service) DeadLetters(ctx context.Context, id string, after uint64, limit int) ([]DeadLetter, uint64, error) {
	if _, err := s.reg.get(ctx, id); err != nil {
		return nil, 0, err
	}
	st, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		return nil, 0, err
	}
	out := []DeadLetter{}
	seq := after + 1
	for len(out) < limit {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(s.deadSubject(id)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, 0, nil
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, deadLetterOf(raw))
		seq = raw.Sequence + 1
	}
	return out, seq - 1, nil
}

func deadLetterOf(raw *jetstream.RawStreamMsg) DeadLetter {
	h := raw.Header
	seq, _ := strconv.ParseUint(h.Get(metaSeq), 10, 64)
	return DeadLetter{ID: raw.Sequence, EventID: h.Get(metaEventID), Seq: seq, Type: h.Get(metaType), Sub: h.Get(metaSub),
		Reason: scrubReason(h.Get("reason_poisoned")), At: raw.Time.UTC()}
}

// scrubReason keeps a reason short.
func scrubReason(r string) string {
	if len(r) > 500 {
		return r[:500]
	}
	return r
}

// Replay sends one dead letter again (through the endpoint's replay
// consumer, with the same webhook-id) and removes it from the dead letters.
func (s *Service) Replay(ctx context.Context, id string, deadID uint64) error {
	if _, err := s.reg.get(ctx, id); err != nil {
		return err
	}
	if deadID == 0 {
		return ErrNoSuchDeadLetter // stream sequences start at 1 (the server refuses 0 as a bad request)
	}
	st, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		return err
	}
	raw, err := st.GetMsg(ctx, deadID)
	if errors.Is(err, jetstream.ErrMsgNotFound) || (err == nil && raw.Subject != s.deadSubject(id)) {
		return ErrNoSuchDeadLetter
	}
	if err != nil {
		return err
	}
	return s.replayOne(ctx, st, id, raw)
}

func (s *Service) replayOne(ctx context.Context, st jetstream.Stream, id string, raw *jetstream.RawStreamMsg) error {
	nm := &nats.Msg{Subject: s.replaySubject(id), Data: raw.Data, Header: nats.Header{}}
	for _, k := range []string{metaEventID, metaSeq, metaSub, metaType} {
		nm.Header.Set(k, raw.Header.Get(k))
	}
	// The dead letter's own id: a replay retried after a lost answer is
	// published once.
	nm.Header.Set(jetstream.MsgIDHeader, "replay:"+strconv.FormatUint(raw.Sequence, 10))
	if _, err := s.js.PublishMsg(ctx, nm); err != nil {
		return fmt.Errorf("webhooks: replay: %w", err)
	}
	if err := st.DeleteMsg(ctx, raw.Sequence); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("webhooks: replay: remove dead letter: %w", err)
	}
	return nil
}

// ReplayAll replays every dead letter of the endpoint, oldest first, and
// returns how many.
func (s *Service) ReplayAll(ctx context.Context, id string) (int, error) {
	if _, err := s.reg.get(ctx, id); err != nil {
		return 0, err
	}
	st, err := s.js.Stream(ctx, deadStream)
	if err != nil {
		return 0, err
	}
	n := 0
	var seq uint64 = 1
	for {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(s.deadSubject(id)))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := s.replayOne(ctx, st, id, raw); err != nil {
			return n, err
		}
		n++
		seq = raw.Sequence + 1
	}
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}
