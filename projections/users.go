package projections

import (
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// Users projects the users table.
type Users struct{}

// The inserts name, with the values of their defaults, the columns the
// updates that follow a user's creation set, so that those fold into the
// row when they come in the same batch (see Queue).
var (
	insertGuest = NewInsert("users", "id", "is_anonymous", "client_id", "state", "created_at", "last_seen_at", "version",
		"last_sign_in_at", "has_anonymous_key", "login_id_type", "login_id", "promoted_at",
		"merged_into", "expired_at", "expiry_reason", "disabled", "disabled_at", "deleted_at", "login_id_verified_at")
	insertRegistered = NewInsert("users", "id", "is_anonymous", "client_id", "state", "created_at", "last_seen_at",
		"login_id_type", "login_id", "version", "last_sign_in_at", "login_id_verified_at")

	userKeyChanged = NewUpdate("users", "id", Set("has_anonymous_key"), Set("version"))
	userPromoted   = NewUpdate("users", "id", Set("is_anonymous"), Set("login_id_type"), Set("login_id"), Set("promoted_at"), Set("login_id_verified_at"), Set("version"))
	userVerified   = NewUpdate("users", "id", Set("login_id_verified_at"), Set("version"))
	userSignedIn   = NewUpdate("users", "id", Greatest("last_seen_at"), Set("last_sign_in_at"), Set("version"))
	userSeen       = NewUpdate("users", "id", Greatest("last_seen_at"), Set("version"))
	userExpired    = NewUpdate("users", "id", Set("state"), Set("expired_at"), Set("expiry_reason"), Set("version"))
	userMerged     = NewUpdate("users", "id", Set("state"), Set("merged_into"), Set("version"))
	userDisabled   = NewUpdate("users", "id", Set("disabled"), Set("disabled_at"), Set("version"))
	userDeleted    = NewUpdate("users", "id", Set("state"), Set("deleted_at"), Set("login_id_type"), Set("login_id"), Set("login_id_verified_at"), Set("version"))
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
		q.Insert(insertGuest, e.UserID, true, e.ClientID, "active", e.CreatedAt, e.CreatedAt, seq, nil, false, nil, nil, nil,
			nil, nil, nil, false, nil, nil, nil)
	case domain.AnonymousKeyRegistered:
		q.Update(userKeyChanged, e.UserID, true, seq)
	case domain.AnonymousKeyRemoved:
		q.Update(userKeyChanged, e.UserID, false, seq)
	case domain.UserPromoted:
		// The promotion's login ID starts unverified; a verification in
		// the same append follows. A promotion with an external identity
		// has no login ID (NULL).
		q.Update(userPromoted, e.UserID, false, orNull(e.LoginIDType), orNull(e.LoginID), e.PromotedAt, nil, seq)
	case domain.LoginIDVerified:
		// Only a login ID the user holds is verified (the domain decides).
		q.Update(userVerified, e.UserID, e.VerifiedAt, seq)
	case domain.UserRegistered:
		q.Insert(insertRegistered, e.UserID, false, e.ClientID, "active", e.RegisteredAt, e.RegisteredAt, orNull(e.LoginIDType), orNull(e.LoginID), seq, nil, nil)
	case domain.UserSignedIn:
		q.Update(userSignedIn, e.UserID, e.SignedInAt, e.SignedInAt, seq)
	case domain.AnonymousUserExpired:
		q.Update(userExpired, e.UserID, "expired", e.ExpiredAt, e.Reason, seq)
	case domain.AnonymousUserMerged:
		q.Update(userMerged, e.GuestID, "merged", e.IntoUserID, seq)
	case domain.UserDisabled:
		q.Update(userDisabled, e.UserID, true, e.DisabledAt, seq)
	case domain.UserEnabled:
		q.Update(userDisabled, e.UserID, false, nil, seq)
	case domain.UserDeleted:
		q.Update(userDeleted, e.UserID, "deleted", e.DeletedAt, nil, nil, nil, seq)
	case domain.SessionStarted:
		q.Update(userSignedIn, e.UserID, e.StartedAt, e.StartedAt, seq)
	case domain.SessionRefreshed:
		q.Update(userSeen, e.UserID, e.RefreshedAt, seq)
	}
	return nil
}

