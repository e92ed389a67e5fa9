package webhooks

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Errors of the endpoint registry; the API maps each to one response.
var (
	ErrNoSuchEndpoint   = errors.New("webhooks: no such endpoint")
	ErrInvalidEndpoint  = errors.New("webhooks: invalid endpoint")
	ErrNoSuchDeadLetter = errors.New("webhooks: no such dead letter")
	ErrConfigEndpoint   = errors.New("webhooks: the endpoint is defined by configuration")
)

// Endpoint states.
const (
	StateEnabled  = "enabled"
	StatePaused   = "paused"
	StateDisabled = "disabled"
)

// Endpoint is a registered receiver. Its secrets are kept apart, in
// secrets, and never serialised.
type Endpoint struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	EventTypes  []string  `json:"event_types"`
	ClientIDs   []string  `json:"client_ids"`
	State       string    `json:"state"`
	StateReason string    `json:"state_reason,omitempty"`
	StartFrom   string    `json:"start_from"`
	CreatedSeq  uint64    `json:"created_seq"`
	Source      string    `json:"source"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// PreviousSecretUntil: while set and in the future, deliveries carry a
	// second signature made with the secret the last rotation replaced.
	PreviousSecretUntil *time.Time `json:"previous_secret_until,omitempty"`

	secrets secrets
}

type secrets struct {
	current, previous string
	previousUntil     time.Time
}

// signingSecrets returns the secrets to sign with at now: the current one
// first, then the previous one while its overlap lasts.
func (e Endpoint) signingSecrets(now time.Time) []string {
	out := []string{e.secrets.current}
	if e.secrets.previous != "" && now.Before(e.secrets.previousUntil) {
		out = append(out, e.secrets.previous)
	}
	return out
}

// Wants reports whether the endpoint takes events of this type and client.
func (e Endpoint) Wants(eventType, clientID string) bool {
	if len(e.ClientIDs) > 0 {
		found := false
		for _, c := range e.ClientIDs {
			found = found || c == clientID
		}
		if !found {
			return false
		}
	}
	return e.wantsType(eventType)
}

func (e Endpoint) wantsType(eventType string) bool {
	for _, p := range e.EventTypes {
		if matchType(p, eventType) {
			return true
		}
	}
	return false
}

// matchType matches an event type against a pattern in which * stands for
// any run of characters (dots included): "user.*", "*.v1", "*". A pattern
// without a version also matches every version: "user.promoted" matches
// "user.promoted.v2".
func matchType(pattern, typ string) bool {
	if glob(pattern, typ) {
		return true
	}
	if i := strings.LastIndex(typ, ".v"); i > 0 {
		return glob(pattern, typ[:i])
	}
	return false
}

func glob(p, s string) bool {
	for len(p) > 0 {
		if p[0] == '*' {
			for len(p) > 0 && p[0] == '*' {
				p = p[1:]
			}
			if p == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if glob(p, s[i:]) {
					return true
				}
			}
			return false
		}
		if s == "" || p[0] != s[0] {
			return false
		}
		p, s = p[1:], s[1:]
	}
	return s == ""
}

// NewSecret makes a Standard Webhooks secret: whsec_ and 32 random bytes in
// base64.
func NewSecret(random io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(random, b); err != nil {
		return "", fmt.Errorf("webhooks: random: %w", err)
	}
	return secretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

const secretPrefix = "whsec_"

func secretKey(secret string) ([]byte, error) {
	if !strings.HasPrefix(secret, secretPrefix) {
		return nil, fmt.Errorf("%w: a secret starts with %s", ErrInvalidEndpoint, secretPrefix)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, secretPrefix))
	if err != nil || len(k) < 24 || len(k) > 64 {
		return nil, fmt.Errorf("%w: a secret is whsec_ and 24 to 64 bytes in base64", ErrInvalidEndpoint)
	}
	return k, nil
}

// Spec is what an operator gives to create or change an endpoint; nil
// fields are left as they are by an update.
type Spec struct {
	URL        *string   `json:"url"`
	EventTypes *[]string `json:"event_types"`
	ClientIDs  *[]string `json:"client_ids"`
	// State: enabled or paused (disabled is set by a 410 Gone, and cleared
	// by setting enabled).
	State *string `json:"state"`
	// StartFrom (create only): "now" (default), "beginning" (backfill the
	// whole log) or an RFC 3339 time.
	StartFrom *string `json:"start_from"`
}

const (
	maxPatterns = 32
	maxClients  = 64
)

func validateSpec(s Spec, creating bool) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidEndpoint, fmt.Sprintf(format, a...))
	}
	if creating && (s.URL == nil || s.EventTypes == nil) {
		return bad("url and event_types are required")
	}
	if s.URL != nil {
		u, err := url.Parse(*s.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" || len(*s.URL) > 2048 {
			return bad("url must be an absolute http(s) URL without credentials or fragment, at most 2048 bytes")
		}
	}
	if s.EventTypes != nil {
		if len(*s.EventTypes) == 0 || len(*s.EventTypes) > maxPatterns {
			return bad("event_types lists 1 to %d patterns", maxPatterns)
		}
		for _, p := range *s.EventTypes {
			if p == "" || len(p) > 100 || strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789._*") != "" {
				return bad("event type pattern %q: lower-case letters, digits, '.', '_' and '*' only", p)
			}
		}
	}
	if s.ClientIDs != nil {
		if len(*s.ClientIDs) > maxClients {
			return bad("client_ids lists at most %d clients", maxClients)
		}
		for _, c := range *s.ClientIDs {
			if c == "" || len(c) > 200 {
				return bad("a client id is 1 to 200 bytes")
			}
		}
	}
	if s.State != nil && *s.State != StateEnabled && *s.State != StatePaused {
		return bad("state is enabled or paused")
	}
	if s.StartFrom != nil {
		if !creating {
			return bad("start_from is set when the endpoint is created")
		}
		if _, err := parseStart(*s.StartFrom); err != nil {
			return err
		}
	}
	return nil
}

// parseStart reads start_from: the zero time for now, a time before 1971
// for the beginning, else the time.
func parseStart(v string) (time.Time, error) {
	switch v {
	case "", "now":
		return time.Time{}, nil
	case "beginning":
		return time.Unix(0, 0).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: start_from is now, beginning or an RFC 3339 time", ErrInvalidEndpoint)
	}
	return t, nil
}

// registry is the endpoints table.
type registry struct{ pool *pgxpool.Pool }

const endpointColumns = `id::text, url, event_types, client_ids, state, state_reason, start_from, created_seq, source,
	secret, coalesce(previous_secret, ''), previous_until, created_at, updated_at`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	var seq int64
	var until *time.Time
	err := row.Scan(&e.ID, &e.URL, &e.EventTypes, &e.ClientIDs, &e.State, &e.StateReason, &e.StartFrom, &seq, &e.Source,
		&e.secrets.current, &e.secrets.previous, &until, &e.CreatedAt, &e.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNoSuchEndpoint
	}
	if err != nil {
		return e, err
	}
	e.CreatedSeq = uint64(seq)
	if until != nil {
		e.secrets.previousUntil = *until
		if e.secrets.previous != "" {
			u := until.UTC()
			e.PreviousSecretUntil = &u
		}
	}
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	return e, nil
}

func (r registry) list(ctx context.Context) ([]Endpoint, error) {
	rows, err := r.pool.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("webhooks: list endpoints: %w", err)
	}
	defer rows.Close()
	var out []Endpoint
	for rows.Next() {
		e, err := scanEndpoint(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

func (r registry) get(ctx context.Context, id string) (Endpoint, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Endpoint{}, ErrNoSuchEndpoint
	}
	return scanEndpoint(r.pool.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, id))
}

func (r registry) insert(ctx context.Context, e Endpoint) error {
	_, err := r.pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, url, event_types, client_ids, state, start_from, created_seq,
		source, secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)`,
		e.ID, e.URL, e.EventTypes, e.ClientIDs, e.State, e.StartFrom, int64(e.CreatedSeq), e.Source, e.secrets.current, e.CreatedAt)
	if err != nil {
		return fmt.Errorf("webhooks: insert endpoint: %w", err)
	}
	return nil
}

