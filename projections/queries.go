package projections

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// UserRow is one user as the read model has it.
type UserRow struct {
	ID           string     `json:"sub"`
	IsAnonymous  bool       `json:"is_anonymous"`
	ClientID     string     `json:"client_id"`
	State        string     `json:"state"`
	Disabled     bool       `json:"disabled"`
	CreatedAt    time.Time  `json:"created_at"`
	LastSeenAt   time.Time  `json:"last_seen_at"`
	LastSignInAt *time.Time `json:"last_sign_in_at"`
	PromotedAt   *time.Time `json:"promoted_at"`
	LoginIDType  *string    `json:"login_id_type"`
	LoginID      *string    `json:"login_id"`
	HasKey       bool       `json:"has_anonymous_key"`
	MergedInto   *string    `json:"merged_into"`
	ExpiredAt    *time.Time `json:"expired_at"`
	DisabledAt   *time.Time `json:"disabled_at"`
	DeletedAt    *time.Time `json:"deleted_at"`
	// EmailVerified and PhoneVerified: the user's login ID of that kind is
	// verified (false without one).
	EmailVerified bool `json:"email_verified"`
	PhoneVerified bool `json:"phone_verified"`
}

// userColumns are selected in UserRow's scan order.
const userColumns = `id::text, is_anonymous, client_id, state, disabled, created_at, last_seen_at, last_sign_in_at,
	promoted_at, login_id_type, login_id, has_anonymous_key, merged_into::text, expired_at, disabled_at, deleted_at,
	login_id_type IS NOT DISTINCT FROM 'email' AND login_id_verified_at IS NOT NULL,
	login_id_type IS NOT DISTINCT FROM 'phone' AND login_id_verified_at IS NOT NULL`

func scanUser(row pgx.Row) (UserRow, error) {
	var u UserRow
	err := row.Scan(&u.ID, &u.IsAnonymous, &u.ClientID, &u.State, &u.Disabled, &u.CreatedAt, &u.LastSeenAt, &u.LastSignInAt,
		&u.PromotedAt, &u.LoginIDType, &u.LoginID, &u.HasKey, &u.MergedInto, &u.ExpiredAt, &u.DisabledAt, &u.DeletedAt,
		&u.EmailVerified, &u.PhoneVerified)
	return u, err
}

// UserFilter selects users; zero fields do not filter.
type UserFilter struct {
	IsAnonymous   *bool
	State         string // active, expired, merged, deleted
	Disabled      *bool
	CreatedAfter  time.Time // inclusive
	CreatedBefore time.Time // exclusive
	// LoginIDPrefix matches the start of a (normalised) login ID.
	LoginIDPrefix string
}

// ErrInvalidCursor is a cursor this code did not make.
var ErrInvalidCursor = errors.New("invalid cursor")

