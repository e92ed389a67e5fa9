package projections

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// A replay rebuilds one projection from the whole log beside the live one,
// in a shadow schema replay_<name>, with the projector's own Apply code, and
// swaps the rebuilt tables in atomically once it has caught up with the log.
// The live projection keeps serving (and applying events) until the swap.
//
// While it builds, the shadow tables are unlogged and carry only their
// primary key and unique indexes (which are checks, so they stay); the other
// indexes are built, and the tables made logged, once the replay has reached
// the end of the log as it was when the replay began. Unlogged tables are
// emptied by a PostgreSQL crash; the bookkeeping row is unlogged with them,
// so a replay that finds its row gone starts again instead of resuming.

// ReplayOptions tune a replay.
type ReplayOptions struct {
	// BatchSize is the most events applied in one transaction (default
	// 10,000).
	BatchSize int
	// Restart drops the shadow of an interrupted replay and starts from the
	// beginning of the log; without it, a replay resumes from the shadow's
	// position.
	Restart bool
	// SwapLag: the replay swaps in once at most this many events behind the
	// log (default BatchSize). The events between the shadow's position and
	// the live projection's are applied inside the swap's transaction.
	SwapLag uint64
	// LockTimeout bounds the swap's waits for locks: the live checkpoint row
	// and the tables (held by readers). On a timeout the replay catches up
	// and tries again. It also bounds the wait for the replay's own lock,
	// which an interrupted replay of the same projection may hold for a
	// moment (until PostgreSQL has ended its session). Default 2 s.
	LockTimeout time.Duration
	// SwapAttempts is how many lock timeouts the swap tolerates (default 20).
	SwapAttempts int
	// Progress, if set, is called after every batch and on a change of phase.
	Progress func(ReplayProgress)
}

