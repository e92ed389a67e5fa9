package webhooks

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// Payload is the body of every delivery: one event of the log, in an
// envelope analytics can rely on.
type Payload struct {
	// ID is the event's id: the idempotency key, and the webhook-id.
	ID string `json:"id"`
	// Seq is the event's position in the log.
	Seq  uint64 `json:"seq"`
	Type string `json:"type"`
	// AuthgearType is Authgear's name for the event, where it has one.
	AuthgearType string    `json:"authgear_type,omitempty"`
	OccurredAt   time.Time `json:"occurred_at"`
	// Sub is the user the event is about (empty for settings).
	Sub      string `json:"sub,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	// IsAnonymous is whether the user was a guest once the event happened.
	IsAnonymous bool   `json:"is_anonymous"`
	Actor       string `json:"actor,omitempty"`
	// Backfill: the event was in the log before the endpoint was made.
	Backfill bool `json:"backfill,omitempty"`
	// AnonymousUser and User are set on promotion and merge: the guest and
	// the account it became or was merged into.
	AnonymousUser *UserRef `json:"anonymous_user,omitempty"`
	User          *UserRef `json:"user,omitempty"`
	// Tombstone marks a deletion: the user is gone, and data is empty.
	Tombstone bool `json:"tombstone,omitempty"`
	// Redacted: the user was deleted before this delivery was made (a
	// backfill, a retry, a replay), so the event goes out without its data
	// (login IDs, addresses, device details): the envelope only.
	Redacted bool            `json:"redacted,omitempty"`
	Data     json.RawMessage `json:"data"`
}

// UserRef names a user in a promotion or merge.
type UserRef struct {
	Sub string `json:"sub"`
}

// authgearTypes are Authgear's non-blocking event names for the events
// that have one.
var authgearTypes = map[string]string{
	domain.TypeAnonymousUserCreated: "user.created",
	domain.TypeUserRegistered:       "user.created",
	domain.TypeUserPromoted:         "user.anonymous.promoted",
	domain.TypeUserPromotedV1:       "user.anonymous.promoted",
	domain.TypeUserSignedIn:         "user.authenticated",
	domain.TypeUserDisabled:         "user.disabled",
	domain.TypeUserEnabled:          "user.reenabled",
	domain.TypeUserDeleted:          "user.deleted",
}

// credentialFields hold hashes of credentials: the log keeps them, a
// delivery never carries them (not even redacted: they are removed).
var credentialFields = []string{"password_hash", "token_hash", "previous_token_hash"}

func withoutCredentials(data json.RawMessage) (json.RawMessage, map[string]any, error) {
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, nil, fmt.Errorf("webhooks: event data is not an object: %w", err)
	}
	for _, f := range credentialFields {
		delete(m, f)
	}
	out, err := json.Marshal(m)
	return out, m, err
}

// userLoader reads a user's events, to know its state at an event.
type userLoader interface {
	Load(ctx context.Context, subject string) ([]eventstore.Record, uint64, error)
	Subject(kind, id string) string
}

// userStates remembers, per event, the user's state the payload needs, so
// that endpoints taking the same event at about the same time read the
// user's history once. It is bounded (when full it starts again), and an
// entry serves for userStateTTL only: a deletion since is seen by every
// payload built later than that.
type userStates struct {
	mu sync.Mutex
	m  map[uint64]userState
	// deleted are users whose deletion this node has seen in the log (any
	// runner's reader passes every event): a delivery of theirs is
	// redacted when it is sent, whenever its body was built.
	deleted map[string]bool
}

// maxDeleted bounds the deleted set; past it, it starts again (a payload
// built later still reads the deletion from the log).
const maxDeleted = 65536

func (c *userStates) markDeleted(sub string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.deleted == nil || len(c.deleted) >= maxDeleted {
		c.deleted = make(map[string]bool)
	}
	c.deleted[sub] = true
}

func (c *userStates) isDeleted(sub string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deleted[sub]
}

type userState struct {
	anonymous bool
	clientID  string
	// deleted: the log held the user's deletion when this was read.
	deleted bool
	read    time.Time
}

const (
	maxUserStates = 16384
	userStateTTL  = time.Second
)

func (c *userStates) get(ctx context.Context, users userLoader, sub string, seq uint64) (userState, error) {
	if c != nil {
		c.mu.Lock()
		st, ok := c.m[seq]
		c.mu.Unlock()
		if ok && time.Since(st.read) < userStateTTL {
			return st, nil
		}
	}
	u, deleted, err := userAt(ctx, users, sub, seq)
	if err != nil {
		return userState{}, err
	}
	if deleted && c != nil {
		c.markDeleted(sub)
	}
	st := userState{anonymous: u.IsAnonymous(), clientID: u.ClientID(), deleted: deleted, read: time.Now()}
	if c != nil {
		c.mu.Lock()
		if c.m == nil || len(c.m) >= maxUserStates {
			c.m = make(map[uint64]userState, 1024)
		}
		c.m[seq] = st
		c.mu.Unlock()
	}
	return st, nil
}

// buildPayload makes the delivery body of a record; createdSeq is the log's
// last sequence when the endpoint was made.
func buildPayload(ctx context.Context, users userLoader, states *userStates, rec eventstore.Record, createdSeq uint64) (Payload, error) {
	data, fields, err := withoutCredentials(rec.Data)
	if err != nil {
		return Payload{}, err
	}
	p := Payload{ID: rec.ID, Seq: rec.Sequence, Type: rec.Type, AuthgearType: authgearTypes[rec.Type],
		OccurredAt: rec.OccurredAt.UTC(), Actor: rec.Actor, Backfill: rec.Sequence <= createdSeq, Data: data}
	str := func(k string) string { s, _ := fields[k].(string); return s }
	p.Sub = str("user_id")
	switch rec.Type {
	case domain.TypeAnonymousUserMerged:
		p.Sub = str("guest_id")
		p.AnonymousUser, p.User = &UserRef{Sub: str("guest_id")}, &UserRef{Sub: str("into_user_id")}
	case domain.TypeUserPromoted, domain.TypeUserPromotedV1:
		// A promotion keeps the guest's sub: the guest is the user now.
		p.AnonymousUser, p.User = &UserRef{Sub: p.Sub}, &UserRef{Sub: p.Sub}
	case domain.TypeUserDeleted:
		p.Tombstone = true
		p.Data = json.RawMessage(`{}`)
	}
	if p.Sub == "" && strings.HasPrefix(rec.Subject, users.Subject("user", "")) {
		p.Sub = strings.TrimPrefix(rec.Subject, users.Subject("user", ""))
	}
	p.ClientID = str("client_id")
	if p.Sub != "" {
		u, err := states.get(ctx, users, p.Sub, rec.Sequence)
		if err != nil {
			return Payload{}, err
		}
		p.IsAnonymous = u.anonymous
		if p.ClientID == "" {
			p.ClientID = u.clientID
		}
		if (u.deleted || states.isDeleted(p.Sub)) && !p.Tombstone {
			p.Redacted, p.Data = true, json.RawMessage(`{}`)
		}
	}
	return p, nil
}

// redactedBody is a delivery body as it goes out once its user is deleted:
// the envelope, data {} (unchanged for a tombstone or a body already
// redacted).
func redactedBody(body []byte) ([]byte, error) {
	var p Payload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("webhooks: delivery body: %w", err)
	}
	if p.Tombstone || p.Redacted {
		return body, nil
	}
	p.Redacted, p.Data = true, json.RawMessage(`{}`)
	return json.Marshal(p)
}

// userAt folds the user's events up to and including seq, and reports
// whether the log holds the user's deletion (at any position).
func userAt(ctx context.Context, users userLoader, sub string, seq uint64) (domain.User, bool, error) {
	recs, _, err := users.Load(ctx, users.Subject("user", sub))
	if err != nil {
		return domain.User{}, false, fmt.Errorf("webhooks: load user: %w", err)
	}
	var u domain.User
	deleted := false
	for _, r := range recs {
		if r.Type == domain.TypeUserDeleted {
			deleted = true
		}
		if r.Sequence > seq {
			continue
		}
		ev, err := domain.DecodeEvent(r.Type, r.Data)
		if err != nil {
			return domain.User{}, false, fmt.Errorf("webhooks: user event %d: %w", r.Sequence, err)
		}
		u = domain.FoldUser(u, ev)
	}
	return u, deleted, nil
}
