package eventstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors of the key-value stores.
var (
	// ErrNoValue: the key is unknown, expired or spent.
	ErrNoValue = errors.New("eventstore: no such value")
	// ErrValueChanged: a conditional update or delete lost a race.
	ErrValueChanged = errors.New("eventstore: value changed concurrently")
)

// SecretValues keeps short-lived values under secret keys (codes,
// challenges, flow ids) in a memory-backed JetStream key-value bucket, keyed
// by the key's SHA-256, so the bucket never holds a key in clear. Memory
// storage: the values live minutes, and losing the unused ones in a crash
// only makes people start again, while a file bucket would cost an fsync per
// write (measured: key-pair re-logins went from 656/s to 854/s when
// challenges left file storage). Updates and deletes are conditional on the
// revision read, so a value is spent once across nodes.
//
// With replicas, a get may be answered by a replica that has not yet got a
// value written a moment ago (a challenge answered by one request and used
// by the next): a miss is asked again of the stream leader. Measured on
// three servers at R3 before this: 3-4 % of key-pair sign-ins failed with
// InvalidChallenge.
type SecretValues struct {
	kv     jetstream.KeyValue
	nc     *nats.Conn // set when replicated
	bucket string
	stream jetstream.Stream
	js     jetstream.JetStream
	// sweepQueue holds the delete markers to purge, taken by up to
	// maxSweepers workers (sweepers of them running, each until idle for a
	// second).
	sweepQueue chan marker
	sweepers   atomic.Int32
}

// sweepQueueSize bounds the spent keys waiting for their sweep (past it a
// key's marker is left to the bucket's TTL); maxSweepers the purges in
// flight.
const (
	sweepQueueSize = 1 << 14
	maxSweepers    = 4
)

// KVOptions name and size a key-value bucket.
type KVOptions struct {
	Bucket, Description string
	TTL                 time.Duration
	Replicas            int
	// MaxValueSize bounds one value in bytes (0: the server's limit).
	MaxValueSize int32
}

// OpenSecretValues opens (or creates) the bucket.
func OpenSecretValues(ctx context.Context, js jetstream.JetStream, o KVOptions) (*SecretValues, error) {
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: o.Bucket, Description: o.Description, TTL: o.TTL,
		Storage: jetstream.MemoryStorage, Replicas: o.Replicas, History: 1, MaxValueSize: o.MaxValueSize})
	if err != nil {
		return nil, err
	}
	stream, err := js.Stream(ctx, "KV_"+o.Bucket)
	if err != nil {
		return nil, fmt.Errorf("eventstore: bucket %s: %w", o.Bucket, err)
	}
	v := &SecretValues{kv: kv, js: js, bucket: o.Bucket, stream: stream, sweepQueue: make(chan marker, sweepQueueSize)}
	if o.Replicas > 1 {
		v.nc = js.Conn()
	}
	return v, nil
}

func hashedKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Put stores a value under a new key; a key that holds a value already
// is ErrValueChanged (create-only: of two puts of one key, one wins).
//
// A create over a delete marker expects the marker's revision, which the
// marker's sweep (Delete) may remove in between: the create is then tried
// again while the key still holds no value.
func (v *SecretValues) Put(ctx context.Context, key string, value []byte) error {
	k := hashedKey(key)
	for attempt := 0; ; attempt++ {
		_, err := v.kv.Create(ctx, k, value)
		if err == nil {
			return nil
		}
		// A lost race: the key exists, or (on a replicated bucket, 10164)
		// the marker the create expected was swept meanwhile.
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(casError(err), ErrValueChanged) {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if _, gerr := v.kv.Get(ctx, k); attempt == 3 || !(errors.Is(gerr, jetstream.ErrKeyNotFound) || errors.Is(gerr, jetstream.ErrKeyDeleted)) {
			return ErrValueChanged
		}
	}
}

// Get returns a key's value and revision, or ErrNoValue.
func (v *SecretValues) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	if key == "" || len(key) > 256 {
		return nil, 0, ErrNoValue
	}
	k := hashedKey(key)
	e, err := v.kv.Get(ctx, k)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) && v.nc != nil:
		// Perhaps a lagging replica answered: ask the leader.
		value, rev, ok, err := v.leaderGet(ctx, k)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if !ok {
			return nil, 0, ErrNoValue
		}
		return value, rev, nil
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return nil, 0, ErrNoValue
	case err != nil:
		return nil, 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return e.Value(), e.Revision(), nil
}

// leaderGet reads a key's last entry from the bucket's stream leader (the
// JetStream API, not direct get); ok is false when there is none or it is a
// delete or purge marker.
func (v *SecretValues) leaderGet(ctx context.Context, key string) (value []byte, rev uint64, ok bool, err error) {
	m, found, err := LeaderGet(ctx, v.nc, "KV_"+v.bucket, MsgGetRequest{LastFor: "$KV." + v.bucket + "." + key})
	if err != nil || !found {
		return nil, 0, false, err
	}
	if len(m.Header) > 0 {
		h, err := nats.DecodeHeadersMsg(m.Header)
		if err != nil {
			return nil, 0, false, err
		}
		if op := h.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
			return nil, 0, false, nil
		}
	}
	return m.Data, m.Sequence, true, nil
}

