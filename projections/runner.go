// Package projections builds PostgreSQL read models from the event log. Each
// projection has its own durable JetStream consumer; it applies a batch of
// events and moves its checkpoint (the stream sequence) in one transaction,
// so a redelivered or replayed event is never applied twice. An event that
// cannot be applied stops the projection and is recorded; nothing is skipped.
package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// Projector turns events into read-model rows.
type Projector interface {
	// Name is stable: it names the checkpoint row and the durable consumer.
	Name() string
	// Apply queues the statements for one event.
	Apply(q *Queue, rec eventstore.Record, ev domain.Event) error
	// Tables are the tables the projection owns and writes, all of them: a
	// replay rebuilds exactly these beside the live ones and swaps them in.
	Tables() []string
}

// Source is what the runner needs from the event log.
type Source interface {
	JetStream() jetstream.JetStream
	StreamName() string
	LastSequence(ctx context.Context) (uint64, error)
}

// Config tunes a runner.
type Config struct {
	// BatchSize is the most events applied in one transaction.
	BatchSize int
	// RetryBackoff is the first pause after a transient error (PostgreSQL or
	// NATS unreachable); it doubles up to a minute.
	RetryBackoff time.Duration
	// StandbyPoll is how often a node that does not hold a projection's lock
	// tries to take it.
	StandbyPoll time.Duration
}

// DefaultConfig is the configuration `idstream serve` uses.
func DefaultConfig() Config {
	return Config{BatchSize: 500, RetryBackoff: 100 * time.Millisecond, StandbyPoll: 2 * time.Second}
}

// Runner runs projectors until its context ends.
type Runner struct {
	pool       *pgxpool.Pool
	src        Source
	projectors []Projector
	cfg        Config
	log        *slog.Logger

	mu     sync.Mutex
	states map[string]string
}

// NewRunner builds a runner; it refuses missing dependencies.
func NewRunner(pool *pgxpool.Pool, src Source, log *slog.Logger, cfg Config, ps ...Projector) (*Runner, error) {
	if pool == nil || src == nil || log == nil {
		return nil, errors.New("projections: pool, source and logger are required")
	}
	if cfg.BatchSize < 1 || cfg.RetryBackoff <= 0 || cfg.StandbyPoll <= 0 {
		return nil, errors.New("projections: batch size, retry backoff and standby poll must be positive")
	}
	return &Runner{pool: pool, src: src, projectors: ps, cfg: cfg, log: log, states: map[string]string{}}, nil
}

// Projectors returns the runner's projectors.
func (r *Runner) Projectors() []Projector { return r.projectors }

// Run runs every projector and returns when ctx ends.
func (r *Runner) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, p := range r.projectors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.supervise(ctx, p)
		}()
	}
	wg.Wait()
}

// State reports what this node's instance of a projection is doing:
// standby, catching-up/running, stopped (after a failure) or retrying.
func (r *Runner) State(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.states[name]
}

func (r *Runner) setState(name, state string) {
	r.mu.Lock()
	r.states[name] = state
	r.mu.Unlock()
	for _, s := range []string{StateStandby, StateRunning, StateStopped, StateRetrying} {
		v := 0.0
		if s == state {
			v = 1
		}
		projectionState.WithLabelValues(name, s).Set(v)
	}
}

// Projection states.
const (
	StateStandby  = "standby"
	StateRunning  = "running"
	StateStopped  = "stopped"
	StateRetrying = "retrying"
)

// stoppedError ends a projection's run after a recorded failure of the
// event at seq.
type stoppedError struct{ seq uint64 }

func (e stoppedError) Error() string {
	return fmt.Sprintf("projection stopped on the failed event at %d", e.seq)
}

// maxRetryBackoff bounds the pause between retries of a paused
// projection: once PostgreSQL or NATS is back, the read models catch up
// within this much (a longer cap made a minute-long outage cost another
// minute of lag), at the price of one warning per pause while it lasts.
const maxRetryBackoff = 5 * time.Second