// Sessions projects the sessions table.
type Sessions struct{}

var (
	insertSession = NewInsert("sessions", "id", "user_id", "client_id", "kind", "method", "started_at", "last_active_at",
		"idle_timeout_seconds", "expires_at", "version", "last_refreshed_at", "refresh_count", "revoked_at", "revoke_reason",
		"device_model", "device_os", "app_version")
	sessionRefreshed = NewUpdate("sessions", "id", Set("last_active_at"), Set("last_refreshed_at"), Add("refresh_count"), Set("version"))
	sessionRevoked   = NewUpdate("sessions", "id", Set("revoked_at"), Set("revoke_reason"), Set("version"))
)

// Name implements Projector.
func (Sessions) Name() string { return "sessions" }

// Tables implements Projector.
func (Sessions) Tables() []string { return []string{"sessions"} }

// Apply implements Projector.
func (Sessions) Apply(q *Queue, rec eventstore.Record, ev domain.Event) error {
	seq := int64(rec.Sequence)
	switch e := ev.(type) {
	case domain.SessionStarted:
		var d domain.Device
		if e.Device != nil {
			d = *e.Device
		}
		q.Insert(insertSession, e.SessionID, e.UserID, e.ClientID, string(e.Kind), e.Method, e.StartedAt, e.StartedAt,
			int64(e.IdleTimeout), e.StartedAt.Add(e.Lifetime.Duration()), seq, nil, int64(0), nil, nil,
			orNull(d.Model), orNull(d.OS), orNull(d.AppVersion))
	case domain.SessionRefreshed:
		q.Update(sessionRefreshed, e.SessionID, e.RefreshedAt, e.RefreshedAt, int64(1), seq)
	case domain.SessionRevoked:
		q.Update(sessionRevoked, e.SessionID, e.RevokedAt, e.Reason, seq)
	}
	return nil
}

// Identities projects the identities table.
type Identities struct{}

var (
	insertKey = NewInsert("identities", "id", "user_id", "type", "key_id", "alg", "thumbprint", "created_at", "version",
		"last_used_at")
	insertLoginID = NewInsert("identities", "id", "user_id", "type", "created_at", "version")
	keyUsed       = NewUpdate("identities", "id", Greatest("last_used_at"), Set("version"))
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
		q.Insert(insertKey, "anonymous_key:"+e.KeyID, e.UserID, "anonymous_key", e.KeyID, e.Algorithm, e.Thumbprint, e.RegisteredAt, seq, nil)
	case domain.AnonymousKeyRemoved:
		q.ExecOne(`DELETE FROM identities WHERE id = $1`, "anonymous_key:"+e.KeyID)
	case domain.LoginIDClaimed:
		q.Insert(insertLoginID, "login_id:"+e.LoginIDType+":"+e.LoginID, e.UserID, e.LoginIDType, e.ClaimedAt, seq)
	case domain.LoginIDReleased:
		q.ExecOne(`DELETE FROM identities WHERE id = $1`, "login_id:"+e.LoginIDType+":"+e.LoginID)
	case domain.ExternalIdentityClaimed:
		// External identities (issue 19): type "external", id
		// external:<provider>:<subject>.
		q.Insert(insertLoginID, "external:"+e.Provider+":"+e.Subject, e.UserID, "external", e.ClaimedAt, seq)
	case domain.ExternalIdentityReleased:
		q.ExecOne(`DELETE FROM identities WHERE id = $1`, "external:"+e.Provider+":"+e.Subject)
	case domain.SessionStarted:
		if e.KeyID != "" {
			q.Update(keyUsed, "anonymous_key:"+e.KeyID, e.StartedAt, seq)
		}
	}
	return nil
}

// All returns the projections `idstream serve` runs.
func All() []Projector { return []Projector{Users{}, Sessions{}, Identities{}, Funnel{}} }

// orNull is a text value, or NULL when empty.
func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}
