// Package eventstore is idstream's event log on NATS JetStream. It is the only
// code that publishes to the log: appends carry optimistic-concurrency and
// idempotency headers, and concurrent appends are grouped into JetStream
// atomic batches so that many commands share one fsync.
package eventstore

import (
	"encoding/json"
	"time"
)

// Envelope is what the log stores for each event: a JSON document that any
// consumer can read without idstream's code.
type Envelope struct {
	ID            string    `json:"id"`
	Type          string    `json:"type"`
	OccurredAt    time.Time `json:"occurred_at"`
	CorrelationID string    `json:"correlation_id,omitempty"`
	CausationID   string    `json:"causation_id,omitempty"`
	// Actor is set when an operator caused the event (admin API, portal).
	Actor string          `json:"actor,omitempty"`
	Data  json.RawMessage `json:"data"`
}

// Record is an envelope as read back from the log.
type Record struct {
	Envelope
	Subject  string
	Sequence uint64
}

// Message is one event to append.
type Message struct {
	Subject string
	// ExpectedLastSubjectSequence is the stream sequence of the subject's last
	// event as the command saw it; 0 means the subject must have no events.
	// Only the first message of an append on a subject is checked; later ones
	// in the same (atomic) append follow it.
	ExpectedLastSubjectSequence uint64
	// MsgID, when set, deduplicates within the stream's duplicate window.
	MsgID    string
	Envelope Envelope
}

// Header names set on every event message, so consumers can filter without
// decoding the payload.
const (
	HeaderEventType = "Idstream-Event-Type"
	HeaderEventID   = "Idstream-Event-Id"
)

// JetStream header names used by appends.
const (
	hdrExpectedLastSubjSeq = "Nats-Expected-Last-Subject-Sequence"
	hdrMsgID               = "Nats-Msg-Id"
	hdrBatchID             = "Nats-Batch-Id"
	hdrBatchSeq            = "Nats-Batch-Sequence"
	hdrBatchCommit         = "Nats-Batch-Commit"
)
