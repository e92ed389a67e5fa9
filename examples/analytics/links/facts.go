package links

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// fact is what analytics keep of one link event: no login ID, no client
// details, only who, what, when (and into whom, for a merge).
type fact struct {
	Seq         uint64
	EventID     string
	Type        string
	Sub         string
	At          time.Time
	Into        string
	LoginIDType string
}

// The payloads as analytics read them: only the fields they need. The
// envelope is plain JSON, so a consumer in any language does the same. The
// login ID in user.promoted.v1 and user.registered.v1 is deliberately not
// a field here, so it is never even decoded.
type (
	guestCreated struct {
		UserID    string    `json:"user_id"`
		CreatedAt time.Time `json:"created_at"`
	}
	registered struct {
		UserID       string    `json:"user_id"`
		LoginIDType  string    `json:"login_id_type"`
		RegisteredAt time.Time `json:"registered_at"`
	}
	promoted struct {
		UserID      string    `json:"user_id"`
		LoginIDType string    `json:"login_id_type"`
		PromotedAt  time.Time `json:"promoted_at"`
	}
	merged struct {
		GuestID    string    `json:"guest_id"`
		IntoUserID string    `json:"into_user_id"`
		MergedAt   time.Time `json:"merged_at"`
	}
	expired struct {
		UserID    string    `json:"user_id"`
		ExpiredAt time.Time `json:"expired_at"`
	}
)

// linkTypes are the event types the links are made of; every other event on
// a user's subject only moves the checkpoint.
var linkTypes = map[string]bool{
	domain.TypeAnonymousUserCreated: true,
	domain.TypeUserRegistered:       true,
	domain.TypeUserPromoted:         true,
	domain.TypeUserPromotedV1:       true,
	domain.TypeAnonymousUserMerged:  true,
	domain.TypeAnonymousUserExpired: true,
}

// decode reads the fact of a delivered message; ok is false for events that
// are not link events, which are recognised by header without decoding.
func decode(m jetstream.Msg) (f fact, ok bool, err error) {
	if !linkTypes[m.Headers().Get(eventstore.HeaderEventType)] {
		return fact{}, false, nil
	}
	rec, err := eventstore.DecodeMsg(m)
	if err != nil {
		return fact{}, false, err
	}
	f = fact{Seq: rec.Sequence, EventID: rec.ID, Type: rec.Type}
	switch rec.Type {
	case domain.TypeAnonymousUserCreated:
		var d guestCreated
		err = json.Unmarshal(rec.Data, &d)
		f.Sub, f.At = d.UserID, d.CreatedAt
	case domain.TypeUserRegistered:
		var d registered
		err = json.Unmarshal(rec.Data, &d)
		f.Sub, f.At, f.LoginIDType = d.UserID, d.RegisteredAt, d.LoginIDType
	case domain.TypeUserPromoted, domain.TypeUserPromotedV1:
		var d promoted
		err = json.Unmarshal(rec.Data, &d)
		f.Sub, f.At, f.LoginIDType = d.UserID, d.PromotedAt, d.LoginIDType
	case domain.TypeAnonymousUserMerged:
		var d merged
		err = json.Unmarshal(rec.Data, &d)
		f.Sub, f.At, f.Into = d.GuestID, d.MergedAt, d.IntoUserID
		if err == nil && f.Into == "" {
			err = errors.New("no into_user_id")
		}
	case domain.TypeAnonymousUserExpired:
		var d expired
		err = json.Unmarshal(rec.Data, &d)
		f.Sub, f.At = d.UserID, d.ExpiredAt
	default:
		// The header and the envelope disagree.
		return fact{}, false, fmt.Errorf("event at %d: header type %q, envelope type %q", rec.Sequence,
			m.Headers().Get(eventstore.HeaderEventType), rec.Type)
	}
	if err == nil && (f.Sub == "" || f.At.IsZero()) {
		err = errors.New("no user or time")
	}
	if err != nil {
		return fact{}, false, fmt.Errorf("event %s at %d: %w", rec.Type, rec.Sequence, err)
	}
	return f, true, nil
}

