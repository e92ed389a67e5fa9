package links

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stats counts what a CatchUp did.
type Stats struct {
	// Applied link events (stored and folded into the links).
	Applied int
	// Ignored user events of other types: they only moved the checkpoint.
	Ignored int
	// Skipped deliveries at or below the checkpoint: redeliveries of events
	// already applied.
	Skipped int
	// Position is the checkpoint afterwards.
	Position uint64
}

func (s *Stats) add(o Stats) {
	s.Applied += o.Applied
	s.Ignored += o.Ignored
	s.Skipped += o.Skipped
	s.Position = max(s.Position, o.Position)
}

// errGap means a delivery went missing: it would come back later, after
// newer events, so the consumer starts again from the checkpoint.
var errGap = errors.New("links: gap in delivery")

// session is one attachment to the durable consumer.
type session struct {
	cons jetstream.Consumer
	// next is the consumer sequence the next delivery must carry. Every
	// delivery (redeliveries too) takes the next one, so a jump means one
	// was lost on the way.
	next uint64
}

// consumerConfig is the durable consumer, delivering from stream sequence
// start on.
func (c *Consumer) consumerConfig(start uint64) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        c.cfg.Consumer,
		Description:    "idstream analytics: identity links",
		FilterSubjects: c.cfg.FilterSubjects(),
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        c.cfg.AckWait,
		MaxDeliver:     -1,
		MaxAckPending:  4 * c.cfg.BatchSize,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(start, 1),
	}
}

// attach finds the durable consumer and keeps it if it will deliver the
// events after the checkpoint in order; otherwise it re-creates it right
// after the checkpoint. PostgreSQL's checkpoint is the truth.
func (c *Consumer) attach(ctx context.Context) (*session, error) {
	pos, err := c.Position(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := c.js.Consumer(ctx, c.cfg.Stream, c.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return c.recreate(ctx, pos+1, "no consumer yet")
	}
	if err != nil {
		return nil, fmt.Errorf("links: consumer: %w", err)
	}
	info := cons.CachedInfo()
	reason, err := c.misplaced(ctx, info, pos)
	if err != nil {
		return nil, err
	}
	if reason != "" {
		return c.recreate(ctx, pos+1, reason)
	}
	return &session{cons: cons, next: info.Delivered.Consumer + 1}, nil
}

// misplaced says why the durable cannot simply go on from where it is.
func (c *Consumer) misplaced(ctx context.Context, info *jetstream.ConsumerInfo, pos uint64) (string, error) {
	cfg := info.Config
	if !slices.Equal(cfg.FilterSubjects, c.cfg.FilterSubjects()) || cfg.AckPolicy != jetstream.AckExplicitPolicy {
		return "configuration changed", nil
	}
	if info.NumAckPending > 0 {
		// Delivered to an instance that died before acking: they would be
		// redelivered after newer events.
		return fmt.Sprintf("%d deliveries in flight", info.NumAckPending), nil
	}
	if info.Delivered.Stream <= pos {
		// Behind or at the checkpoint: what comes again is skipped.
		return "", nil
	}
	// The consumer is past the checkpoint (its position also moves past
	// events the filter does not match). Is there an event for us between?
	stream, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return "", fmt.Errorf("links: stream: %w", err)
	}
	next, err := stream.GetMsg(ctx, pos+1, jetstream.WithGetMsgSubject(c.cfg.FilterSubjects()[0]))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("links: next event after %d: %w", pos, err)
	}
	if next.Sequence <= info.Delivered.Stream {
		return fmt.Sprintf("delivered up to %d, applied up to %d", info.Delivered.Stream, pos), nil
	}
	return "", nil
}

// recreate deletes the durable and creates it again at start.
func (c *Consumer) recreate(ctx context.Context, start uint64, reason string) (*session, error) {
	c.log.Info("creating the analytics consumer", "consumer", c.cfg.Consumer, "start_seq", start, "reason", reason)
	if err := c.js.DeleteConsumer(ctx, c.cfg.Stream, c.cfg.Consumer); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("links: delete consumer: %w", err)
	}
	cons, err := c.js.CreateConsumer(ctx, c.cfg.Stream, c.consumerConfig(start))
	if err != nil {
		return nil, fmt.Errorf("links: create consumer: %w", err)
	}
	return &session{cons: cons, next: cons.CachedInfo().Delivered.Consumer + 1}, nil
}

