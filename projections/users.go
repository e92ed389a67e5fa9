package projections

import (
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// Users projects the users table.
type Users struct{}

var (
	insertGuest      = NewInsert("users", "id", "is_anonymous", "client_id", "state", "created_at", "last_seen_at", "version")
	insertRegistered = NewInsert("users", "id", "is_anonymous", "client_id", "state", "created_at", "last_seen_at",
		"login_id_type", "login_id", "version")
)

// Name implements Projector.
func (Users) Name() string { return "users" }

// Tables implements Projector.
func (Users) Tables() []string { return []string{"users"} }

// Apply implements Projector.
func (Users) Apply(q *Queue, rec eventstore.Record, ev domain.Event) error {
	seq := int64(rec.Sequence)
	switch e := ev.(type) {
	case domain.AnonymousUserCreated:
		q.Insert(insertGuest, e.UserID, true, e.ClientID, "active", e.CreatedAt, e.CreatedAt, seq)
	case domain.AnonymousKeyRegistered:
		q.ExecOne(`UPDATE users SET has_anonymous_key = true, version = $2 WHERE id = $1`, e.UserID, seq)
	case domain.AnonymousKeyRemoved:
		q.ExecOne(`UPDATE users SET has_anonymous_key = false, version = $2 WHERE id = $1`, e.UserID, seq)
	case domain.UserPromoted:
		q.ExecOne(`UPDATE users SET is_anonymous = false, login_id_type = $2, login_id = $3, promoted_at = $4, version = $5 WHERE id = $1`,
			e.UserID, e.LoginIDType, e.LoginID, e.PromotedAt, seq)
	case domain.UserRegistered:
		q.Insert(insertRegistered, e.UserID, false, e.ClientID, "active", e.RegisteredAt, e.RegisteredAt, e.LoginIDType, e.LoginID, seq)
	case domain.UserSignedIn:
		q.ExecOne(`UPDATE users SET last_seen_at = greatest(last_seen_at, $2), last_sign_in_at = $2, version = $3 WHERE id = $1`,
			e.UserID, e.SignedInAt, seq)
	case domain.AnonymousUserExpired:
		q.ExecOne(`UPDATE users SET state = 'expired', expired_at = $2, expiry_reason = $3, version = $4 WHERE id = $1`,
			e.UserID, e.ExpiredAt, e.Reason, seq)
	case domain.AnonymousUserMerged:
		q.ExecOne(`UPDATE users SET state = 'merged', merged_into = $2, version = $3 WHERE id = $1`, e.GuestID, e.IntoUserID, seq)
	case domain.UserDisabled:
		q.ExecOne(`UPDATE users SET disabled = true, disabled_at = $2, version = $3 WHERE id = $1`, e.UserID, e.DisabledAt, seq)
	case domain.UserEnabled:
		q.ExecOne(`UPDATE users SET disabled = false, disabled_at = NULL, version = $2 WHERE id = $1`, e.UserID, seq)
	case domain.UserDeleted:
		q.ExecOne(`UPDATE users SET state = 'deleted', deleted_at = $2, login_id_type = NULL, login_id = NULL, version = $3 WHERE id = $1`,
			e.UserID, e.DeletedAt, seq)
	case domain.SessionStarted:
		q.ExecOne(`UPDATE users SET last_seen_at = greatest(last_seen_at, $2), last_sign_in_at = $2, version = $3 WHERE id = $1`,
			e.UserID, e.StartedAt, seq)
	case domain.SessionRefreshed:
		q.ExecOne(`UPDATE users SET last_seen_at = greatest(last_seen_at, $2), version = $3 WHERE id = $1`,
			e.UserID, e.RefreshedAt, seq)
	}
	return nil
}

// Sessions projects the sessions table.
type Sessions struct{}

var insertSession = NewInsert("sessions", "id", "user_id", "client_id", "kind", "method", "started_at", "last_active_at",
	"idle_timeout_seconds", "expires_at", "version")

// Name implements Projector.
func (Sessions) Name() string { return "sessions" }

// Tables implements Projector.
func (Sessions) Tables() []string { return []string{"sessions"} }

// Apply implements Projector.
func (Sessions) Apply(q *Queue, rec eventstore.Record, ev domain.Event) error {
	seq := int64(rec.Sequence)
	switch e := ev.(type) {
	case domain.SessionStarted:
		q.Insert(insertSession, e.SessionID, e.UserID, e.ClientID, string(e.Kind), e.Method, e.StartedAt, e.StartedAt,
			int64(e.IdleTimeout), e.StartedAt.Add(e.Lifetime.Duration()), seq)
	case domain.SessionRefreshed:
		q.ExecOne(`UPDATE sessions SET last_active_at = $2, last_refreshed_at = $2, refresh_count = refresh_count + 1, version = $3
			WHERE id = $1`, e.SessionID, e.RefreshedAt, seq)
	case domain.SessionRevoked:
		q.ExecOne(`UPDATE sessions SET revoked_at = $2, revoke_reason = $3, version = $4 WHERE id = $1`,
			e.SessionID, e.RevokedAt, e.Reason, seq)
	}
	return nil
}

// Identities projects the identities table.
type Identities struct{}

var (
	insertKey     = NewInsert("identities", "id", "user_id", "type", "key_id", "alg", "thumbprint", "created_at", "version")
	insertLoginID = NewInsert("identities", "id", "user_id", "type", "created_at", "version")
)

// Name implements Projector.
func (Identities) Name() string { return "identities" }

// Tables implements Projector.
func (Identities) Tables() []string { return []string{"identities"} }

// Apply implements Projector.
func (Identities) Apply(q *Queue, rec eventstore.Record, ev domain.Event) error {
	seq := int64(rec.Sequence)
	switch e := ev.(type) {
	case domain.AnonymousKeyRegistered:
		q.Insert(insertKey, "anonymous_key:"+e.KeyID, e.UserID, "anonymous_key", e.KeyID, e.Algorithm, e.Thumbprint, e.RegisteredAt, seq)
	case domain.AnonymousKeyRemoved:
		q.ExecOne(`DELETE FROM identities WHERE id = $1`, "anonymous_key:"+e.KeyID)
	case domain.LoginIDClaimed:
		q.Insert(insertLoginID, "login_id:"+e.LoginIDType+":"+e.LoginID, e.UserID, e.LoginIDType, e.ClaimedAt, seq)
	case domain.LoginIDReleased:
		q.ExecOne(`DELETE FROM identities WHERE id = $1`, "login_id:"+e.LoginIDType+":"+e.LoginID)
	case domain.SessionStarted:
		if e.KeyID != "" {
			q.ExecOne(`UPDATE identities SET last_used_at = greatest(last_used_at, $2), version = $3 WHERE id = $1`,
				"anonymous_key:"+e.KeyID, e.StartedAt, seq)
		}
	}
	return nil
}

// All returns the projections `idstream serve` runs.
func All() []Projector { return []Projector{Users{}, Sessions{}, Identities{}} }