// querier is what applying needs of a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// record stores the fact and applies it to the links. A fact already stored
// (its sequence is the key) is not applied again; it reports whether it was
// applied.
func record(ctx context.Context, q querier, f fact) (bool, error) {
	tag, err := q.Exec(ctx, `INSERT INTO analytics_identity_events (seq, event_id, type, sub, at, into_sub, login_id_type)
		VALUES ($1, $2, $3, $4, $5, NULLIF($6, ''), NULLIF($7, '')) ON CONFLICT (seq) DO NOTHING`,
		int64(f.Seq), f.EventID, f.Type, f.Sub, f.At, f.Into, f.LoginIDType)
	if err != nil {
		return false, err
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	return true, link(ctx, q, f)
}

// link applies one fact to the links table. Facts must come in stream order;
// each statement also creates the row if the sub was never seen (a consumer
// that started mid-stream), so nothing is lost.
func link(ctx context.Context, q querier, f fact) error {
	seq := int64(f.Seq)
	var err error
	switch f.Type {
	case domain.TypeAnonymousUserCreated:
		_, err = q.Exec(ctx, `INSERT INTO analytics_identity_links (sub, person_id, kind, created_at, last_seq)
			VALUES ($1, $1, 'guest', $2, $3)
			ON CONFLICT (sub) DO UPDATE SET created_at = EXCLUDED.created_at, last_seq = EXCLUDED.last_seq`, f.Sub, f.At, seq)
	case domain.TypeUserRegistered:
		_, err = q.Exec(ctx, `INSERT INTO analytics_identity_links (sub, person_id, kind, created_at, login_id_type, last_seq)
			VALUES ($1, $1, 'member', $2, $3, $4)
			ON CONFLICT (sub) DO UPDATE SET kind = 'member', created_at = EXCLUDED.created_at,
				login_id_type = EXCLUDED.login_id_type, last_seq = EXCLUDED.last_seq`, f.Sub, f.At, f.LoginIDType, seq)
	case domain.TypeUserPromoted, domain.TypeUserPromotedV1:
		// Same sub before and after: only the time and the kind change.
		_, err = q.Exec(ctx, `INSERT INTO analytics_identity_links (sub, person_id, kind, promoted_at, login_id_type, last_seq)
			VALUES ($1, $1, 'member', $2, $3, $4)
			ON CONFLICT (sub) DO UPDATE SET kind = 'member', promoted_at = EXCLUDED.promoted_at,
				login_id_type = EXCLUDED.login_id_type, last_seq = EXCLUDED.last_seq`, f.Sub, f.At, f.LoginIDType, seq)
	case domain.TypeAnonymousUserExpired:
		_, err = q.Exec(ctx, `INSERT INTO analytics_identity_links (sub, person_id, kind, expired_at, last_seq)
			VALUES ($1, $1, 'guest', $2, $3)
			ON CONFLICT (sub) DO UPDATE SET expired_at = EXCLUDED.expired_at, last_seq = EXCLUDED.last_seq`, f.Sub, f.At, seq)
	case domain.TypeAnonymousUserMerged:
		err = merge(ctx, q, f)
	default:
		err = fmt.Errorf("not a link event: %s", f.Type)
	}
	if err != nil {
		return fmt.Errorf("apply %s at %d: %w", f.Type, f.Seq, err)
	}
	return nil
}

// merge links a guest to the account it was merged into. person_id always
// points at the end of a chain: the guest, and every sub already attributed
// to it (merged into it earlier), move to the target's person. So the order
// of merges along a chain does not matter: X→Y then Y→Z, or Y→Z then X→Y,
// both end with X and Y attributed to Z.
func merge(ctx context.Context, q querier, f fact) error {
	seq := int64(f.Seq)
	// Merge targets are accounts; one not seen yet gets a row of its own.
	if _, err := q.Exec(ctx, `INSERT INTO analytics_identity_links (sub, person_id, kind, last_seq)
		VALUES ($1, $1, 'member', $2) ON CONFLICT (sub) DO NOTHING`, f.Into, seq); err != nil {
		return err
	}
	if _, err := q.Exec(ctx, `INSERT INTO analytics_identity_links (sub, person_id, kind, last_seq)
		VALUES ($1, $1, 'guest', $2) ON CONFLICT (sub) DO NOTHING`, f.Sub, seq); err != nil {
		return err
	}
	var person string
	if err := q.QueryRow(ctx, `SELECT person_id FROM analytics_identity_links WHERE sub = $1`, f.Into).Scan(&person); err != nil {
		return err
	}
	if person == f.Sub {
		// idstream merges only guests into regular users, so this cannot
		// happen; applying it would attribute a person to itself in a loop.
		return fmt.Errorf("merging %s into %s would make a cycle", f.Sub, f.Into)
	}
	if _, err := q.Exec(ctx, `UPDATE analytics_identity_links SET merged_into = $2, merged_at = $3, last_seq = $4
		WHERE sub = $1`, f.Sub, f.Into, f.At, seq); err != nil {
		return err
	}
	_, err := q.Exec(ctx, `UPDATE analytics_identity_links SET person_id = $2, last_seq = $3 WHERE person_id = $1`,
		f.Sub, person, seq)
	return err
}