// step pulls one batch and applies it; it returns how many messages came.
func (c *Consumer) step(ctx context.Context, s *session, pull func() (jetstream.MessageBatch, error), st *Stats) (int, error) {
	b, err := pull()
	if err != nil {
		return 0, fmt.Errorf("links: fetch: %w", err)
	}
	var msgs []jetstream.Msg
	for m := range b.Messages() {
		msgs = append(msgs, m)
	}
	if err := b.Error(); err != nil {
		return 0, fmt.Errorf("links: fetch: %w", err)
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return 0, err
		}
		if meta.Sequence.Consumer != s.next {
			return 0, fmt.Errorf("%w: delivery %d, want %d", errGap, meta.Sequence.Consumer, s.next)
		}
		s.next++
	}
	done, err := c.apply(ctx, msgs)
	if err != nil {
		return 0, err
	}
	st.add(done)
	// Acks after the commit: a lost ack means a redelivery, which the
	// checkpoint skips.
	for _, m := range msgs {
		if err := m.Ack(); err != nil {
			c.log.Warn("ack failed; the event will be redelivered and skipped", "err", err)
		}
	}
	return len(msgs), nil
}

// apply applies a batch in one transaction, skipping what the checkpoint
// already covers, and moves the checkpoint in the same transaction.
func (c *Consumer) apply(ctx context.Context, msgs []jetstream.Msg) (Stats, error) {
	var st Stats
	tx, err := c.db.Begin(ctx)
	if err != nil {
		return st, fmt.Errorf("links: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after commit
	var last int64
	// FOR UPDATE: whoever else holds the row waits, then sees the new one.
	if err := tx.QueryRow(ctx, `SELECT last_seq FROM analytics_checkpoints WHERE consumer = $1 FOR UPDATE`,
		c.cfg.Consumer).Scan(&last); err != nil {
		return st, fmt.Errorf("links: read checkpoint: %w", err)
	}
	pos := uint64(last)
	for _, m := range msgs {
		meta, err := m.Metadata()
		if err != nil {
			return st, err
		}
		seq := meta.Sequence.Stream
		if seq <= pos {
			st.Skipped++
			continue
		}
		pos = seq
		f, ok, err := decode(m)
		if err != nil {
			return st, fmt.Errorf("links: %w", err)
		}
		if !ok {
			st.Ignored++
			continue
		}
		applied, err := record(ctx, tx, f)
		if err != nil {
			return st, fmt.Errorf("links: %w", err)
		}
		if applied {
			st.Applied++
		} else {
			st.Skipped++
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE analytics_checkpoints SET last_seq = $2, updated_at = now() WHERE consumer = $1`,
		c.cfg.Consumer, int64(pos)); err != nil {
		return st, fmt.Errorf("links: move checkpoint: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return st, fmt.Errorf("links: commit: %w", err)
	}
	st.Position = pos
	return st, nil
}

// CatchUp applies every event the stream has now and returns. It fails
// with ErrBusy while another instance consumes into the same tables.
func (c *Consumer) CatchUp(ctx context.Context) (Stats, error) {
	var st Stats
	release, err := c.lock(ctx)
	if err != nil {
		return st, err
	}
	defer release()
	if err := c.migrate(ctx); err != nil {
		return st, err
	}
	// The last event for us now: an append's acknowledgement comes before
	// the server tells the consumer, so for a moment the consumer may count
	// nothing pending although the event is stored.
	target, err := c.lastEvent(ctx)
	if err != nil {
		return st, err
	}
	s, err := c.attach(ctx)
	if err != nil {
		return st, err
	}
	for {
		n, err := c.step(ctx, s, func() (jetstream.MessageBatch, error) { return s.cons.FetchNoWait(c.cfg.BatchSize) }, &st)
		if errors.Is(err, errGap) {
			c.log.Warn("starting again from the checkpoint", "err", err)
			if s, err = c.attach(ctx); err != nil {
				return st, err
			}
			continue
		}
		if err != nil {
			return st, err
		}
		if n > 0 {
			continue
		}
		info, err := s.cons.Info(ctx)
		if err != nil {
			return st, fmt.Errorf("links: consumer info: %w", err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			pos, err := c.Position(ctx)
			if err != nil || pos >= target {
				st.Position = pos
				return st, err
			}
		}
		// Our acks are still on their way, a delivery was lost and will
		// come back (and be seen as a gap), or the consumer has not yet
		// been told of the last event.
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// lastEvent is the stream sequence of the last event the filter matches, 0
// when there is none.
func (c *Consumer) lastEvent(ctx context.Context) (uint64, error) {
	stream, err := c.js.Stream(ctx, c.cfg.Stream)
	if err != nil {
		return 0, fmt.Errorf("links: stream: %w", err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, c.cfg.FilterSubjects()[0])
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("links: last event: %w", err)
	}
	return m.Sequence, nil
}

// Run follows the stream until ctx ends. While another instance holds the
// tables it stands by; after an error (PostgreSQL or NATS away, a gap, an
// event it cannot apply) it waits and starts again from the checkpoint, so an
// event it cannot apply stops it at that event: nothing is ever skipped.
func (c *Consumer) Run(ctx context.Context) error {
	backoff := time.Second
	for ctx.Err() == nil {
		release, err := c.lock(ctx)
		if err == nil {
			err = c.follow(ctx)
			release()
		}
		if ctx.Err() != nil {
			break
		}
		if errors.Is(err, ErrBusy) {
			c.log.Debug("another instance consumes; standing by")
			backoff = 2 * time.Second
		} else {
			c.log.Error("analytics consumer stopped; starting again from the checkpoint", "err", err, "in", backoff)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
	return nil
}

func (c *Consumer) follow(ctx context.Context) error {
	if err := c.migrate(ctx); err != nil {
		return err
	}
	s, err := c.attach(ctx)
	if err != nil {
		return err
	}
	c.log.Info("analytics consumer running", "consumer", c.cfg.Consumer, "filter", c.cfg.FilterSubjects())
	// Take what is there, up to a batch; when nothing is, wait for one
	// event (a full-batch pull would wait for the batch to fill).
	ready := func() (jetstream.MessageBatch, error) { return s.cons.FetchNoWait(c.cfg.BatchSize) }
	first := func() (jetstream.MessageBatch, error) {
		return s.cons.Fetch(1, jetstream.FetchMaxWait(c.cfg.FetchWait))
	}
	for ctx.Err() == nil {
		var st Stats
		n, err := c.step(ctx, s, ready, &st)
		if err == nil && n == 0 {
			_, err = c.step(ctx, s, first, &st)
		}
		if err != nil {
			return err
		}
		if st.Applied > 0 {
			c.log.Info("applied link events", "events", st.Applied, "position", st.Position)
		}
	}
	return nil
}

// Replay rebuilds the links from stream sequence from (0 or 1: from the
// start). The tables are first put back to their state before from: the link
// events from there on are deleted and the links are folded again from the
// rest, with the checkpoint at from-1, all in one transaction. Then the
// durable consumer is deleted and created again to deliver from there.
// Replaying past the checkpoint is refused: the events between would be
// missing.
func (c *Consumer) Replay(ctx context.Context, from uint64) error {
	from = max(from, 1)
	release, err := c.lock(ctx)
	if err != nil {
		return err
	}
	defer release()
	if err := c.migrate(ctx); err != nil {
		return err
	}
	if err := c.rewind(ctx, from); err != nil {
		return err
	}
	_, err = c.recreate(ctx, from, fmt.Sprintf("replay from %d", from))
	return err
}

func (c *Consumer) rewind(ctx context.Context, from uint64) error {
	tx, err := c.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("links: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }() // a no-op after commit
	var last int64
	if err := tx.QueryRow(ctx, `SELECT last_seq FROM analytics_checkpoints WHERE consumer = $1 FOR UPDATE`,
		c.cfg.Consumer).Scan(&last); err != nil {
		return fmt.Errorf("links: read checkpoint: %w", err)
	}
	if from-1 > uint64(last) {
		return fmt.Errorf("links: cannot replay from %d: applied only up to %d", from, last)
	}
	// DELETE rather than TRUNCATE: readers see the old rows until commit.
	if _, err := tx.Exec(ctx, `DELETE FROM analytics_identity_events WHERE seq >= $1`, int64(from)); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `DELETE FROM analytics_identity_links`); err != nil {
		return err
	}
	rows, err := tx.Query(ctx, `SELECT seq, event_id, type, sub, at, coalesce(into_sub, ''), coalesce(login_id_type, '')
		FROM analytics_identity_events ORDER BY seq`)
	if err != nil {
		return err
	}
	var facts []fact
	for rows.Next() {
		var f fact
		var seq int64
		if err := rows.Scan(&seq, &f.EventID, &f.Type, &f.Sub, &f.At, &f.Into, &f.LoginIDType); err != nil {
			rows.Close()
			return err
		}
		f.Seq = uint64(seq)
		facts = append(facts, f)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range facts {
		if err := link(ctx, tx, f); err != nil {
			return fmt.Errorf("links: %w", err)
		}
	}
	if _, err := tx.Exec(ctx, `UPDATE analytics_checkpoints SET last_seq = $2, updated_at = now() WHERE consumer = $1`,
		c.cfg.Consumer, int64(from-1)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("links: commit: %w", err)
	}
	return nil
}
