package projections

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/app"
)

// ClientSecrets keeps the confidential clients' secret hashes in
// PostgreSQL (app.ClientSecrets).
type ClientSecrets struct{ Pool *pgxpool.Pool }

var _ app.ClientSecrets = ClientSecrets{}

// List returns a client's secrets, newest first, expired ones included.
func (c ClientSecrets) List(ctx context.Context, clientID string) ([]app.ClientSecret, error) {
	rows, err := c.Pool.Query(ctx, `SELECT secret_id, client_id, hash, created_at, created_by, expires_at
		FROM client_secrets WHERE client_id = $1 ORDER BY created_at DESC, secret_id`, clientID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (app.ClientSecret, error) {
		var s app.ClientSecret
		err := r.Scan(&s.SecretID, &s.ClientID, &s.Hash, &s.CreatedAt, &s.CreatedBy, &s.ExpiresAt)
		return s, err
	})
}

// Rotate adds a secret and makes every other live secret of the client
// expire at retireAt (if it would live longer), in one transaction; the
// client's rows are locked so that two rotations queue.
func (c ClientSecrets) Rotate(ctx context.Context, s app.ClientSecret, retireAt time.Time) error {
	return pgx.BeginFunc(ctx, c.Pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('client_secrets:' || $1))`, s.ClientID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE client_secrets SET expires_at = $2
			WHERE client_id = $1 AND (expires_at IS NULL OR expires_at > $2)`, s.ClientID, retireAt); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO client_secrets (secret_id, client_id, hash, created_at, created_by)
			VALUES ($1, $2, $3, $4, $5)`, s.SecretID, s.ClientID, s.Hash, s.CreatedAt, s.CreatedBy)
		return err
	})
}

// Expire makes a secret stop working at the time (if it would live
// longer); it reports whether the client has the secret.
func (c ClientSecrets) Expire(ctx context.Context, clientID, secretID string, at time.Time) (bool, error) {
	tag, err := c.Pool.Exec(ctx, `UPDATE client_secrets SET expires_at = LEAST(COALESCE(expires_at, $3), $3)
		WHERE client_id = $1 AND secret_id = $2`, clientID, secretID, at)
	return tag.RowsAffected() == 1, err
}