// removedFromConfig is the state reason of a configured endpoint the
// configuration file no longer lists (wasPaused added when it was paused).
const (
	removedFromConfig = "no longer in the configuration file"
	wasPaused         = " (was paused)"
)

// upsertConfig writes an endpoint from configuration: its URL, filters
// and secret follow the file; its state and position stay, except that one
// disabled for having left the file is back as it was (enabled or paused)
// when the file lists it again.
func (r registry) upsertConfig(ctx context.Context, e Endpoint) error {
	_, err := r.pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, url, event_types, client_ids, state, start_from, created_seq,
		source, secret, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'config', $8, $9, $9)
		ON CONFLICT (id) DO UPDATE SET url = excluded.url, event_types = excluded.event_types, client_ids = excluded.client_ids,
		source = 'config', secret = excluded.secret,
		state = CASE webhook_endpoints.state_reason WHEN $10 THEN 'enabled' WHEN $10 || $11 THEN 'paused' ELSE webhook_endpoints.state END,
		state_reason = CASE WHEN webhook_endpoints.state_reason IN ($10, $10 || $11) THEN '' ELSE webhook_endpoints.state_reason END,
		updated_at = CASE WHEN (webhook_endpoints.url, webhook_endpoints.event_types, webhook_endpoints.client_ids, webhook_endpoints.secret,
			webhook_endpoints.state_reason IN ($10, $10 || $11))
			IS DISTINCT FROM (excluded.url, excluded.event_types, excluded.client_ids, excluded.secret, false)
			THEN excluded.updated_at ELSE webhook_endpoints.updated_at END`,
		e.ID, e.URL, e.EventTypes, e.ClientIDs, e.State, e.StartFrom, int64(e.CreatedSeq), e.secrets.current, e.CreatedAt, removedFromConfig, wasPaused)
	if err != nil {
		return fmt.Errorf("webhooks: configured endpoint %s: %w", e.ID, err)
	}
	return nil
}

// disableUnlisted disables the configured endpoints whose ids are not in
// keep (those the file no longer lists), enabled or paused (one disabled
// by its receiver's 410 stays as it is), and returns their ids.
func (r registry) disableUnlisted(ctx context.Context, keep []string, now time.Time) ([]string, error) {
	rows, err := r.pool.Query(ctx, `UPDATE webhook_endpoints SET state = 'disabled',
		state_reason = CASE WHEN state = 'paused' THEN $2 || $4 ELSE $2 END, updated_at = $3
		WHERE source = 'config' AND NOT (id::text = ANY($1)) AND state IN ('enabled', 'paused') RETURNING id::text`,
		keep, removedFromConfig, now, wasPaused)
	if err != nil {
		return nil, fmt.Errorf("webhooks: disable endpoints no longer configured: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("webhooks: disable endpoints no longer configured: %w", err)
	}
	return ids, nil
}

func (r registry) update(ctx context.Context, id string, s Spec, now time.Time) (Endpoint, error) {
	reason := (*string)(nil)
	if s.State != nil {
		empty := ""
		reason = &empty
	}
	return scanEndpoint(r.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET url = coalesce($2, url),
		event_types = coalesce($3, event_types), client_ids = coalesce($4, client_ids), state = coalesce($5, state),
		state_reason = coalesce($6, state_reason), updated_at = $7 WHERE id = $1 RETURNING `+endpointColumns,
		id, s.URL, s.EventTypes, s.ClientIDs, s.State, reason, now))
}