func (o *ReplayOptions) defaults() error {
	if o.BatchSize == 0 {
		o.BatchSize = 10000
	}
	if o.SwapLag == 0 {
		o.SwapLag = uint64(o.BatchSize)
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.SwapAttempts == 0 {
		o.SwapAttempts = 20
	}
	if o.BatchSize < 1 || o.LockTimeout < time.Millisecond || o.SwapAttempts < 1 {
		return errors.New("projections: replay batch size, lock timeout and swap attempts must be positive")
	}
	return nil
}

// Replay phases, in order.
const (
	PhaseBuilding   = "building"    // applying the log up to its end when the replay began
	PhaseIndexing   = "indexing"    // building secondary indexes, making the tables logged
	PhaseCatchingUp = "catching-up" // applying what arrived meanwhile
	PhaseSwapping   = "swapping"    // the swap's transaction
	PhaseDone       = "done"
)

// ReplayProgress is how far a replay has got.
type ReplayProgress struct {
	Phase string
	// Position is the last event applied to the shadow; From is where this
	// run began (0, or where it resumed), Last the log's last sequence as
	// last seen.
	Position, From, Last uint64
	// Elapsed since this run began, and events applied per second by it.
	Elapsed time.Duration
	Rate    float64
	// ETA to reach Last at Rate (0 when unknown).
	ETA time.Duration
}

// Done is how many events this run has applied.
func (p ReplayProgress) Done() uint64 { return p.Position - p.From }

// Total is how many events this run has to apply, as far as is known.
func (p ReplayProgress) Total() uint64 { return max(p.Last, p.Position) - p.From }

// ReplayResult is what a replay did.
type ReplayResult struct {
	// From is the shadow's position when this run began (non-zero when it
	// resumed an interrupted replay); Position is the projection's
	// checkpoint after the swap.
	From, Position uint64
	Elapsed        time.Duration
	// Folded is how many updates were folded into rows inserted in the same
	// batch (see Queue) instead of being sent as UPDATEs.
	Folded uint64
}

// Events is how many events this run applied.
func (r ReplayResult) Events() uint64 { return r.Position - r.From }

// Rate is events applied per second.
func (r ReplayResult) Rate() float64 { return float64(r.Events()) / max(r.Elapsed.Seconds(), 1e-9) }

// ShadowSchema is the schema a replay of the projection builds in.
func ShadowSchema(name string) string { return "replay_" + name }

// progressTableName is the replay's bookkeeping table in the shadow schema.
const progressTableName = "replay_progress"

// Replay rebuilds p's tables from the log in the shadow schema and swaps them
// in for the live ones; see ReplayOptions. If an event cannot be applied it
// stops with an error naming the event (an *EventError inside); the shadow is
// kept, to inspect or to resume.
func Replay(ctx context.Context, pool *pgxpool.Pool, src Source, p Projector, opts ReplayOptions) (ReplayResult, error) {
	if pool == nil || src == nil || p == nil {
		return ReplayResult{}, errors.New("projections: pool, source and projector are required")
	}
	if err := opts.defaults(); err != nil {
		return ReplayResult{}, err
	}
	tables := p.Tables()
	if len(tables) == 0 {
		return ReplayResult{}, fmt.Errorf("projections: projection %s declares no tables", p.Name())
	}
	for _, t := range tables {
		if t == "" || t == progressTableName {
			return ReplayResult{}, fmt.Errorf("projections: projection %s: table name %q cannot be replayed", p.Name(), t)
		}
	}
	schema := ShadowSchema(p.Name())
	r := &replay{
		src: src, p: p, opts: opts, tables: tables, start: time.Now(),
		schema:   pgx.Identifier{schema}.Sanitize(),
		progress: pgx.Identifier{schema, progressTableName}.Sanitize(),
	}

	// The replay works on one connection, which holds a lock so that there
	// is one replay of a projection at a time, across all nodes.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return ReplayResult{}, err
	}
	defer conn.Release()
	r.conn = conn
	for deadline := time.Now().Add(opts.LockTimeout); ; {
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey(p.Name()+".replay")).Scan(&got); err != nil {
			return ReplayResult{}, err
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			return ReplayResult{}, fmt.Errorf("projections: another replay of %s is running", p.Name())
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			return ReplayResult{}, ctx.Err()
		}
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey(p.Name()+".replay"))
	}()

	if err := r.prepare(ctx); err != nil {
		return ReplayResult{}, fmt.Errorf("projections: replay %s: prepare shadow: %w", p.Name(), err)
	}
	err = r.run(ctx)
	res := ReplayResult{From: r.from, Position: r.pos, Elapsed: time.Since(r.start), Folded: r.folded}
	if err != nil {
		var ee *EventError
		if errors.As(err, &ee) && permanent(err) {
			return res, fmt.Errorf("projections: replay %s stopped: %w; the shadow schema %s is kept at position %d: run again to resume, or with restart to start over",
				p.Name(), err, schema, r.pos)
		}
		return res, fmt.Errorf("projections: replay %s (shadow %s kept at position %d): %w", p.Name(), schema, r.pos, err)
	}
	r.report(PhaseDone)
	return res, nil
}

type replay struct {
	conn   *pgxpool.Conn
	src    Source
	p      Projector
	opts   ReplayOptions
	tables []string
	// schema and progress are sanitized identifiers.
	schema, progress string
	start            time.Time

	from, pos, target uint64
	// folded counts the updates folded into inserted rows.
	folded uint64
	// lag is how many events the log holds past the last one read.
	lag   uint64
	phase string

	batches <-chan readBatch
	// held are events read but not applied yet; readErr ends the events
	// that can be read.
	held    []decoded
	readErr error
}

func (r *replay) shadowTable(t string) string {
	return pgx.Identifier{ShadowSchema(r.p.Name()), t}.Sanitize()
}
func liveTable(t string) string { return pgx.Identifier{"public", t}.Sanitize() }

// prepare resumes the shadow if there is one with its bookkeeping row, and
// creates it otherwise.
func (r *replay) prepare(ctx context.Context) error {
	if r.opts.Restart {
		if _, err := r.conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+r.schema+` CASCADE`); err != nil {
			return err
		}
	}
	last, err := r.src.LastSequence(ctx)
	if err != nil {
		return err
	}
	var pos, target int64
	err = r.conn.QueryRow(ctx, `SELECT position, target FROM `+r.progress+` WHERE name = $1`, r.p.Name()).Scan(&pos, &target)
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		for _, t := range r.tables {
			same, err := sameShape(ctx, r.conn, liveTable(t), r.shadowTable(t))
			if err != nil {
				return err
			}
			if !same {
				return fmt.Errorf("the columns or constraints of %s changed since the replay began (a migration?): run again with restart", t)
			}
		}
		r.from, r.pos, r.target = uint64(pos), uint64(pos), uint64(target)
	case errors.Is(err, pgx.ErrNoRows) || errors.As(err, &pgErr) && (pgErr.Code == "3F000" || pgErr.Code == "42P01"):
		// No shadow, or one whose unlogged rows a crash emptied.
		if err := r.create(ctx, last); err != nil {
			return err
		}
		r.target = last
	default:
		return err
	}
	r.lag = last - min(last, r.pos)
	return nil
}

