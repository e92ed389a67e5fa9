package app

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// KVActivity keeps cookie-session activity in a JetStream key-value bucket:
// shared by every node, not part of the event log (an event per request would
// swamp it), and expiring on its own.
type KVActivity struct {
	kv jetstream.KeyValue
}

// NewKVActivity opens (or creates) the bucket. Entries live as long as the
// longest idle timeout: older activity cannot keep a session alive anyway.
func NewKVActivity(ctx context.Context, js jetstream.JetStream, replicas int, maxIdle time.Duration) (*KVActivity, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      "idstream_session_activity",
		Description: "last activity of cookie sessions, at most one write per session per minute",
		TTL:         maxIdle,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("app: activity bucket: %w", err)
	}
	return &KVActivity{kv: kv}, nil
}

// Last implements Activity.
func (a *KVActivity) Last(ctx context.Context, sessionID string) (time.Time, error) {
	e, err := a.kv.Get(ctx, sessionID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	ns, err := strconv.ParseInt(string(e.Value()), 10, 64)
	if err != nil {
		return time.Time{}, nil
	}
	return time.Unix(0, ns).UTC(), nil
}

// Touch implements Activity.
func (a *KVActivity) Touch(ctx context.Context, sessionID string, at time.Time) error {
	_, err := a.kv.Put(ctx, sessionID, []byte(strconv.FormatInt(at.UnixNano(), 10)))
	return err
}
