package eventstore

import (
	"errors"
	"fmt"
)

var (
	// ErrConflict means an expected-sequence check failed: someone else wrote
	// to the aggregate first. Reload and decide again.
	ErrConflict = errors.New("eventstore: concurrent write conflict")
	// ErrDuplicate means the idempotency key was already used within the
	// duplicate window; nothing was written.
	ErrDuplicate = errors.New("eventstore: duplicate message id")
	// ErrUnavailable means the log could not be reached or did not answer in
	// time. The outcome of an append that fails with it is unknown.
	ErrUnavailable = errors.New("eventstore: log unavailable")
)

// JetStream error codes that mean an optimistic-concurrency check failed.
const (
	jsErrWrongLastSequence         = 10071
	jsErrWrongLastSequenceConstant = 10164
	jsErrAtomicDuplicateMsgID      = 10201
	jsErrDuplicateInProcess        = 10158
	// jsErrBatchIncomplete: the server abandoned an atomic batch (too slow
	// under load, or beyond its in-flight limit); nothing of it was written.
	jsErrBatchIncomplete = 10176
)

// APIError is an error answered by JetStream.
type APIError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("jetstream: %s (status %d, code %d)", e.Description, e.Code, e.ErrCode)
}

// classify turns a JetStream API error into the store's typed errors.
func classify(e *APIError) error {
	switch e.ErrCode {
	case jsErrWrongLastSequence, jsErrWrongLastSequenceConstant:
		return fmt.Errorf("%w: %s", ErrConflict, e.Description)
	case jsErrAtomicDuplicateMsgID, jsErrDuplicateInProcess:
		return fmt.Errorf("%w: %s", ErrDuplicate, e.Description)
	}
	if e.Code == 503 {
		return fmt.Errorf("%w: %s", ErrUnavailable, e)
	}
	return e
}
