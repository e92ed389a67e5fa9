package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig says how the event stream is set up.
type StreamConfig struct {
	// Name of the stream; default IDSTREAM.
	Name string
	// SubjectPrefix is the first token of every event subject; default idstream.
	SubjectPrefix string
	// Replicas: 1 for a single server, 3 in a cluster.
	Replicas int
	// DuplicateWindow bounds how long an idempotency key is remembered.
	DuplicateWindow time.Duration
}

// DefaultStreamConfig is the single-node configuration.
func DefaultStreamConfig() StreamConfig {
	return StreamConfig{Name: "IDSTREAM", SubjectPrefix: "idstream", Replicas: 1, DuplicateWindow: 2 * time.Minute}
}

// Validate reports a configuration that cannot work.
func (c StreamConfig) Validate() error {
	switch {
	case c.Name == "" || c.SubjectPrefix == "":
		return errors.New("eventstore: stream name and subject prefix are required")
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("eventstore: replicas must be 1 to 5, got %d", c.Replicas)
	case c.DuplicateWindow <= 0:
		return errors.New("eventstore: duplicate window must be positive")
	}
	return nil
}

func (c StreamConfig) jetstream() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        c.Name,
		Description: "idstream event log: the source of truth; never expires",
		Subjects:    []string{c.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		// No MaxAge, MaxMsgs or MaxBytes: history is the source of truth.
		MaxAge:             0,
		MaxMsgs:            -1,
		MaxBytes:           -1,
		MaxMsgsPerSubject:  -1,
		Discard:            jetstream.DiscardNew,
		Replicas:           c.Replicas,
		Duplicates:         c.DuplicateWindow,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		DenyDelete:         true,
		DenyPurge:          true,
	}
}

// EnsureStream creates the stream, or updates it to the configuration.
func EnsureStream(ctx context.Context, js jetstream.JetStream, c StreamConfig) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, c.jetstream()); err != nil {
		return fmt.Errorf("eventstore: create or update stream %s: %w", c.Name, err)
	}
	return nil
}