func (r *Runner) supervise(ctx context.Context, p Projector) {
	backoff := r.cfg.RetryBackoff
	for ctx.Err() == nil {
		var progressed bool
		err := r.runOnce(ctx, p, &progressed)
		var stopped stoppedError
		switch {
		case ctx.Err() != nil:
			return
		case errors.As(err, &stopped):
			r.setState(p.Name(), StateStopped)
			if !r.awaitRetry(ctx, p.Name(), stopped.seq) {
				return
			}
			backoff = r.cfg.RetryBackoff
		case err != nil:
			if progressed {
				// It had recovered from any earlier outage: this one's
				// pauses start again from the first, instead of from where
				// the last outage left them (up to a minute).
				backoff = r.cfg.RetryBackoff
			}
			r.setState(p.Name(), StateRetrying)
			r.log.Warn("projection paused; will retry", "projection", p.Name(), "error", err, "retry_in", backoff)
			clock.Sleep(ctx, backoff)
			backoff = min(backoff*2, maxRetryBackoff)
		default:
			backoff = r.cfg.RetryBackoff
		}
	}
}

// awaitRetry waits while the projection is stopped on the event at seq. It
// returns true once the checkpoint row says to run again: a replay swapped in
// a rebuilt projection (state running, position at or past seq). Another
// node's retry of the same event does not move the position, so two nodes do
// not take turns failing on it. It returns false when ctx ends.
func (r *Runner) awaitRetry(ctx context.Context, name string, seq uint64) bool {
	for {
		clock.Sleep(ctx, r.cfg.StandbyPoll)
		if ctx.Err() != nil {
			return false
		}
		var state string
		var pos int64
		err := r.pool.QueryRow(ctx, `SELECT state, position FROM projection_checkpoints WHERE name = $1`, name).Scan(&state, &pos)
		if err == nil && state != StateStopped && uint64(pos) >= seq {
			r.log.Info("projection resumed after a replay", "projection", name, "position", pos)
			return true
		}
	}
}

func lockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("idstream.projection." + name))
	return int64(h.Sum64() >> 1)
}

// runOnce takes the projection's lock, then consumes until an error; it
// sets progressed once it has applied a batch.
func (r *Runner) runOnce(ctx context.Context, p Projector, progressed *bool) error {
	name := p.Name()
	// One instance per projection across all nodes. Correctness does not
	// rest on the lease: every batch re-reads the checkpoint under a row
	// lock. A lost lease connection (PostgreSQL restarted) means another
	// node may take over: the run ends and starts again from the top.
	lease := Lease{Pool: r.pool, Key: lockKey(name), Poll: r.cfg.StandbyPoll, Check: 5 * time.Second,
		Waiting: func() { r.setState(name, StateStandby) }}
	return lease.Hold(ctx, func(ctx context.Context) error { return r.run(ctx, p, progressed) })
}