func (r registry) setState(ctx context.Context, id, state, reason string, now time.Time) error {
	_, err := r.pool.Exec(ctx, `UPDATE webhook_endpoints SET state = $2, state_reason = $3, updated_at = $4 WHERE id = $1`,
		id, state, reason, now)
	return err
}

func (r registry) rotate(ctx context.Context, id, secret string, until time.Time, now time.Time) (Endpoint, error) {
	return scanEndpoint(r.pool.QueryRow(ctx, `UPDATE webhook_endpoints SET previous_secret = secret, previous_until = $3,
		secret = $2, updated_at = $4 WHERE id = $1 AND source = 'api' RETURNING `+endpointColumns, id, secret, until, now))
}

func (r registry) delete(ctx context.Context, id string) error {
	tag, err := r.pool.Exec(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrNoSuchEndpoint
	}
	return nil
}

// Counters are an endpoint's delivery statistics.
type Counters struct {
	Delivered        int64       `json:"delivered"`
	Failed           int64       `json:"failed"`
	DeadLettered     int64       `json:"dead_lettered"`
	Circuit          string      `json:"circuit"`
	LastErrors       []LastError `json:"last_errors"`
	LastDeliveredAt  *time.Time  `json:"last_delivered_at,omitempty"`
	LastDeliveredSeq uint64      `json:"last_delivered_seq"`
}

// LastError is one failed attempt.
type LastError struct {
	At       time.Time `json:"at"`
	Sequence uint64    `json:"seq"`
	Error    string    `json:"error"`
}

const keptErrors = 10

func (r registry) counters(ctx context.Context, id string) (Counters, error) {
	var c Counters
	var raw []byte
	var seq int64
	err := r.pool.QueryRow(ctx, `SELECT delivered, failed, dead_lettered, circuit, last_errors, last_delivered_at, last_delivered_seq
		FROM webhook_endpoints WHERE id = $1`, id).Scan(&c.Delivered, &c.Failed, &c.DeadLettered, &c.Circuit, &raw, &c.LastDeliveredAt, &seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrNoSuchEndpoint
	}
	if err != nil {
		return c, err
	}
	c.LastDeliveredSeq = uint64(seq)
	_ = json.Unmarshal(raw, &c.LastErrors)
	if c.LastErrors == nil {
		c.LastErrors = []LastError{}
	}
	return c, nil
}

// flushCounters adds the deltas and sets the rest.
func (r registry) flushCounters(ctx context.Context, id string, delivered, failed, dead int64, circuit string, errs []LastError,
	lastAt *time.Time, lastSeq uint64) error {
	raw, _ := json.Marshal(errs)
	_, err := r.pool.Exec(ctx, `UPDATE webhook_endpoints SET delivered = delivered + $2, failed = failed + $3,
		dead_lettered = dead_lettered + $4, circuit = $5,
		last_errors = CASE WHEN jsonb_array_length($6::jsonb) = 0 THEN last_errors
			ELSE (SELECT coalesce(jsonb_agg(x), '[]') FROM (SELECT x FROM jsonb_array_elements($6::jsonb || last_errors) x LIMIT $9) s) END,
		last_delivered_at = coalesce($7, last_delivered_at), last_delivered_seq = greatest(last_delivered_seq, $8)
		WHERE id = $1`, id, delivered, failed, dead, circuit, raw, lastAt, int64(lastSeq), keptErrors)
	return err
}

// signWith is the HMAC-SHA256 of msg under key.
func signWith(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}
