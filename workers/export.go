package workers

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/projections"
)

// Export formats.
const (
	FormatNDJSON = "ndjson"
	FormatCSV    = "csv"
)

// Export errors, mapped to HTTP answers by the API.
var (
	ErrExportInProgress = errors.New("another export is pending or running")
	ErrExportNotFound   = errors.New("no such export job")
	ErrExportNotReady   = errors.New("the export is not completed or has expired")
	ErrExportFormat     = errors.New("format is ndjson or csv")
	ErrExportField      = errors.New("unknown export field")
)

// CheckExport validates a format and its CSV fields; no fields means all.
func CheckExport(format string, fields []string) ([]string, error) {
	if format != FormatNDJSON && format != FormatCSV {
		return nil, ErrExportFormat
	}
	if len(fields) == 0 {
		return projections.UserFields, nil
	}
	for i, f := range fields {
		if !slices.Contains(projections.UserFields, f) {
			return nil, fmt.Errorf("%w: %q", ErrExportField, f)
		}
		if slices.Contains(fields[:i], f) {
			return nil, fmt.Errorf("%w: %q twice", ErrExportField, f)
		}
	}
	return fields, nil
}

// WriteUsers writes every user to w as NDJSON (every field) or CSV (the
// fields, with a header row), calling progress(done) every 10,000 users. It
// returns how many users it wrote.
func WriteUsers(ctx context.Context, pool *pgxpool.Pool, w io.Writer, format string, fields []string, progress func(done int64)) (int64, error) {
	fields, err := CheckExport(format, fields)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	csvOut := format == FormatCSV
	var record []string
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	if csvOut {
		if err := writeCSVRecord(bw, fields); err != nil {
			return 0, err
		}
		record = make([]string, len(fields))
	}
	var n int64
	err = projections.EachUser(ctx, pool, func(u *projections.UserRow) error {
		if csvOut {
			for i, f := range fields {
				record[i] = csvCell(csvValue(u, f))
			}
			if err := writeCSVRecord(bw, record); err != nil {
				return err
			}
		} else if err := enc.Encode(u); err != nil {
			return err
		}
		n++
		if progress != nil && n%10000 == 0 {
			progress(n)
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	if progress != nil {
		progress(n)
	}
	return n, bw.Flush()
}

// csvCell neutralises a cell a spreadsheet would evaluate as a formula
// (OWASP's CSV injection advice): one that begins with =, +, -, @, tab or
// carriage return gets a leading single quote, which spreadsheets show as
// text. Login IDs are chosen by users (an E.164 phone number always begins
// with +), so any of them may. NDJSON is data, not formulas: unchanged.
func csvCell(v string) string {
	if v != "" && strings.IndexByte("=+-@\t\r", v[0]) >= 0 {
		return "'" + v
	}
	return v
}

// writeCSVRecord writes one RFC 4180 row ending in \n. A cell is quoted when
// it holds a comma, quote, line break or tab, begins with a space, or
// begins with a quote (every neutralised cell), so that what follows the
// neutralising quote stays inside that cell even for a reader that splits
// on tabs; quotes inside are doubled.
func writeCSVRecord(w *bufio.Writer, record []string) error {
	for i, v := range record {
		if i > 0 {
			_ = w.WriteByte(',')
		}
		if v == "" || (!strings.ContainsAny(v, ",\"\r\n\t") && v[0] != ' ' && v[0] != '\'') {
			_, _ = w.WriteString(v)
			continue
		}
		_ = w.WriteByte('"')
		_, _ = w.WriteString(strings.ReplaceAll(v, `"`, `""`))
		_ = w.WriteByte('"')
	}
	return w.WriteByte('\n')
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func csvString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func csvValue(u *projections.UserRow, field string) string {
	switch field {
	case "sub":
		return u.ID
	case "is_anonymous":
		return strconv.FormatBool(u.IsAnonymous)
	case "client_id":
		return u.ClientID
	case "state":
		return u.State
	case "disabled":
		return strconv.FormatBool(u.Disabled)
	case "created_at":
		return csvTime(&u.CreatedAt)
	case "last_seen_at":
		return csvTime(&u.LastSeenAt)
	case "last_sign_in_at":
		return csvTime(u.LastSignInAt)
	case "promoted_at":
		return csvTime(u.PromotedAt)
	case "login_id_type":
		return csvString(u.LoginIDType)
	case "login_id":
		return csvString(u.LoginID)
	case "has_anonymous_key":
		return strconv.FormatBool(u.HasKey)
	case "merged_into":
		return csvString(u.MergedInto)
	case "expired_at":
		return csvTime(u.ExpiredAt)
	case "disabled_at":
		return csvTime(u.DisabledAt)
	case "deleted_at":
		return csvTime(u.DeletedAt)
	case "email_verified":
		return strconv.FormatBool(u.EmailVerified)
	case "phone_verified":
		return strconv.FormatBool(u.PhoneVerified)
	}
	return ""
}

// ExportJob is one user export.
type ExportJob struct {
	ID         string     `json:"id"`
	Format     string     `json:"format"`
	Fields     []string   `json:"fields"`
	Status     string     `json:"status"`
	Total      *int64     `json:"total,omitempty"`
	Done       int64      `json:"done"`
	Progress   float64    `json:"progress"`
	Bytes      *int64     `json:"bytes,omitempty"`
	Error      *string    `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"created_at"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"`
	ExpiresAt  time.Time  `json:"expires_at"`
}

// ExportConfig paces export jobs.
type ExportConfig struct {
	// Retention is how long a job and its file are kept (24 hours).
	Retention time.Duration
	// Poll is how often the lease holder looks for new jobs, and how often
	// a standby node tries to take the lease.
	Poll time.Duration
	// Replicas of the object store bucket.
	Replicas int
}

// Exports runs user export jobs, one at a time across all nodes (a lease),
// and keeps their files in a JetStream object store bucket that deletes them
// after the retention period.
type Exports struct {
	pool    *pgxpool.Pool
	objects jetstream.ObjectStore
	clock   clock.Clock
	log     *slog.Logger
	cfg     ExportConfig
}

// ExportBucket is the object store bucket of export files.
const ExportBucket = "idstream_exports"

const exportLock = 7230030

// NewExports opens (or creates) the export bucket.
func NewExports(ctx context.Context, pool *pgxpool.Pool, js jetstream.JetStream, clk clock.Clock, log *slog.Logger, cfg ExportConfig) (*Exports, error) {
	if pool == nil || js == nil || clk == nil || log == nil {
		return nil, errors.New("workers: pool, JetStream, clock and logger are required")
	}
	if cfg.Retention <= 0 || cfg.Poll <= 0 {
		return nil, errors.New("workers: export retention and poll must be positive")
	}
	objects, err := js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: ExportBucket, Description: "idstream user export files", TTL: cfg.Retention,
		Storage: jetstream.FileStorage, Replicas: max(cfg.Replicas, 1), Compression: true,
	})
	if err != nil {
		return nil, fmt.Errorf("export bucket: %w", err)
	}
	return &Exports{pool: pool, objects: objects, clock: clk, log: log, cfg: cfg}, nil
}

const jobColumns = `id::text, format, fields, status, total, done, bytes, error, created_at, started_at, finished_at, expires_at`

func scanJob(row pgx.Row) (ExportJob, error) {
	var j ExportJob
	err := row.Scan(&j.ID, &j.Format, &j.Fields, &j.Status, &j.Total, &j.Done, &j.Bytes, &j.Error, &j.CreatedAt,
		&j.StartedAt, &j.FinishedAt, &j.ExpiresAt)
	if err == nil && j.Total != nil {
		j.Progress = 1
		if *j.Total > 0 {
			j.Progress = float64(j.Done) / float64(*j.Total)
		}
	}
	return j, err
}

// Create queues a job. Only one job may be pending or running.
func (e *Exports) Create(ctx context.Context, format string, fields []string) (ExportJob, error) {
	fields, err := CheckExport(format, fields)
	if err != nil {
		return ExportJob{}, err
	}
	now := e.clock.Now().UTC()
	j, err := scanJob(e.pool.QueryRow(ctx, `INSERT INTO export_jobs (id, format, fields, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+jobColumns, uuid.New(), format, fields, now, now.Add(e.cfg.Retention)))
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return ExportJob{}, ErrExportInProgress
	}
	return j, err
}

// Get reads a job; an expired job is gone.
func (e *Exports) Get(ctx context.Context, id string) (ExportJob, error) {
	if _, err := uuid.Parse(id); err != nil {
		return ExportJob{}, ErrExportNotFound
	}
	j, err := scanJob(e.pool.QueryRow(ctx, `SELECT `+jobColumns+` FROM export_jobs WHERE id = $1 AND expires_at > $2`, id, e.clock.Now()))
	if errors.Is(err, pgx.ErrNoRows) {
		return ExportJob{}, ErrExportNotFound
	}
	return j, err
}

// Open returns a completed job's file.
func (e *Exports) Open(ctx context.Context, id string) (ExportJob, io.ReadCloser, error) {
	j, err := e.Get(ctx, id)
	if err != nil {
		return j, nil, err
	}
	if j.Status != "completed" {
		return j, nil, ErrExportNotReady
	}
	obj, err := e.objects.Get(ctx, j.ID)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return j, nil, ErrExportNotReady
	}
	if err != nil {
		return j, nil, err
	}
	return j, obj, nil
}

// Run takes the export lease and runs queued jobs until ctx ends.
func (e *Exports) Run(ctx context.Context) {
	for ctx.Err() == nil {
		lease := projections.Lease{Pool: e.pool, Key: exportLock, Poll: e.cfg.Poll, Check: e.cfg.Poll}
		err := lease.Hold(ctx, func(ctx context.Context) error {
			for ctx.Err() == nil {
				ran, err := e.RunNext(ctx)
				if err != nil && ctx.Err() == nil {
					e.log.Warn("export job failed", "error", err)
				}
				if !ran {
					clock.Sleep(ctx, e.cfg.Poll)
				}
			}
			return nil
		})
		if err != nil && ctx.Err() == nil {
			e.log.Warn("export worker lost its lease or database; retrying", "error", err)
			clock.Sleep(ctx, e.cfg.Poll)
		}
	}
}

// RunNext deletes expired jobs, then runs the oldest queued job, if any. A
// job left running by a node that died is run again from the start. Callers
// hold the export lease (Run) or know no worker runs (tests, tools).
func (e *Exports) RunNext(ctx context.Context) (bool, error) {
	if err := e.deleteExpired(ctx); err != nil {
		return false, err
	}
	now := e.clock.Now().UTC()
	j, err := scanJob(e.pool.QueryRow(ctx, `UPDATE export_jobs SET status = 'running', started_at = $1, done = 0, total = NULL
		WHERE id = (SELECT id FROM export_jobs WHERE status IN ('pending', 'running') ORDER BY created_at LIMIT 1)
		RETURNING `+jobColumns, now))
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	e.log.Info("export job started", "export_id", j.ID, "format", j.Format)
	size, runErr := e.run(ctx, j)
	if ctx.Err() != nil {
		return true, ctx.Err() // left running: the next lease holder runs it again
	}
	end := e.clock.Now().UTC()
	if runErr != nil {
		_ = e.objects.Delete(context.WithoutCancel(ctx), j.ID)
		_, err = e.pool.Exec(ctx, `UPDATE export_jobs SET status = 'failed', error = $2, finished_at = $3 WHERE id = $1`,
			j.ID, runErr.Error(), end)
		return true, errors.Join(runErr, err)
	}
	_, err = e.pool.Exec(ctx, `UPDATE export_jobs SET status = 'completed', bytes = $2, done = total, finished_at = $3 WHERE id = $1`,
		j.ID, size, end)
	e.log.Info("export job completed", "export_id", j.ID, "bytes", size, "seconds", end.Sub(now).Seconds())
	return true, err
}

// run writes the job's file into the object store, recording progress
// about once a second.
func (e *Exports) run(ctx context.Context, j ExportJob) (int64, error) {
	total, err := projections.CountUsers(ctx, e.pool)
	if err != nil {
		return 0, err
	}
	if _, err := e.pool.Exec(ctx, `UPDATE export_jobs SET total = $2 WHERE id = $1`, j.ID, total); err != nil {
		return 0, err
	}
	var done atomic.Int64
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				_, _ = e.pool.Exec(ctx, `UPDATE export_jobs SET done = $2 WHERE id = $1`, j.ID, min(done.Load(), total))
			}
		}
	}()
	pr, pw := io.Pipe()
	go func() {
		_, err := WriteUsers(ctx, e.pool, pw, j.Format, j.Fields, func(n int64) { done.Store(n) })
		pw.CloseWithError(err)
	}()
	info, err := e.objects.Put(ctx, jetstream.ObjectMeta{Name: j.ID, Description: "user export " + j.Format}, pr)
	_ = pr.CloseWithError(err)
	if err != nil {
		return 0, err
	}
	return int64(info.Size), nil
}

// deleteExpired removes jobs past their retention, and their files (the
// bucket's TTL removes files too; this keeps both in step).
func (e *Exports) deleteExpired(ctx context.Context) error {
	rows, err := e.pool.Query(ctx, `DELETE FROM export_jobs WHERE expires_at <= $1 RETURNING id::text`, e.clock.Now())
	if err != nil {
		return err
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := e.objects.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
			return err
		}
	}
	return nil
}

// Recent lists the newest jobs that have not expired, at most n.
func (e *Exports) Recent(ctx context.Context, n int) ([]ExportJob, error) {
	rows, err := e.pool.Query(ctx, `SELECT `+jobColumns+` FROM export_jobs WHERE expires_at > $1
		ORDER BY created_at DESC LIMIT $2`, e.clock.Now(), n)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (ExportJob, error) { return scanJob(r) })
}