// run consumes the projection while this node holds its lease.
func (r *Runner) run(ctx context.Context, p Projector, progressed *bool) error {
	name := p.Name()
	if _, err := r.pool.Exec(ctx, `INSERT INTO projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return fmt.Errorf("checkpoint row: %w", err)
	}
	var pos int64
	if err := r.pool.QueryRow(ctx, `UPDATE projection_checkpoints SET state = 'running', updated_at = now() WHERE name = $1 RETURNING position`, name).Scan(&pos); err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	if pos > 0 {
		why, err := r.aheadOfLog(ctx, name, uint64(pos))
		if err != nil {
			return err
		}
		if why != "" {
			if pos, err = r.rebuild(ctx, p, uint64(pos), why); err != nil {
				return err
			}
		}
	}
	var install string
	if err := r.pool.QueryRow(ctx, `SELECT left(id::text, 8) FROM installation`).Scan(&install); err != nil {
		return fmt.Errorf("read installation id: %w", err)
	}
	cons, err := r.consumer(ctx, p, install, uint64(pos))
	if err != nil {
		return err
	}
	r.setState(name, StateRunning)
	r.log.Info("projection running", "projection", name, "position", pos, "consumer", ConsumerName(name, install))

	// The delivery callback gives up when this run ends, not only when the
	// runner does: after an error nobody reads msgs any more, and a callback
	// blocked on it would never return.
	runCtx, endRun := context.WithCancel(ctx)
	defer endRun()
	msgs := make(chan jetstream.Msg, 4*r.cfg.BatchSize)
	cctx, err := cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-runCtx.Done():
		}
	}, jetstream.PullMaxMessages(2*r.cfg.BatchSize))
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	defer cctx.Stop()

	batch := make([]jetstream.Msg, 0, r.cfg.BatchSize)
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-msgs:
			batch = append(batch[:0], m)
		}
	fill:
		for len(batch) < r.cfg.BatchSize {
			select {
			case m := <-msgs:
				batch = append(batch, m)
			default:
				break fill
			}
		}
		if err := r.applyBatch(ctx, p, batch); err != nil {
			return err
		}
		*progressed = true
		// AckAll: acknowledging the last acknowledges the batch.
		_ = batch[len(batch)-1].Ack()
	}
}

// aheadOfLog says why the read model holds events the log no longer has,
// or "" if it does not. A machine that loses power can lose the tail of the
// log that the server had stored but not yet synced, and so had not
// acknowledged: its consumers may have seen those events, and PostgreSQL
// kept what the projections made of them. After the restart the checkpoint
// is then past the log's end, or, once new events have taken the lost
// sequence numbers, the event at the checkpoint is another one than the one
// applied there (its time differs from the checkpoint's last_event_at).
func (r *Runner) aheadOfLog(ctx context.Context, name string, pos uint64) (string, error) {
	var appliedAt *time.Time
	if err := r.pool.QueryRow(ctx, `SELECT last_event_at FROM projection_checkpoints WHERE name = $1`, name).Scan(&appliedAt); err != nil {
		return "", fmt.Errorf("read checkpoint: %w", err)
	}
	stream, err := r.src.JetStream().Stream(ctx, r.src.StreamName())
	if err != nil {
		return "", fmt.Errorf("stream: %w", err)
	}
	raw, err := stream.GetMsg(ctx, pos)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		last, lerr := r.src.LastSequence(ctx)
		if lerr != nil {
			return "", lerr
		}
		if last < pos {
			return fmt.Sprintf("the checkpoint is at %d, the log ends at %d", pos, last), nil
		}
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("event at the checkpoint: %w", err)
	}
	var env eventstore.Envelope
	if err := json.Unmarshal(raw.Data, &env); err != nil || appliedAt == nil {
		return "", nil
	}
	// PostgreSQL keeps microseconds; pgx truncates to them.
	if at := env.OccurredAt.Truncate(time.Microsecond); !at.Equal(*appliedAt) {
		return fmt.Sprintf("the event at the checkpoint (%d) occurred at %s, the one applied there at %s", pos,
			at.UTC().Format(time.RFC3339Nano), appliedAt.UTC().Format(time.RFC3339Nano)), nil
	}
	return "", nil
}

// rebuild replaces a read model that is ahead of the log with one built
// from the log (a replay, swapped in), and returns its position.
func (r *Runner) rebuild(ctx context.Context, p Projector, pos uint64, why string) (int64, error) {
	name := p.Name()
	r.log.Error("the read model holds events the log lost (power loss before they were synced?): rebuilding it from the log",
		"projection", name, "position", pos, "reason", why)
	projectionRebuilds.WithLabelValues(name).Inc()
	// The live checkpoint no longer stands for anything in the log: the
	// replay builds from the start and swaps its tables in without applying
	// anything on top of the live position.
	if _, err := r.pool.Exec(ctx, `UPDATE projection_checkpoints SET position = 0, last_event_at = NULL, updated_at = now() WHERE name = $1`, name); err != nil {
		return 0, fmt.Errorf("reset checkpoint: %w", err)
	}
	res, err := Replay(ctx, r.pool, r.src, p, ReplayOptions{Restart: true})
	if err != nil {
		return 0, fmt.Errorf("rebuild %s from the log: %w", name, err)
	}
	r.log.Info("read model rebuilt from the log", "projection", name, "position", res.Position, "elapsed", res.Elapsed)
	return int64(res.Position), nil
}

// consumer (re)creates the projection's durable consumer to start right after
// the checkpoint: PostgreSQL's checkpoint is the truth, the consumer follows.
func (r *Runner) consumer(ctx context.Context, p Projector, install string, pos uint64) (jetstream.Consumer, error) {
	js := r.src.JetStream()
	durable := ConsumerName(p.Name(), install)
	if err := js.DeleteConsumer(ctx, r.src.StreamName(), durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("reset consumer: %w", err)
	}
	// Every projection reads the whole log, so that its checkpoint is the
	// stream's sequence and "caught up" means position == last sequence;
	// events it has no rows for only move the checkpoint. No filter: the
	// stream is the log (see eventstore.Store.AllSubjects).
	cfg := jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "idstream projection " + p.Name(),
		AckPolicy:     jetstream.AckAllPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 20 * r.cfg.BatchSize,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if pos > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = pos + 1
	}
	c, err := js.CreateOrUpdateConsumer(ctx, r.src.StreamName(), cfg)
	if err != nil {
		return nil, fmt.Errorf("create consumer: %w", err)
	}
	return c, nil
}

// ConsumerName is the durable consumer of a projection in one installation
// (database).
func ConsumerName(projection, install string) string {
	return "projection-" + projection + "-" + install
}

type decoded struct {
	rec eventstore.Record
	ev  domain.Event
}

// applyBatch applies events past the checkpoint in one transaction. When the
// batch fails for a reason in the data, it is re-applied event by event to
// find the event at fault, which is recorded; the events before it land.
func (r *Runner) applyBatch(ctx context.Context, p Projector, msgs []jetstream.Msg) error {
	start := time.Now()
	evs := make([]decoded, 0, len(msgs))
	for _, m := range msgs {
		rec, err := eventstore.DecodeMsg(m)
		var ev domain.Event
		if err == nil {
			ev, err = domain.DecodeEvent(rec.Type, rec.Data)
		}
		if err != nil {
			// Land what came before, then stop on this one.
			if err := r.applyEach(ctx, p, evs); err != nil {
				return err
			}
			return r.fail(ctx, p, rec, err)
		}
		evs = append(evs, decoded{rec, ev})
	}
	n, err := r.tx(ctx, p, evs)
	if err == nil {
		observeBatch(p.Name(), n, evs, start)
		return nil
	}
	if !permanent(err) || len(evs) == 1 {
		if permanent(err) {
			return r.fail(ctx, p, evs[0].rec, err)
		}
		return err
	}
	return r.applyEach(ctx, p, evs)
}

func (r *Runner) applyEach(ctx context.Context, p Projector, evs []decoded) error {
	for i := range evs {
		start := time.Now()
		n, err := r.tx(ctx, p, evs[i:i+1])
		if err != nil {
			if permanent(err) {
				return r.fail(ctx, p, evs[i].rec, err)
			}
			return err
		}
		observeBatch(p.Name(), n, evs[i:i+1], start)
	}
	return nil
}

// applyError marks an error caused by the event's data or the read model's
// state, not by the infrastructure.
type applyError struct{ err error }

func (e applyError) Error() string { return e.err.Error() }
func (e applyError) Unwrap() error { return e.err }

func permanent(err error) bool {
	var ae applyError
	if errors.As(err, &ae) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code[:2] {
		case "08", "40", "53", "57", "58":
			// connection, transaction rollback, resources, operator
			// intervention (e.g. shutdown), system errors: try again.
			return false
		}
		return true
	}
	return false
}

// liveCheckpoints is the table of the live projections' positions.
var liveCheckpoints = pgx.Identifier{"projection_checkpoints"}.Sanitize()

// tx applies evs (those past the checkpoint) and moves the checkpoint, in one
// transaction. It returns how many events it applied.
func (r *Runner) tx(ctx context.Context, p Projector, evs []decoded) (int, error) {
	n, err := r.txOnce(ctx, p, evs, true)
	if errors.As(err, new(fastFailed)) {
		// Again statement by statement, to find the event at fault.
		n, err = r.txOnce(ctx, p, evs, false)
	}
	return n, err
}

func (r *Runner) txOnce(ctx context.Context, p Projector, evs []decoded, fast bool) (int, error) {
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	applied, _, err := applyTx(ctx, tx, p, liveCheckpoints, evs, fast)
	if err != nil || applied == 0 {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, err
	}
	return applied, nil
}

// EventError is an event that could not be applied.
type EventError struct {
	Sequence uint64
	Type     string
	Err      error
}

func (e *EventError) Error() string {
	return fmt.Sprintf("apply %s at %d: %v", e.Type, e.Sequence, e.Err)
}

// Unwrap returns the cause.
func (e *EventError) Unwrap() error { return e.Err }

func eventError(rec eventstore.Record, err error) *EventError {
	return &EventError{Sequence: rec.Sequence, Type: rec.Type, Err: err}
}

// copyMinRows is the shortest run of inserts sent with COPY: a COPY takes
// two round trips of its own, which a few rows do not repay.
const copyMinRows = 16

// fastFailed is a batch applied the fast way (COPY, folded updates) that
// failed. It names no event, or may name the wrong one (a folded row's
// error may be a later event's): the transaction is to be rolled back and
// applied again with fast off, which finds the event at fault, if there is
// one.
type fastFailed struct{ err error }

func (e fastFailed) Error() string { return "fast path: " + e.err.Error() }
func (e fastFailed) Unwrap() error { return e.err }

// applyTx applies evs (those past the checkpoint) in tx and moves the
// checkpoint. The checkpoint is the row named after the projection in table
// (the live projection_checkpoints, or a replay's own), whose columns are
// name, position, last_event_at and updated_at. It returns how many events it
// applied and how many updates it folded; the caller commits. With fast,
// updates are folded into rows inserted earlier in the batch where they can
// be (see Queue), and runs of at least copyMinRows consecutive rows queued
// with the same Insert are sent with COPY; if a COPY fails, or anything does
// once an update was folded, the error is a fastFailed.
func applyTx(ctx context.Context, tx pgx.Tx, p Projector, table string, evs []decoded, fast bool) (applied, folded int, _ error) {
	var pos int64
	if err := tx.QueryRow(ctx, `SELECT position FROM `+table+` WHERE name = $1 FOR UPDATE`, p.Name()).Scan(&pos); err != nil {
		return 0, 0, err
	}
	q := &Queue{fold: fast}
	var last decoded
	next := uint64(pos) + 1
	for i, d := range evs {
		if d.rec.Sequence < next {
			continue // redelivered: already applied
		}
		if d.rec.Sequence != next {
			// Every projection reads every event, and the log never drops
			// one, so a gap means a delivery went missing (seen when the
			// stream's leader changes): start again from the checkpoint.
			projectionGaps.WithLabelValues(p.Name()).Inc()
			return 0, 0, fmt.Errorf("gap in delivery: got sequence %d, want %d", d.rec.Sequence, next)
		}
		next++
		before := len(q.stmts)
		if err := p.Apply(q, d.rec, d.ev); err != nil {
			return 0, 0, applyError{eventError(d.rec, err)}
		}
		for j := before; j < len(q.stmts); j++ {
			q.stmts[j].rec = i
		}
		applied++
		last = d
	}
	if applied == 0 {
		return 0, 0, nil
	}
	q.stmts = append(q.stmts, stmt{rec: -1, sql: `UPDATE ` + table + ` SET position = $2, last_event_at = $3, updated_at = now() WHERE name = $1`,
		args: []any{p.Name(), int64(last.rec.Sequence), last.rec.OccurredAt}})
	// The statements go in order, in as few round trips as can be: one
	// pipelined batch for each stretch between COPYs.
	stmts := q.stmts
	for len(stmts) > 0 {
		n := 0
		var run int
		for n < len(stmts) {
			if run = copyRun(stmts[n:], fast); run > 0 {
				break
			}
			n++
		}
		if err := execBatch(ctx, tx, evs, stmts[:n]); err != nil {
			if q.folded > 0 {
				// A folded row's error may be a later event's.
				return 0, 0, fastFailed{err}
			}
			return 0, 0, err
		}
		if run > 0 {
			if err := copyRows(ctx, tx, stmts[n:n+run]); err != nil {
				return 0, 0, err
			}
		}
		stmts = stmts[n+run:]
	}
	return applied, q.folded, nil
}

// copyRun is the length of the run of inserts at the start of stmts that
// would go with COPY, or 0.
func copyRun(stmts []stmt, fast bool) int {
	if !fast || stmts[0].ins == nil {
		return 0
	}
	n := 1
	for n < len(stmts) && stmts[n].ins == stmts[0].ins {
		n++
	}
	if n < copyMinRows {
		return 0
	}
	return n
}

// copyText is a string value in a row sent with COPY. COPY sends every value
// in binary, and pgx encodes a plain string for a uuid column only after a
// failed attempt, which costs more than the rest of the row; copyText is text
// for a text column and a parsed UUID for a uuid column. A value it cannot
// encode fails the COPY, and the transaction is applied again with INSERTs.
type copyText string

func (s copyText) TextValue() (pgtype.Text, error) {
	return pgtype.Text{String: string(s), Valid: true}, nil
}

func (s copyText) UUIDValue() (pgtype.UUID, error) {
	var u pgtype.UUID
	err := u.Scan(string(s))
	return u, err
}

// execBatch sends stmts in one pipelined batch and checks what they did.
func execBatch(ctx context.Context, tx pgx.Tx, evs []decoded, stmts []stmt) error {
	if len(stmts) == 0 {
		return nil
	}
	b := &pgx.Batch{QueuedQueries: make([]*pgx.QueuedQuery, 0, len(stmts))}
	for _, s := range stmts {
		b.Queue(s.sql, s.args...)
	}
	res := tx.SendBatch(ctx, b)
	for _, s := range stmts {
		tag, err := res.Exec()
		if err != nil {
			_ = res.Close()
			if s.rec < 0 {
				return err
			}
			// Still a *pgconn.PgError underneath, for permanent().
			return eventError(evs[s.rec].rec, err)
		}
		if s.wantOne && tag.RowsAffected() != 1 {
			_ = res.Close()
			return applyError{eventError(evs[s.rec].rec, fmt.Errorf("changed %d rows, want 1", tag.RowsAffected()))}
		}
	}
	return res.Close()
}

// copyRows sends a run of rows queued with one Insert with COPY.
func copyRows(ctx context.Context, tx pgx.Tx, stmts []stmt) error {
	ins := stmts[0].ins
	row := make([]any, len(ins.columns))
	n, err := tx.CopyFrom(ctx, pgx.Identifier{ins.table}, ins.columns, pgx.CopyFromSlice(len(stmts), func(i int) ([]any, error) {
		// The row is encoded before the next one is asked for.
		if len(stmts[i].args) != len(row) {
			return nil, fmt.Errorf("%d values for %d columns", len(stmts[i].args), len(row))
		}
		for j, v := range stmts[i].args {
			if s, ok := v.(string); ok {
				v = copyText(s)
			}
			row[j] = v
		}
		return row, nil
	}))
	if err == nil && n != int64(len(stmts)) {
		err = fmt.Errorf("copied %d rows, want %d", n, len(stmts))
	}
	if err != nil {
		return fastFailed{err}
	}
	return nil
}

// fail records the event that stopped the projection and stops it.
func (r *Runner) fail(ctx context.Context, p Projector, rec eventstore.Record, cause error) error {
	r.log.Error("projection stopped: event could not be applied", "projection", p.Name(),
		"sequence", rec.Sequence, "subject", rec.Subject, "event_type", rec.Type, "event_id", rec.ID, "error", cause)
	projectionFailures.WithLabelValues(p.Name()).Inc()
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO projection_failures (projection, sequence, subject, event_type, event_id, error)
			VALUES ($1, $2, $3, $4, $5, $6)`, p.Name(), int64(rec.Sequence), rec.Subject, rec.Type, rec.ID, cause.Error()); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE projection_checkpoints SET state = 'stopped', updated_at = now() WHERE name = $1`, p.Name())
		return err
	})
	if err != nil {
		// Could not even record it: retry the whole thing later.
		return fmt.Errorf("record failure: %w (after %v)", err, cause)
	}
	return stoppedError{rec.Sequence}
}
