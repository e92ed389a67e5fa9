// Package links keeps an analytics table of identity links, built from
// idstream's event stream by its own durable JetStream consumer: for every
// sub, the person its activity belongs to (a merged guest's activity belongs
// to the account it was merged into), whether it is a guest or a member, and
// when it was created, promoted, merged or expired. Login IDs are never read
// into it: analytics need no PII.
//
// Delivery is at least once; the consumer is idempotent because it keeps the
// last applied stream sequence in the same PostgreSQL transaction as the rows.
package links

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/eventstore"
)

//go:embed schema.sql
var schema string

// lockKey names the PostgreSQL advisory lock that lets one instance at a time
// write the tables (whatever its consumer name): two instances pulling from
// one durable would each see part of the events, out of order.
const lockKey = "idstream-analytics:analytics_identity_links"

// ErrBusy means another instance holds the tables.
var ErrBusy = errors.New("links: another instance is consuming into these tables")

// Config says which stream to read and how.
type Config struct {
	// Stream is the event stream's name (idstream: IDSTREAM).
	Stream string
	// SubjectPrefix is the first token of the stream's subjects (idstream).
	SubjectPrefix string
	// Consumer is the durable consumer's name: a stable identifier, e.g.
	// analytics-links.
	Consumer string
	// BatchSize is how many events one transaction applies at most.
	BatchSize int
	// AckWait is how long JetStream waits for an ack before redelivering.
	AckWait time.Duration
	// FetchWait is how long Run waits for new events per pull.
	FetchWait time.Duration
}

// DefaultConfig reads idstream's default stream with the consumer
// analytics-links.
func DefaultConfig() Config {
	s := eventstore.DefaultStreamConfig()
	return Config{Stream: s.Name, SubjectPrefix: s.SubjectPrefix, Consumer: "analytics-links",
		BatchSize: 200, AckWait: 30 * time.Second, FetchWait: 2 * time.Second}
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Stream == "" || c.SubjectPrefix == "":
		return errors.New("links: stream and subject prefix are required")
	case c.Consumer == "" || strings.ContainsAny(c.Consumer, " \t.*>/\\"):
		return fmt.Errorf("links: %q is not a valid consumer name", c.Consumer)
	case c.BatchSize < 1 || c.BatchSize > 1000:
		return fmt.Errorf("links: batch size must be 1 to 1000, got %d", c.BatchSize)
	case c.AckWait < time.Second || c.FetchWait <= 0:
		return errors.New("links: ack wait must be at least 1s and fetch wait positive")
	}
	return nil
}

// FilterSubjects are the subjects the consumer reads: every event on a user,
// idstream.user.<sub> (eventstore's Store.Subject("user", sub)). All five link
// events are written on the user's subject, so sessions, keys and login IDs
// are never delivered.
func (c Config) FilterSubjects() []string {
	return []string{c.SubjectPrefix + ".user.*"}
}

// Consumer applies the stream's user events to the links tables.
type Consumer struct {
	cfg Config
	db  *pgxpool.Pool
	js  jetstream.JetStream
	log *slog.Logger
}

// New returns a consumer; it neither connects nor creates anything yet.
func New(db *pgxpool.Pool, js jetstream.JetStream, cfg Config, log *slog.Logger) (*Consumer, error) {
	if db == nil || js == nil || log == nil {
		return nil, errors.New("links: database, JetStream and logger are required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Consumer{cfg: cfg, db: db, js: js, log: log}, nil
}

// lock takes the tables' advisory lock on a connection of its own, held
// until release. PostgreSQL releases it when the connection dies.
func (c *Consumer) lock(ctx context.Context) (release func(), err error) {
	conn, err := c.db.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, lockKey).Scan(&got); err != nil {
		conn.Release()
		return nil, err
	}
	if !got {
		conn.Release()
		return nil, ErrBusy
	}
	return func() {
		_, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey)
		conn.Release()
	}, nil
}

// migrate creates the tables and the consumer's checkpoint row (under the
// lock, so two first starts do not race).
func (c *Consumer) migrate(ctx context.Context) error {
	if _, err := c.db.Exec(ctx, schema); err != nil {
		return fmt.Errorf("links: create tables: %w", err)
	}
	if _, err := c.db.Exec(ctx, `INSERT INTO analytics_checkpoints (consumer) VALUES ($1) ON CONFLICT DO NOTHING`, c.cfg.Consumer); err != nil {
		return fmt.Errorf("links: checkpoint: %w", err)
	}
	return nil
}

// Position returns the last stream sequence applied (0 before the first).
func (c *Consumer) Position(ctx context.Context) (uint64, error) {
	var pos int64
	err := c.db.QueryRow(ctx, `SELECT last_seq FROM analytics_checkpoints WHERE consumer = $1`, c.cfg.Consumer).Scan(&pos)
	if err != nil {
		return 0, fmt.Errorf("links: read checkpoint: %w", err)
	}
	return uint64(pos), nil
}
