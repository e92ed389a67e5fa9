package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/eventstore"
)

// Kinds of single-use codes.
const (
	CodePromotion     = "promotion"
	CodeAuthorization = "authz"
	CodeFlow          = "flow"
	// CodeChallenge is a key-pair challenge (purpose anonymous_request).
	CodeChallenge = "challenge"
)

// ErrCodeNotFound means the code is unknown, expired or spent.
var ErrCodeNotFound = errors.New("code not found")

// CodeEntry is what a code stands for. Only a hash of the code is a key.
type CodeEntry struct {
	Kind      string    `json:"kind"`
	UserID    string    `json:"user_id,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
	// Authorization codes and hosted-page flows.
	RedirectURI   string `json:"redirect_uri,omitempty"`
	CodeChallenge string `json:"code_challenge,omitempty"`
	ResponseType  string `json:"response_type,omitempty"`
	State         string `json:"state,omitempty"`
	Scope         string `json:"scope,omitempty"`
	PromotionCode string `json:"promotion_code,omitempty"`
	CSRF          string `json:"csrf,omitempty"`
	Binding       string `json:"binding,omitempty"`
	// Used marks a spent authorization code; IssuedSession is what it gave,
	// revoked if the code is presented again.
	Used          bool   `json:"used,omitempty"`
	IssuedSession string `json:"issued_session,omitempty"`
	// Promotion is what an authorization code of a hosted promotion writes
	// when it is exchanged.
	Promotion *PendingPromotion `json:"promotion,omitempty"`
}

// Codes stores single-use codes where every node sees them.
type Codes interface {
	Put(ctx context.Context, code string, e CodeEntry) error
	Get(ctx context.Context, code string) (CodeEntry, uint64, error)
	// Update replaces the entry if it is still at revision rev.
	Update(ctx context.Context, code string, e CodeEntry, rev uint64) error
	// Delete removes the entry if it is still at revision rev.
	Delete(ctx context.Context, code string, rev uint64) error
}

// ErrCodeChanged means a conditional update or delete lost a race.
var ErrCodeChanged = errors.New("code changed concurrently")

// KVCodes keeps codes in a JetStream key-value bucket. Memory storage: codes
// live minutes, and losing the unused ones in a crash only makes people start
// again, while a file bucket would cost an fsync per write (measured: key-pair
// re-logins went from 656/s to 854/s when challenges left file storage).
//
// With replicas, a get may be answered by a replica that has not yet got a
// code written a moment ago (a challenge answered by one request and used by
// the next): a miss is asked again of the stream leader. Measured on three
// servers at R3 before this: 3-4 % of key-pair sign-ins failed with
// InvalidChallenge.
type KVCodes struct {
	kv     jetstream.KeyValue
	nc     *nats.Conn // set when replicated
	stream string
}

// NewKVCodes opens (or creates) the bucket.
func NewKVCodes(ctx context.Context, js jetstream.JetStream, replicas int) (*KVCodes, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      "idstream_codes",
		Description: "challenges, promotion codes, authorization codes and hosted-page flows, by hash",
		TTL:         time.Hour,
		Storage:     jetstream.MemoryStorage,
		Replicas:    replicas,
		History:     1,
	})
	if err != nil {
		return nil, fmt.Errorf("app: code bucket: %w", err)
	}
	c := &KVCodes{kv: kv, stream: "KV_idstream_codes"}
	if replicas > 1 {
		c.nc = js.Conn()
	}
	return c, nil
}

// leaderGet reads a key's last entry from the bucket's stream leader (the
// JetStream API, not direct get); ok is false when there is none or it is a
// delete or purge marker.
func (c *KVCodes) leaderGet(ctx context.Context, key string) (value []byte, rev uint64, ok bool, err error) {
	m, found, err := eventstore.LeaderGet(ctx, c.nc, c.stream, eventstore.MsgGetRequest{LastFor: "$KV.idstream_codes." + key})
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

func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// Put implements Codes.
func (c *KVCodes) Put(ctx context.Context, code string, e CodeEntry) error {
	raw, _ := json.Marshal(e)
	if _, err := c.kv.Create(ctx, codeKey(code), raw); err != nil {
		return fmt.Errorf("%w: %v", eventstore.ErrUnavailable, err)
	}
	return nil
}

// Get implements Codes.
func (c *KVCodes) Get(ctx context.Context, code string) (CodeEntry, uint64, error) {
	if code == "" || len(code) > 256 {
		return CodeEntry{}, 0, ErrCodeNotFound
	}
	key := codeKey(code)
	e, err := c.kv.Get(ctx, key)
	var (
		value []byte
		rev   uint64
	)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) && c.nc != nil:
		// Perhaps a lagging replica answered: ask the leader.
		var ok bool
		if value, rev, ok, err = c.leaderGet(ctx, key); err != nil {
			return CodeEntry{}, 0, fmt.Errorf("%w: %v", eventstore.ErrUnavailable, err)
		} else if !ok {
			return CodeEntry{}, 0, ErrCodeNotFound
		}
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return CodeEntry{}, 0, ErrCodeNotFound
	case err != nil:
		return CodeEntry{}, 0, fmt.Errorf("%w: %v", eventstore.ErrUnavailable, err)
	default:
		value, rev = e.Value(), e.Revision()
	}
	var ce CodeEntry
	if err := json.Unmarshal(value, &ce); err != nil {
		return CodeEntry{}, 0, ErrCodeNotFound
	}
	return ce, rev, nil
}

func casError(err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return ErrCodeChanged
	}
	return fmt.Errorf("%w: %v", eventstore.ErrUnavailable, err)
}

// Update implements Codes.
func (c *KVCodes) Update(ctx context.Context, code string, e CodeEntry, rev uint64) error {
	raw, _ := json.Marshal(e)
	if _, err := c.kv.Update(ctx, codeKey(code), raw, rev); err != nil {
		return casError(err)
	}
	return nil
}

// Delete implements Codes.
func (c *KVCodes) Delete(ctx context.Context, code string, rev uint64) error {
	if err := c.kv.Delete(ctx, codeKey(code), jetstream.LastRevision(rev)); err != nil {
		return casError(err)
	}
	return nil
}

// NewCode makes a random code of 256 bits.
func (s *Service) NewCode() (string, error) { return s.newCode() }

// Now is the service's clock.
func (s *Service) Now() time.Time { return s.clock.Now() }

// PutCode stores a code entry (hosted-page flows).
func (s *Service) PutCode(ctx context.Context, code string, e CodeEntry) error {
	return s.codes.Put(ctx, code, e)
}

// Flow returns a live hosted-page flow.
func (s *Service) Flow(ctx context.Context, id string) (CodeEntry, error) {
	e, _, err := s.codes.Get(ctx, id)
	if err == nil && (e.Kind != CodeFlow || !s.clock.Now().Before(e.ExpiresAt)) {
		err = ErrCodeNotFound
	}
	return e, err
}

// DeleteCode removes a code entry whatever its revision.
func (s *Service) DeleteCode(ctx context.Context, code string) {
	if _, rev, err := s.codes.Get(ctx, code); err == nil {
		_ = s.codes.Delete(ctx, code, rev)
	}
}

// newCode makes a random code of 256 bits.
func (s *Service) newCode() (string, error) {
	var raw [32]byte
	if _, err := io.ReadFull(s.random, raw[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}