// create makes the shadow schema: the projection's tables, unlogged and
// without their secondary indexes, and the bookkeeping table.
func (r *replay) create(ctx context.Context, target uint64) error {
	return pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DROP SCHEMA IF EXISTS `+r.schema+` CASCADE; CREATE SCHEMA `+r.schema); err != nil {
			return err
		}
		for _, t := range r.tables {
			if _, err := tx.Exec(ctx, `CREATE UNLOGGED TABLE `+r.shadowTable(t)+` (LIKE `+liveTable(t)+` INCLUDING ALL)`); err != nil {
				return err
			}
			idx, err := indexes(ctx, tx, r.shadowTable(t))
			if err != nil {
				return err
			}
			for _, ix := range idx {
				if ix.deferred() {
					if _, err := tx.Exec(ctx, `DROP INDEX `+pgx.Identifier{ShadowSchema(r.p.Name()), ix.name}.Sanitize()); err != nil {
						return err
					}
				}
			}
		}
		if _, err := tx.Exec(ctx, `CREATE UNLOGGED TABLE `+r.progress+` (
			name          text        PRIMARY KEY,
			position      bigint      NOT NULL DEFAULT 0,
			target        bigint      NOT NULL,
			started_at    timestamptz NOT NULL DEFAULT now(),
			last_event_at timestamptz,
			updated_at    timestamptz NOT NULL DEFAULT now())`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO `+r.progress+` (name, target) VALUES ($1, $2)`, r.p.Name(), int64(target))
		return err
	})
}

func (r *replay) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop, err := r.read(ctx)
	if err != nil {
		return err
	}
	defer stop()

	r.report(PhaseBuilding)
	for r.pos < r.target {
		if err := r.step(ctx); err != nil {
			return err
		}
	}
	r.report(PhaseIndexing)
	if err := r.finish(ctx); err != nil {
		return fmt.Errorf("index and log the shadow tables: %w", err)
	}
	for attempt := 1; ; attempt++ {
		r.report(PhaseCatchingUp)
		for r.behind() > r.opts.SwapLag {
			if err := r.step(ctx); err != nil {
				return err
			}
		}
		r.report(PhaseSwapping)
		err := r.swap(ctx)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" && attempt < r.opts.SwapAttempts {
			continue // lock_not_available: readers held the tables; try again
		}
		if err != nil {
			return fmt.Errorf("swap: %w", err)
		}
		return nil
	}
}

func (r *replay) report(phase string) {
	r.phase = phase
	if r.opts.Progress == nil {
		return
	}
	pr := ReplayProgress{Phase: phase, Position: r.pos, From: r.from, Last: r.pos + r.behind(), Elapsed: time.Since(r.start)}
	pr.Rate = float64(pr.Done()) / max(pr.Elapsed.Seconds(), 1e-9)
	if pr.Rate > 0 {
		pr.ETA = time.Duration(float64(r.behind()) / pr.Rate * float64(time.Second))
	}
	r.opts.Progress(pr)
}

// behind is how many events the log holds past the shadow's position, as
// far as is known.
func (r *replay) behind() uint64 { return uint64(len(r.held)) + r.lag }

