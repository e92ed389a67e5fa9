package projections

import (
	"reflect"
	"testing"
	"time"
)

var (
	testInsert = NewInsert("t", "id", "seen", "n", "note")
	testSeen   = NewUpdate("t", "id", Greatest("seen"), Set("note"))
	testCount  = NewUpdate("t", "id", Add("n"))
	testOther  = NewUpdate("t", "id", Set("other"))
	testByName = NewUpdate("t", "name", Set("note"))
)

func TestUpdateSQL(t *testing.T) {
	want := `UPDATE "t" SET "seen" = greatest("seen", $2), "note" = $3 WHERE "id" = $1`
	if testSeen.sql != want {
		t.Fatalf("got %s, want %s", testSeen.sql, want)
	}
	if want := `UPDATE "t" SET "n" = "n" + $2 WHERE "id" = $1`; testCount.sql != want {
		t.Fatalf("got %s, want %s", testCount.sql, want)
	}
}

// sent is what a queue would send: each statement's SQL and values.
func sent(q *Queue) [][]any {
	var out [][]any
	for _, s := range q.stmts {
		out = append(out, append([]any{s.sql}, s.args...))
	}
	return out
}

func TestQueueFoldsUpdatesIntoTheInsertedRow(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1, t2 := t0.Add(time.Second), t0.Add(2*time.Second)
	q := &Queue{fold: true}
	values := []any{"a", t1, int64(0), nil}
	q.Insert(testInsert, values...)
	q.Insert(testInsert, "b", nil, int64(5), "x")
	q.Update(testSeen, "a", t2, "later")   // greatest(t1, t2) = t2
	q.Update(testSeen, "a", t0, "earlier") // greatest(t2, t0) = t2
	q.Update(testSeen, "a", nil, "null")   // greatest ignores NULL
	q.Update(testCount, "a", int64(2))
	q.Update(testCount, "a", int64(3))
	q.Update(testSeen, "b", t0, nil) // greatest(NULL, t0) = t0
	want := [][]any{
		{testInsert.sql, "a", t2, int64(5), "null"},
		{testInsert.sql, "b", t0, int64(5), nil},
	}
	if got := sent(q); !reflect.DeepEqual(got, want) || q.folded != 6 {
		t.Fatalf("got %v (%d folded), want %v", got, q.folded, want)
	}
	if values[1] != t1 || values[3] != nil {
		t.Fatalf("the caller's values were written to: %v", values)
	}
}

func TestQueueDoesNotFoldWhatItCannot(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(q *Queue, id string) { q.Insert(testInsert, id, t0, int64(0), nil) }
	cases := []struct {
		name  string
		queue func(q *Queue)
		// folded is how many updates were folded; stmts how many
		// statements are sent.
		folded, stmts int
	}{
		{"fast path off", func(q *Queue) { q.fold = false; row(q, "a"); q.Update(testCount, "a", int64(1)) }, 0, 2},
		{"no insert in the batch", func(q *Queue) { q.Update(testCount, "a", int64(1)) }, 0, 1},
		{"another row", func(q *Queue) { row(q, "a"); q.Update(testCount, "b", int64(1)) }, 0, 2},
		{"a column the insert does not name", func(q *Queue) { row(q, "a"); q.Update(testOther, "a", "v") }, 0, 2},
		{"another key column", func(q *Queue) { row(q, "a"); q.Update(testByName, "a", "v") }, 0, 2},
		{"SQL in between", func(q *Queue) {
			row(q, "a")
			q.Exec(`DELETE FROM t WHERE id = $1`, "a")
			q.Update(testCount, "a", int64(1))
		}, 0, 3},
		{"ExecOne in between", func(q *Queue) {
			row(q, "a")
			q.ExecOne(`UPDATE t SET other = 1 WHERE id = $1`, "a")
			q.Update(testCount, "a", int64(1))
		}, 0, 3},
		// Once one update of a row goes as SQL, the later ones follow it.
		{"after an update that did not fold", func(q *Queue) {
			row(q, "a")
			q.Update(testOther, "a", "v")
			q.Update(testCount, "a", int64(1))
		}, 0, 3},
		{"a value it cannot combine", func(q *Queue) { row(q, "a"); q.Update(testSeen, "a", "not a time", nil) }, 0, 2},
		{"an int it cannot add", func(q *Queue) { row(q, "a"); q.Update(testCount, "a", 1) }, 0, 2},
		{"overflow", func(q *Queue) {
			q.Insert(testInsert, "a", t0, int64(1<<62), nil)
			q.Update(testCount, "a", int64(1<<62))
		}, 0, 2},
		{"the key inserted twice", func(q *Queue) { row(q, "a"); row(q, "a"); q.Update(testCount, "a", int64(1)) }, 0, 3},
		{"a key that is not a string", func(q *Queue) {
			q.Insert(testInsert, 7, t0, int64(0), nil)
			q.Update(testCount, 7, int64(1))
		}, 0, 2},
		{"wrong number of values", func(q *Queue) { row(q, "a"); q.Update(testCount, "a", int64(1), int64(2)) }, 0, 2},
		// PostgreSQL's uuid takes other spellings of one key: an update in
		// another spelling goes as SQL, and later ones must follow it.
		{"a UUID spelled otherwise", func(q *Queue) {
			row(q, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
			q.Update(testCount, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", int64(1))
			q.Update(testCount, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", int64(1))
		}, 0, 3},
		{"a UUID without hyphens", func(q *Queue) {
			row(q, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")
			q.Update(testCount, "a0eebc999c0b4ef8bb6d6bb9bd380a11", int64(1))
			q.Update(testCount, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", int64(1))
		}, 0, 3},
		{"an update with a key that is not a string", func(q *Queue) {
			row(q, "a")
			q.Update(testCount, []byte("a"), int64(1))
			q.Update(testCount, "a", int64(1))
		}, 0, 3},
		{"other rows still fold", func(q *Queue) {
			row(q, "a")
			row(q, "b")
			q.Update(testOther, "a", "v")
			q.Update(testCount, "b", int64(1))
		}, 1, 3},
	}
	for _, c := range cases {
		q := &Queue{fold: true}
		c.queue(q)
		if q.folded != c.folded || len(q.stmts) != c.stmts {
			t.Errorf("%s: %d folded, %d statements; want %d and %d: %v", c.name, q.folded, len(q.stmts), c.folded, c.stmts, sent(q))
		}
		for _, s := range q.stmts {
			if s.ins == nil && !s.wantOne && s.sql != `DELETE FROM t WHERE id = $1` {
				t.Errorf("%s: an update not sent as ExecOne: %s", c.name, s.sql)
			}
		}
	}
}

func TestNewUpdateRefusesAColumnTwice(t *testing.T) {
	for _, assign := range [][]Assignment{{Set("n"), Add("n")}, {Set("id")}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewUpdate(%v) did not panic", assign)
				}
			}()
			NewUpdate("t", "id", assign...)
		}()
	}
}
