package projections

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Reads are the read-model queries the HTTP layer makes, over the pool, so
// that it holds no database handle of its own.
type Reads struct{ Pool *pgxpool.Pool }

// Statuses is Statuses on the pool.
func (r Reads) Statuses(ctx context.Context, log Reader, now time.Time) ([]Status, error) {
	return Statuses(ctx, r.Pool, log, now)
}

// ListUsers is ListUsers on the pool.
func (r Reads) ListUsers(ctx context.Context, f UserFilter, cursor string, limit int) ([]UserRow, string, error) {
	return ListUsers(ctx, r.Pool, f, cursor, limit)
}

// GetUser is GetUser on the pool.
func (r Reads) GetUser(ctx context.Context, id string) (UserDetails, error) {
	return GetUser(ctx, r.Pool, id)
}

// LiveSessionIDs is LiveSessionIDs on the pool.
func (r Reads) LiveSessionIDs(ctx context.Context, userID string, now time.Time) ([]string, error) {
	return LiveSessionIDs(ctx, r.Pool, userID, now)
}

// SessionIDs lists every session of a user the read model has.
func (r Reads) SessionIDs(ctx context.Context, userID string) ([]string, error) {
	rows, err := r.Pool.Query(ctx, `SELECT id::text FROM sessions WHERE user_id = $1`, userID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// Checkpoint is a projection's position and state.
type Checkpoint struct {
	Name     string
	Position uint64
	State    string
}

// Checkpoints lists every projection's checkpoint, by name.
func (r Reads) Checkpoints(ctx context.Context) ([]Checkpoint, error) {
	rows, err := r.Pool.Query(ctx, `SELECT name, position, state FROM projection_checkpoints ORDER BY name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Checkpoint, error) {
		var c Checkpoint
		var pos int64
		err := row.Scan(&c.Name, &pos, &c.State)
		c.Position = uint64(pos)
		return c, err
	})
}

// Ping checks that PostgreSQL answers.
func (r Reads) Ping(ctx context.Context) error { return r.Pool.Ping(ctx) }

// PortalSessions are the operators' portal sessions (table portal_sessions),
// kept by the hash of their token; the CSRF token is bound to the session.
type PortalSessions struct{ Pool *pgxpool.Pool }

// ErrNoPortalSession: no live session has the token.
var ErrNoPortalSession = errors.New("no such portal session")

// Find returns the operator, CSRF token and operator credential
// fingerprint (nil for a session from before they were kept) of a live
// session.
func (p PortalSessions) Find(ctx context.Context, tokenHash []byte, now time.Time) (operator, csrf string, credential []byte, err error) {
	err = p.Pool.QueryRow(ctx, `SELECT operator, csrf_token, credential FROM portal_sessions WHERE token_hash = $1 AND expires_at > $2`,
		tokenHash, now).Scan(&operator, &csrf, &credential)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", nil, ErrNoPortalSession
	}
	return operator, csrf, credential, err
}

// Create stores a new session bound to the operator's credential
// fingerprint, and clears expired ones now and then.
func (p PortalSessions) Create(ctx context.Context, tokenHash []byte, operator, csrf string, credential []byte, now, expires time.Time) error {
	if _, err := p.Pool.Exec(ctx, `INSERT INTO portal_sessions (token_hash, operator, csrf_token, credential, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, tokenHash, operator, csrf, credential, now, expires); err != nil {
		return err
	}
	_, _ = p.Pool.Exec(ctx, `DELETE FROM portal_sessions WHERE expires_at < $1`, now)
	return nil
}

// Delete ends a session.
func (p PortalSessions) Delete(ctx context.Context, tokenHash []byte) error {
	_, err := p.Pool.Exec(ctx, `DELETE FROM portal_sessions WHERE token_hash = $1`, tokenHash)
	return err
}