// step applies the next batch of events to the shadow.
func (r *replay) step(ctx context.Context) error {
	if len(r.held) == 0 {
		if r.readErr != nil {
			return r.readErr
		}
		if err := r.receive(ctx); err != nil {
			return err
		}
	}
	evs := r.held[:min(len(r.held), r.opts.BatchSize)]
	if len(evs) == 0 {
		return nil
	}
	err := r.apply(ctx, evs)
	var ee *EventError
	if errors.As(err, &ee) && permanent(err) {
		// Land the events before the one at fault: the shadow stops right
		// before it.
		for i := range evs {
			if evs[i].rec.Sequence == ee.Sequence && i > 0 {
				if err := r.apply(ctx, evs[:i]); err != nil {
					return err
				}
			}
		}
	}
	return err
}

// apply applies evs, the first events held, to the shadow in one
// transaction.
func (r *replay) apply(ctx context.Context, evs []decoded) error {
	err := r.applyOnce(ctx, evs, true)
	if errors.As(err, new(fastFailed)) {
		// Again statement by statement, to find the event at fault.
		err = r.applyOnce(ctx, evs, false)
	}
	if err != nil {
		return err
	}
	r.pos = max(r.pos, evs[len(evs)-1].rec.Sequence)
	r.held = r.held[len(evs):]
	r.report(r.phase)
	return nil
}

// applyOnce applies evs in one transaction. It is repeatable read: its
// statements write only the shadow, which nothing else writes, so they see
// the same rows as under read committed, and PostgreSQL takes one snapshot
// for the batch instead of one for every statement.
func (r *replay) applyOnce(ctx context.Context, evs []decoded, fast bool) error {
	tx, err := r.begin(ctx, pgx.RepeatableRead)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	_, folded, err := applyTx(ctx, tx, r.p, r.progress, evs, fast)
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	r.folded += uint64(folded)
	return nil
}

// begin starts a transaction that writes to the shadow: the projector's
// unqualified table names resolve there. A commit lost to a crash only
// loses its events and its position together, so it need not wait for the
// WAL flush.
func (r *replay) begin(ctx context.Context, iso pgx.TxIsoLevel) (pgx.Tx, error) {
	tx, err := r.conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: iso})
	if err != nil {
		return nil, err
	}
	if _, err := tx.Exec(ctx, `SET LOCAL search_path TO `+r.schema+`, public; SET LOCAL synchronous_commit TO off`); err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, err
	}
	return tx, nil
}

