package workers_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/clock"

	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/workers"
)

// BenchmarkWriteUsers exports a read model of 1M users (rows generated in
// SQL, half of them promoted) in both formats. Run it with
//
//	go test ./workers -run ^$ -bench WriteUsers -benchtime 1x
func BenchmarkWriteUsers(b *testing.B) {
	pool := millionUsers(b)
	ctx := context.Background()
	for _, format := range []string{workers.FormatCSV, workers.FormatNDJSON} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				cw := &countWriter{}
				got, err := workers.WriteUsers(ctx, pool, cw, format, nil, nil)
				if err != nil || got != n {
					b.Fatalf("%d users, %v", got, err)
				}
				b.ReportMetric(float64(cw.n)/float64(n), "bytes/user")
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

// BenchmarkExportJob runs whole export jobs of 1M users: read model to the
// JetStream object store (compressed, file storage), as the workers do.
//
//	go test ./workers -run ^$ -bench ExportJob -benchtime 1x
func BenchmarkExportJob(b *testing.B) {
	pool := millionUsers(b)
	ctx := context.Background()
	nc := testenv.StartNATS(b).Connect(b)
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	ex, err := workers.NewExports(ctx, pool, js, clock.System{}, slog.New(slog.DiscardHandler),
		workers.ExportConfig{Retention: 24 * time.Hour, Poll: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	for _, format := range []string{workers.FormatCSV, workers.FormatNDJSON} {
		b.Run(format, func(b *testing.B) {
			for b.Loop() {
				j, err := ex.Create(ctx, format, nil)
				if err != nil {
					b.Fatal(err)
				}
				if ran, err := ex.RunNext(ctx); !ran || err != nil {
					b.Fatal(ran, err)
				}
				if j, err = ex.Get(ctx, j.ID); err != nil || j.Status != "completed" || j.Done != n {
					b.Fatalf("%+v %v", j, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "users/s")
		})
	}
}

const n = 1_000_000

func millionUsers(b *testing.B) *pgxpool.Pool {
	_, pool := testenv.Database(b)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `INSERT INTO users (id, is_anonymous, client_id, state, created_at, last_seen_at, version,
			login_id_type, login_id, promoted_at)
		SELECT gen_random_uuid(), i % 2 = 0, 'idstream-dev', 'active', now() - i * interval '1 second', now(), i,
			CASE WHEN i % 2 = 1 THEN 'email' END, CASE WHEN i % 2 = 1 THEN 'user' || i || '@example.com' END,
			CASE WHEN i % 2 = 1 THEN now() END
		FROM generate_series(1, $1) AS i`, n); err != nil {
		b.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `VACUUM ANALYZE users`); err != nil {
		b.Fatal(err)
	}
	return pool
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countWriter)(nil)
