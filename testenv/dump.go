package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReadModelTables are the tables projections write.
var ReadModelTables = []string{"users", "sessions", "identities"}

// Dump returns every row of the tables as JSON text, ordered by id, to
// compare two databases' read models.
func Dump(t testing.TB, pool *pgxpool.Pool, tables ...string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, table := range tables {
		rows, err := pool.Query(context.Background(), `SELECT row_to_json(x)::text FROM `+pgx.Identifier{table}.Sanitize()+` x ORDER BY id`)
		if err != nil {
			t.Fatal(err)
		}
		out[table], err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