// receive adds the next batch read from the log to r.held.
func (r *replay) receive(ctx context.Context) error {
	select {
	case b, ok := <-r.batches:
		if !ok {
			if err := ctx.Err(); err != nil {
				return err
			}
			return errors.New("log reader stopped")
		}
		if len(r.held) == 0 {
			r.held = b.evs
		} else {
			r.held = append(r.held, b.evs...)
		}
		r.lag = b.pending
		r.readErr = b.err
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readBatch is a run of events read in order, the number of events the log
// held past them, and the error that ended reading, if one did.
type readBatch struct {
	evs     []decoded
	pending uint64
	err     error
}

// read starts reading the log after r.pos with an ordered consumer. Reading
// and decoding run ahead of the applying, in goroutines of their own: one
// takes the messages off the consumer in chunks, decodeWorkers decode them,
// and one puts the decoded chunks back in log order and cuts them into
// batches, so that reading and JSON decoding overlap PostgreSQL's work.
func (r *replay) read(ctx context.Context) (stop func(), err error) {
	ctx, cancel := context.WithCancel(ctx)
	// The whole stream: no filter (see eventstore.Store.AllSubjects).
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if r.pos > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, r.pos+1
	}
	js := r.src.JetStream()
	cons, err := js.OrderedConsumer(ctx, r.src.StreamName(), cfg)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("log consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(max(1000, r.opts.BatchSize)))
	if err != nil {
		cancel()
		return nil, fmt.Errorf("log consumer: %w", err)
	}
	out := make(chan readBatch, readAhead)
	r.batches = out
	workers := decodeWorkers
	work := make(chan *readChunk, 2*workers)
	ordered := make(chan *readChunk, readAhead*r.opts.BatchSize/readChunkSize+2*workers)
	var wg sync.WaitGroup
	wg.Add(2 + workers)
	go func() { defer wg.Done(); readChunks(ctx, it, work, ordered) }()
	for range workers {
		go func() {
			defer wg.Done()
			for c := range work {
				c.decode()
				close(c.done)
			}
		}()
	}
	go func() { defer wg.Done(); defer close(out); batchChunks(ctx, ordered, out, r.opts.BatchSize) }()
	return func() {
		cancel()
		it.Stop()
		wg.Wait()
		if info := cons.CachedInfo(); info != nil {
			_ = js.DeleteConsumer(context.WithoutCancel(ctx), r.src.StreamName(), info.Name)
		}
	}, nil
}

const (
	// decodeWorkers is how many goroutines decode. One: on two cores, more
	// took CPU from PostgreSQL and the NATS server and made every replay
	// slower (measured: users 58,500 and 61,700 events/s with one, 50,300 to
	// 54,900 with two).
	decodeWorkers = 1
	// readChunkSize is the most messages decoded as one piece of work.
	readChunkSize = 512
	// readAhead is how many batches may wait, decoded, to be applied.
	readAhead = 3
)

// readChunk is a run of messages in log order, decoded by a worker: evs are
// the events decoded before err, the error that ended the chunk (reading or
// decoding), if one did. pending is the number of events the log held past
// the last message read.
type readChunk struct {
	msgs    []readMsg
	pending uint64
	evs     []decoded
	err     error
	done    chan struct{}
}

type readMsg struct {
	m   jetstream.Msg
	seq uint64
}

func (c *readChunk) decode() {
	c.evs = make([]decoded, 0, len(c.msgs))
	for i, rm := range c.msgs {
		rec, err := eventstore.DecodeRecord(rm.m.Subject(), rm.seq, rm.m.Data())
		var ev domain.Event
		if err == nil {
			ev, err = domain.DecodeEvent(rec.Type, rec.Data)
		}
		if err != nil {
			rec.Sequence = rm.seq
			if rec.Type == "" {
				rec.Type = rm.m.Headers().Get(eventstore.HeaderEventType)
			}
			c.err = applyError{eventError(rec, err)}
			break
		}
		c.evs = append(c.evs, decoded{rec, ev})
		c.msgs[i] = readMsg{}
	}
	c.msgs = nil
}

// readChunks takes messages off the consumer, in chunks cut at readChunkSize
// or when the log has nothing more for now, and hands each to a worker and,
// in order, to batchChunks. A chunk with a reading error is the last.
func readChunks(ctx context.Context, it jetstream.MessagesContext, work, ordered chan<- *readChunk) {
	defer close(work)
	defer close(ordered)
	c := &readChunk{done: make(chan struct{})}
	send := func() bool {
		select {
		case ordered <- c:
		case <-ctx.Done():
			return false
		}
		select {
		case work <- c:
		case <-ctx.Done():
			return false
		}
		c = &readChunk{done: make(chan struct{}), msgs: make([]readMsg, 0, readChunkSize)}
		return true
	}
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		var meta *jetstream.MsgMetadata
		if err == nil {
			meta, err = m.Metadata()
		}
		if err != nil {
			// Decoded first: the messages before the error are applied.
			c.err = fmt.Errorf("read the log: %w", err)
			send()
			return
		}
		c.msgs = append(c.msgs, readMsg{m, meta.Sequence.Stream})
		c.pending = meta.NumPending
		if len(c.msgs) >= readChunkSize || meta.NumPending == 0 {
			if !send() {
				return
			}
		}
	}
}

// batchChunks joins decoded chunks, in order, into batches of up to size
// events, cut early when the log has nothing more for now, and sends them on
// out. A batch with an error is the last.
func batchChunks(ctx context.Context, ordered <-chan *readChunk, out chan<- readBatch, size int) {
	send := func(b readBatch) bool {
		select {
		case out <- b:
			return true
		case <-ctx.Done():
			return false
		}
	}
	evs := make([]decoded, 0, size)
	for c := range ordered {
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
		for i := range c.evs {
			evs = append(evs, c.evs[i])
			if len(evs) == size && (i < len(c.evs)-1 || c.err == nil && c.pending > 0) {
				// Full, and more follows: what the log holds past this batch
				// is the rest of the chunk and what is pending after it.
				if !send(readBatch{evs: evs, pending: c.pending + uint64(len(c.evs)-1-i)}) {
					return
				}
				evs = make([]decoded, 0, size)
			}
		}
		if c.err != nil || c.pending == 0 {
			if !send(readBatch{evs: evs, pending: c.pending, err: c.err}) || c.err != nil {
				return
			}
			evs = make([]decoded, 0, size)
		}
	}
}

// finish makes the shadow tables logged and builds the indexes left out
// while building. Each part is skipped when done already (on resume).
func (r *replay) finish(ctx context.Context) error {
	err := pgx.BeginFunc(ctx, r.conn, func(tx pgx.Tx) error {
		// One transaction: data and bookkeeping become crash-safe together.
		for _, t := range append(append([]string(nil), r.tables...), progressTableName) {
			var unlogged bool
			if err := tx.QueryRow(ctx, `SELECT relpersistence = 'u' FROM pg_class WHERE oid = $1::regclass`, r.shadowTable(t)).Scan(&unlogged); err != nil {
				return err
			}
			if unlogged {
				if _, err := tx.Exec(ctx, `ALTER TABLE `+r.shadowTable(t)+` SET LOGGED`); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, t := range r.tables {
		live, err := indexes(ctx, r.conn, liveTable(t))
		if err != nil {
			return err
		}
		shadow, err := indexes(ctx, r.conn, r.shadowTable(t))
		if err != nil {
			return err
		}
		for _, ix := range live {
			if findIndex(shadow, ix.key) == nil {
				if _, err := r.conn.Exec(ctx, ix.create(r.shadowTable(t))); err != nil {
					return err
				}
			}
		}
		if _, err := r.conn.Exec(ctx, `ANALYZE `+r.shadowTable(t)); err != nil {
			return err
		}
	}
	return nil
}

// swap replaces the live tables with the shadow ones in one transaction. It
// first locks the live checkpoint row, which holds back the live runner's
// next batch, and brings the shadow up to the live position (the live runner
// skips what is at or before the new checkpoint).
func (r *replay) swap(ctx context.Context) error {
	name := r.p.Name()
	tx, err := r.begin(ctx, "") // the server's default isolation
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The swap's commit is waited for, unlike the batches'.
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d; SET LOCAL synchronous_commit TO on`, r.opts.LockTimeout.Milliseconds())); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO public.projection_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, name); err != nil {
		return err
	}
	var live int64
	if err := tx.QueryRow(ctx, `SELECT position FROM public.projection_checkpoints WHERE name = $1 FOR UPDATE`, name).Scan(&live); err != nil {
		return err
	}
	pos := r.pos
	if uint64(live) > r.pos {
		for len(r.held) == 0 || r.held[len(r.held)-1].rec.Sequence < uint64(live) {
			if r.readErr != nil {
				return r.readErr
			}
			if err := r.receive(ctx); err != nil {
				return err
			}
		}
		n := 0
		for n < len(r.held) && r.held[n].rec.Sequence <= uint64(live) {
			n++
		}
		// Statement by statement: a failed COPY would abort the swap.
		if _, _, err := applyTx(ctx, tx, r.p, r.progress, r.held[:n], false); err != nil {
			return err
		}
		pos = uint64(live)
	}

	for _, t := range r.tables {
		same, err := sameShape(ctx, tx, liveTable(t), r.shadowTable(t))
		if err != nil {
			return err
		}
		if !same {
			return fmt.Errorf("the columns or constraints of %s changed since the replay began (a migration?): run again with restart", t)
		}
		old, err := indexes(ctx, tx, liveTable(t))
		if err != nil {
			return err
		}
		// Dropped, not moved aside: anything that depends on the old table
		// (a view) makes the swap fail rather than vanish with it.
		if _, err := tx.Exec(ctx, `DROP TABLE `+liveTable(t)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `ALTER TABLE `+r.shadowTable(t)+` SET SCHEMA public`); err != nil {
			return err
		}
		if err := renameIndexes(ctx, tx, t, old); err != nil {
			return err
		}
	}
	var lastAt *time.Time
	if err := tx.QueryRow(ctx, `SELECT last_event_at FROM `+r.progress+` WHERE name = $1`, name).Scan(&lastAt); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE public.projection_checkpoints SET position = $2, last_event_at = coalesce($3, last_event_at),
		state = 'running', updated_at = now() WHERE name = $1`, name, int64(pos), lastAt); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DROP SCHEMA `+r.schema+` CASCADE`); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	r.pos, r.held = pos, nil
	return nil
}

// renameIndexes gives the indexes of the table just moved into public the
// names of the old table's indexes with the same definition (migrations
// refer to indexes by name), builds any the old table had and the new one
// lacks, and drops any the old table did not have.
func renameIndexes(ctx context.Context, tx pgx.Tx, table string, old []index) error {
	cur, err := indexes(ctx, tx, liveTable(table))
	if err != nil {
		return err
	}
	for _, ix := range cur {
		o := findIndex(old, ix.key)
		switch {
		case o == nil:
			if _, err := tx.Exec(ctx, `DROP INDEX `+pgx.Identifier{"public", ix.name}.Sanitize()); err != nil {
				return err
			}
		case o.name != ix.name:
			if _, err := tx.Exec(ctx, `ALTER INDEX `+pgx.Identifier{"public", ix.name}.Sanitize()+` RENAME TO `+pgx.Identifier{o.name}.Sanitize()); err != nil {
				return err
			}
		}
	}
	for _, o := range old {
		if findIndex(cur, o.key) == nil {
			if _, err := tx.Exec(ctx, o.create(liveTable(table))); err != nil {
				return err
			}
		}
	}
	return nil
}

// index is one index of a table; key is its definition without its name and
// table, to match an index of one table with its copy on another.
type index struct {
	name, key  string
	constraint bool
	unique     bool
}

// deferred reports whether a replay builds the index only at the end: it is
// neither a constraint nor unique, so leaving it out while building changes
// nothing but speed.
func (ix index) deferred() bool { return !ix.constraint && !ix.unique }

// create is the statement that builds the index, under its name, on table.
func (ix index) create(table string) string {
	u := ""
	if ix.unique {
		u = "UNIQUE "
	}
	return `CREATE ` + u + `INDEX ` + pgx.Identifier{ix.name}.Sanitize() + ` ON ` + table + ix.key
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func indexes(ctx context.Context, q querier, table string) ([]index, error) {
	rows, err := q.Query(ctx, `SELECT c.relname, x.indisunique, pg_get_indexdef(x.indexrelid),
			EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
		FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
		WHERE x.indrelid = $1::regclass ORDER BY c.relname`, table)
	if err != nil {
		return nil, err
	}
	var out []index
	for rows.Next() {
		var ix index
		var def string
		if err := rows.Scan(&ix.name, &ix.unique, &def, &ix.constraint); err != nil {
			rows.Close()
			return nil, err
		}
		// "CREATE [UNIQUE] INDEX name ON [ONLY] schema.table USING method (...) ..."
		at := strings.Index(def, " USING ")
		if at < 0 {
			rows.Close()
			return nil, fmt.Errorf("unexpected definition of index %s: %s", ix.name, def)
		}
		ix.key = def[at:]
		out = append(out, ix)
	}
	rows.Close()
	return out, rows.Err()
}

func findIndex(ixs []index, key string) *index {
	for i := range ixs {
		if ixs[i].key == key {
			return &ixs[i]
		}
	}
	return nil
}

// sameShape reports whether two tables have the same columns, in order,
// with the same types, nullability and defaults, and the same constraints.
func sameShape(ctx context.Context, q querier, a, b string) (bool, error) {
	const cols = `SELECT coalesce((SELECT string_agg(format('%s %s %s %s', quote_ident(attname), format_type(atttypid, atttypmod), attnotnull,
			coalesce(pg_get_expr(d.adbin, d.adrelid), '')), ', ' ORDER BY attnum)
		FROM pg_attribute LEFT JOIN pg_attrdef d ON d.adrelid = attrelid AND d.adnum = attnum
		WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped), '') || '; ' ||
		coalesce((SELECT string_agg(pg_get_constraintdef(oid), ', ' ORDER BY pg_get_constraintdef(oid))
		FROM pg_constraint WHERE conrelid = $1::regclass), '')`
	var ca, cb string
	if err := q.QueryRow(ctx, cols, a).Scan(&ca); err != nil {
		return false, err
	}
	if err := q.QueryRow(ctx, cols, b).Scan(&cb); err != nil {
		return false, err
	}
	return ca == cb, nil
}
