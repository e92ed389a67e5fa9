package testenv

import (
	"context"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ReadModelTables are the tables projections write.
var ReadModelTables = []string{"users", "sessions", "identities", "funnel_guests"}

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

// SameDump fails the test unless two dumps (want: the expected read models,
// e.g. a fresh replay's) are equal, naming the first differing row.
func SameDump(t testing.TB, what string, want, got map[string][]string) {
	t.Helper()
	if reflect.DeepEqual(want, got) {
		return
	}
	for table := range want {
		if len(want[table]) != len(got[table]) {
			t.Fatalf("%s: %s has %d rows, want %d", what, table, len(got[table]), len(want[table]))
		}
		for i := range want[table] {
			if want[table][i] != got[table][i] {
				t.Fatalf("%s: %s row %d differs:\nwant %s\ngot  %s", what, table, i, want[table][i], got[table][i])
			}
		}
	}
	t.Fatalf("%s: dumps differ", what)
}