// ListUsers returns up to limit users, newest first, after the cursor, and
// the cursor of the next page ("" at the end). Cursors are keyset positions
// (created_at, id), so pages stay stable while users are added.
func ListUsers(ctx context.Context, pool *pgxpool.Pool, f UserFilter, cursor string, limit int) ([]UserRow, string, error) {
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.IsAnonymous != nil {
		where = append(where, "is_anonymous = "+arg(*f.IsAnonymous))
	}
	if f.State != "" {
		where = append(where, "state = "+arg(f.State))
	}
	if f.Disabled != nil {
		where = append(where, "disabled = "+arg(*f.Disabled))
	}
	if !f.CreatedAfter.IsZero() {
		where = append(where, "created_at >= "+arg(f.CreatedAfter))
	}
	if !f.CreatedBefore.IsZero() {
		where = append(where, "created_at < "+arg(f.CreatedBefore))
	}
	if f.LoginIDPrefix != "" {
		where = append(where, "login_id LIKE "+arg(escapeLike(f.LoginIDPrefix)+"%"))
	}
	if cursor != "" {
		at, id, err := decodeCursor(cursor)
		if err != nil {
			return nil, "", err
		}
		where = append(where, fmt.Sprintf("(created_at, id) < (%s, %s)", arg(at), arg(id)))
	}
	q := `SELECT ` + userColumns + ` FROM users`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY created_at DESC, id DESC LIMIT " + arg(limit+1)
	rows, err := pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (UserRow, error) { return scanUser(r) })
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = encodeCursor(last.CreatedAt, last.ID)
	}
	return out, next, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func encodeCursor(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(at.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(c string) (time.Time, string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return time.Time{}, "", ErrInvalidCursor
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	if !ok {
		return time.Time{}, "", ErrInvalidCursor
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", ErrInvalidCursor
	}
	if _, err := uuid.Parse(id); err != nil {
		return time.Time{}, "", ErrInvalidCursor
	}
	return at, id, nil
}

// IdentityRow is one way a user signs in.
type IdentityRow struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	KeyID      *string    `json:"key_id,omitempty"`
	Algorithm  *string    `json:"alg,omitempty"`
	Thumbprint *string    `json:"thumbprint,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// SessionRow is one session as the read model has it.
type SessionRow struct {
	ID              string     `json:"id"`
	ClientID        string     `json:"client_id"`
	Kind            string     `json:"kind"`
	Method          string     `json:"method"`
	StartedAt       time.Time  `json:"started_at"`
	LastActiveAt    time.Time  `json:"last_active_at"`
	LastRefreshedAt *time.Time `json:"last_refreshed_at,omitempty"`
	RefreshCount    int        `json:"refresh_count"`
	IdleTimeout     int64      `json:"idle_timeout_seconds"`
	ExpiresAt       time.Time  `json:"expires_at"`
	RevokedAt       *time.Time `json:"revoked_at,omitempty"`
	RevokeReason    *string    `json:"revoke_reason,omitempty"`
	// What a mobile SDK said of the device and app, when it said it.
	DeviceModel *string `json:"device_model,omitempty"`
	DeviceOS    *string `json:"device_os,omitempty"`
	AppVersion  *string `json:"app_version,omitempty"`
}

// UserDetails is a user with its identities and sessions.
type UserDetails struct {
	UserRow
	Identities []IdentityRow `json:"identities"`
	Sessions   []SessionRow  `json:"sessions"`
}

// ErrNotFound is a row the read model does not have (yet).
var ErrNotFound = errors.New("not found in the read model")

// GetUser reads one user with its identities and sessions (newest first).
func GetUser(ctx context.Context, pool *pgxpool.Pool, id string) (UserDetails, error) {
	var d UserDetails
	u, err := scanUser(pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return d, ErrNotFound
	}
	if err != nil {
		return d, err
	}
	d.UserRow = u
	rows, err := pool.Query(ctx, `SELECT id, type, key_id, alg, thumbprint, created_at, last_used_at
		FROM identities WHERE user_id = $1 ORDER BY created_at, id`, id)
	if err != nil {
		return d, err
	}
	if d.Identities, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (IdentityRow, error) {
		var i IdentityRow
		err := r.Scan(&i.ID, &i.Type, &i.KeyID, &i.Algorithm, &i.Thumbprint, &i.CreatedAt, &i.LastUsedAt)
		return i, err
	}); err != nil {
		return d, err
	}
	rows, err = pool.Query(ctx, `SELECT id::text, client_id, kind, method, started_at, last_active_at, last_refreshed_at,
		refresh_count, idle_timeout_seconds, expires_at, revoked_at, revoke_reason, device_model, device_os, app_version
		FROM sessions WHERE user_id = $1 ORDER BY started_at DESC, id`, id)
	if err != nil {
		return d, err
	}
	d.Sessions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (SessionRow, error) {
		var s SessionRow
		err := r.Scan(&s.ID, &s.ClientID, &s.Kind, &s.Method, &s.StartedAt, &s.LastActiveAt, &s.LastRefreshedAt,
			&s.RefreshCount, &s.IdleTimeout, &s.ExpiresAt, &s.RevokedAt, &s.RevokeReason, &s.DeviceModel, &s.DeviceOS, &s.AppVersion)
		return s, err
	})
	return d, err
}

// LiveSessionIDs lists a user's sessions the read model does not show as
// revoked or past their lifetime.
func LiveSessionIDs(ctx context.Context, pool *pgxpool.Pool, userID string, now time.Time) ([]string, error) {
	rows, err := pool.Query(ctx, `SELECT id::text FROM sessions WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > $2`, userID, now)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// UserFields are the names of UserRow's fields, in export order.
var UserFields = []string{"sub", "is_anonymous", "client_id", "state", "disabled", "created_at", "last_seen_at",
	"last_sign_in_at", "promoted_at", "login_id_type", "login_id", "has_anonymous_key", "merged_into", "expired_at",
	"disabled_at", "deleted_at", "email_verified", "phone_verified"}

// CountUsers counts the users an export will write.
func CountUsers(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var n int64
	err := pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, err
}

// EachUser calls fn for every user, oldest first, streaming (one query, no
// page of rows held in memory). The row is reused between calls.
func EachUser(ctx context.Context, pool *pgxpool.Pool, fn func(*UserRow) error) error {
	rows, err := pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY created_at, id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	var u UserRow
	for rows.Next() {
		if u, err = scanUser(rows); err != nil {
			return err
		}
		if err := fn(&u); err != nil {
			return err
		}
	}
	return rows.Err()
}