func casError(err error) error {
	var apiErr *jetstream.APIError
	// 10164 is what a replicated stream answers while another write of the
	// subject is in flight: a race lost too.
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return ErrValueChanged
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

// ErrSpent: Spend found the key already spent.
var ErrSpent = errors.New("eventstore: already spent")

// Spend records a key as used, once across every node: the first Spend of a
// key succeeds, every later one (until the bucket's TTL forgets it) gets
// ErrSpent. Single-use identifiers (DPoP proofs' jti) use it.
func (v *SecretValues) Spend(ctx context.Context, key string) error {
	if key == "" {
		return ErrSpent
	}
	if _, err := v.kv.Create(ctx, hashedKey(key), nil); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrSpent
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// Update replaces the value if it is still at revision rev.
func (v *SecretValues) Update(ctx context.Context, key string, value []byte, rev uint64) error {
	if _, err := v.kv.Update(ctx, hashedKey(key), value, rev); err != nil {
		return casError(err)
	}
	return nil
}

// Delete removes the value if it is still at revision rev: a delete marker
// conditioned on that revision, which decides between racing uses. The
// marker would then stay as long as the bucket's TTL (an hour for codes:
// every key-pair sign-in spends a challenge), so the key's subject is
// purged right after, in the background, up to the marker and no further
// (a value put under the key since, as a new one-time code for the same
// login ID is, stays). A marker whose sweep does not happen (too many
// queued, NATS busy) stays until the TTL. A purged key reads as unknown, as
// a deleted one does.
func (v *SecretValues) Delete(ctx context.Context, key string, rev uint64) error {
	m := nats.NewMsg("$KV." + v.bucket + "." + hashedKey(key))
	m.Header.Set("KV-Operation", "DEL")
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(rev, 10))
	ack, err := v.js.PublishMsg(ctx, m)
	if err != nil {
		return casError(err)
	}
	v.queueSweep(marker{subject: m.Subject, seq: ack.Sequence})
	return nil
}

// marker is a delete marker written: its subject and sequence.
type marker struct {
	subject string
	seq     uint64
}

func (v *SecretValues) queueSweep(m marker) {
	select {
	case v.sweepQueue <- m:
	default:
		sweeps.WithLabelValues(v.bucket, "skipped").Inc()
		return
	}
	// A worker that is just leaving may leave this marker to the next one
	// started: a later Delete's, or the check it makes on its way out.
	if n := v.sweepers.Load(); n < maxSweepers && v.sweepers.CompareAndSwap(n, n+1) {
		go v.sweepLoop()
	}
}

// sweepLoop purges queued keys until the queue has been empty for a second.
func (v *SecretValues) sweepLoop() {
	idle := time.NewTimer(time.Second)
	defer idle.Stop()
	for {
		select {
		case m := <-v.sweepQueue:
			v.sweep(m)
			idle.Reset(time.Second)
			continue
		case <-idle.C:
		}
		select {
		case m := <-v.sweepQueue: // queued as the timer fired
			v.sweep(m)
			idle.Reset(time.Second)
			continue
		default:
		}
		v.sweepers.Add(-1)
		if len(v.sweepQueue) == 0 || !v.sweepers.CompareAndSwap(0, 1) {
			return
		}
		idle.Reset(time.Second) // a key came as every worker was leaving
	}
}

// sweep purges a marker's subject up to and including the marker.
func (v *SecretValues) sweep(m marker) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	outcome := "ok"
	if err := v.stream.Purge(ctx, jetstream.WithPurgeSubject(m.subject), jetstream.WithPurgeSequence(m.seq+1)); err != nil {
		outcome = "failed"
	}
	sweeps.WithLabelValues(v.bucket, outcome).Inc()
}

// LastSeen keeps one time per key (cookie-session activity) in a file-backed
// JetStream key-value bucket: shared by every node, not part of the event
// log (an event per request would swamp it), and expiring on its own.
type LastSeen struct {
	kv jetstream.KeyValue
}

// OpenLastSeen opens (or creates) the bucket; entries live o.TTL.
func OpenLastSeen(ctx context.Context, js jetstream.JetStream, o KVOptions) (*LastSeen, error) {
	kv, err := openBucket(ctx, js, jetstream.KeyValueConfig{Bucket: o.Bucket, Description: o.Description, TTL: o.TTL,
		Storage: jetstream.FileStorage, Replicas: o.Replicas, History: 1})
	if err != nil {
		return nil, err
	}
	return &LastSeen{kv: kv}, nil
}

// errMessageTTLsOn is nats-server's refusal to turn a stream's per-message
// TTLs off ("message TTL status can not be disabled").
const errMessageTTLsOn = 10052

// openBucket creates the bucket or brings it to cfg. A bucket a later
// release opened with per-message TTLs, which the server never lets be
// turned off, is opened as it is: this release's entries live the
// bucket's TTL either way, so that release can be rolled back to this one
// (and this one's nodes restart during its rollout).
func openBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	var api *jetstream.APIError
	if errors.As(err, &api) && api.ErrorCode == errMessageTTLsOn {
		kv, err = js.KeyValue(ctx, cfg.Bucket)
	}
	if err != nil {
		return nil, fmt.Errorf("eventstore: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Last returns the key's time, zero when it has none.
func (l *LastSeen) Last(ctx context.Context, key string) (time.Time, error) {
	e, err := l.kv.Get(ctx, key)
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

// Touch records the key's time.
func (l *LastSeen) Touch(ctx context.Context, key string, at time.Time) error {
	_, err := l.kv.Put(ctx, key, []byte(strconv.FormatInt(at.UnixNano(), 10)))
	return err
}
