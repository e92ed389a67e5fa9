package projections

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Queue collects the statements of a batch, sent to PostgreSQL in as few
// round trips as can be inside the batch's transaction.
//
// In a batch applied the fast way (see applyTx), an update queued with
// Update is folded into the row of an insert queued earlier in the same
// batch when it can be: the row is sent once, with the update's assignments
// already made to its values, instead of an INSERT followed by an UPDATE of
// the row just inserted. Both are the same statements' effect; the fold is
// worked out from the Update's description, not from SQL. An update is
// folded only when nothing queued between the insert and it could have read
// or changed the row (any Exec or ExecOne, or an update whose key might be
// the row's without being spelled the same, ends folding), and when every
// column it assigns is one the insert names. Constraints are checked once,
// on the folded row: an insert's value that an update replaces is never
// sent, so projectors insert constants (or values also kept in another
// column) in the columns their updates set. If a batch with a folded row
// fails, it is applied again without folding, so that the event at fault is
// named exactly.
type Queue struct {
	stmts []stmt
	// fold is set when updates may be folded into inserted rows; pending
	// are the rows they may be folded into, by table and canonical key.
	fold    bool
	pending map[rowKey]pendingRow
	folded  int
}

// pendingRow is an inserted row updates may fold into: its statement, and
// its key as the insert spelled it.
type pendingRow struct {
	stmt int
	key  string
}

type stmt struct {
	sql     string
	args    []any
	wantOne bool
	rec     int
	// ins is set for a row queued with Insert.
	ins *Insert
	// owned is set once args is the queue's own copy (made on the first
	// fold: the caller's values are not written to).
	owned bool
}

type rowKey struct{ table, key string }

// canonicalKey is the key as a map key: a UUID in its canonical spelling
// (PostgreSQL's uuid equates upper and lower case, braces, no hyphens), any
// other string as it is. Two keys with one canonical form may still be two
// rows (text keys that differ in case): folding needs the exact spelling as
// well, and a key that is only canonically equal ends the row's folding.
func canonicalKey(table, key string) rowKey {
	if len(key) >= 32 {
		if u, err := uuid.Parse(key); err == nil {
			return rowKey{table, u.String()}
		}
	}
	return rowKey{table, key}
}

// Exec queues a statement.
func (q *Queue) Exec(sql string, args ...any) {
	q.opaque()
	q.stmts = append(q.stmts, stmt{sql: sql, args: args})
}

// ExecOne queues a statement that must change exactly one row; any other
// count means the read model disagrees with the log, and the projection stops.
func (q *Queue) ExecOne(sql string, args ...any) {
	q.opaque()
	q.stmts = append(q.stmts, stmt{sql: sql, args: args, wantOne: true})
}

// opaque ends the folding of every row: a statement in SQL may read or
// change any of them.
func (q *Queue) opaque() {
	if len(q.pending) > 0 {
		clear(q.pending)
	}
}

// Insert is the insertion of rows into one table, naming the columns given;
// the first is the row's key. It is one INSERT statement per row; a run of
// consecutive rows queued with the same Insert may instead be sent with
// COPY, which stores the same rows (defaults, constraints and triggers apply
// alike) at a fraction of the cost. Build it once (a package variable) and
// queue rows with Queue.Insert.
//
// Updates are folded only into columns the insert names: an Insert that
// names the columns its table's later updates set (with the values the
// columns' defaults would give) lets them fold.
type Insert struct {
	table   string
	columns []string
	sql     string
}

// NewInsert describes inserts into table (unqualified, so that a replay's
// search path finds its shadow) of the named columns, the row's key first.
func NewInsert(table string, columns ...string) *Insert {
	params := make([]string, len(columns))
	cols := make([]string, len(columns))
	for i, c := range columns {
		params[i] = fmt.Sprintf("$%d", i+1)
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	return &Insert{table: table, columns: columns,
		sql: `INSERT INTO ` + pgx.Identifier{table}.Sanitize() + ` (` + strings.Join(cols, ", ") + `) VALUES (` + strings.Join(params, ", ") + `)`}
}

// Insert queues the insertion of one row: the values of ins's columns, in
// order. It is Exec of a plain INSERT, whatever way it is sent.
func (q *Queue) Insert(ins *Insert, values ...any) {
	if q.fold && len(values) > 0 {
		if key, ok := values[0].(string); ok {
			k := canonicalKey(ins.table, key)
			if _, dup := q.pending[k]; dup {
				// A second insert of the key fails anyway (or is another
				// spelling of a text key): fold into neither.
				delete(q.pending, k)
			} else {
				if q.pending == nil {
					q.pending = make(map[rowKey]pendingRow)
				}
				q.pending[k] = pendingRow{len(q.stmts), key}
			}
		}
	}
	q.stmts = append(q.stmts, stmt{sql: ins.sql, args: values, ins: ins})
}

// Assignment kinds of an Update.
const (
	assignSet      = iota // column = value
	assignGreatest        // column = greatest(column, value)
	assignAdd             // column = column + value
)

// An Assignment is one column an Update sets, from one value.
type Assignment struct {
	column string
	kind   int
}

// Set assigns the value to column.
func Set(column string) Assignment { return Assignment{column, assignSet} }

// Greatest assigns greatest(column, value): the later of the two, where a
// NULL counts as neither (PostgreSQL's greatest).
func Greatest(column string) Assignment { return Assignment{column, assignGreatest} }

// Add assigns column + value.
func Add(column string) Assignment { return Assignment{column, assignAdd} }

func (a Assignment) sql(param int) string {
	col := pgx.Identifier{a.column}.Sanitize()
	p := fmt.Sprintf("$%d", param)
	switch a.kind {
	case assignGreatest:
		return col + " = greatest(" + col + ", " + p + ")"
	case assignAdd:
		return col + " = " + col + " + " + p
	default:
		return col + " = " + p
	}
}

// Update is the update of one row of a table, found by its key column: an
// UPDATE that must change exactly one row (as ExecOne). Build it once (a
// package variable) and queue updates with Queue.Update.
type Update struct {
	table, key string
	assign     []Assignment
	sql        string
}

// NewUpdate describes updates of table's row with a given key, making the
// assignments. A column may be assigned once (as in SQL); it panics
// otherwise, when the package's variables are built.
func NewUpdate(table, key string, assign ...Assignment) *Update {
	sets := make([]string, len(assign))
	seen := map[string]bool{key: true}
	for i, a := range assign {
		if seen[a.column] {
			panic("projections: NewUpdate of " + table + " assigns " + a.column + " twice, or its key")
		}
		seen[a.column] = true
		sets[i] = a.sql(i + 2)
	}
	return &Update{table: table, key: key, assign: assign,
		sql: `UPDATE ` + pgx.Identifier{table}.Sanitize() + ` SET ` + strings.Join(sets, ", ") +
			` WHERE ` + pgx.Identifier{key}.Sanitize() + ` = $1`}
}

// Update queues the update of the row with the key: values are those of the
// assignments, in order.
func (q *Queue) Update(u *Update, key any, values ...any) {
	if len(values) != len(u.assign) {
		// Sent as it is, PostgreSQL names the mismatch.
		q.ExecOne(u.sql, append([]any{key}, values...)...)
		return
	}
	if s, ok := key.(string); ok {
		k := canonicalKey(u.table, s)
		if row, ok := q.pending[k]; ok {
			if row.key == s && q.foldInto(&q.stmts[row.stmt], u, values) {
				q.folded++
				return
			}
			// Sent as SQL after the insert (it may be the row's): later
			// updates must follow it.
			delete(q.pending, k)
		}
	} else {
		// A key it cannot compare may be any row's.
		q.opaque()
	}
	q.stmts = append(q.stmts, stmt{sql: u.sql, args: append([]any{key}, values...), wantOne: true})
}

// foldInto makes u's assignments to the values of the inserted row s, if it
// can: every assigned column is one the insert names, and every Greatest and
// Add has values it knows how to combine. It changes nothing when it cannot.
func (q *Queue) foldInto(s *stmt, u *Update, values []any) bool {
	if s.ins.columns[0] != u.key {
		return false
	}
	var at [16]int
	idx := at[:0]
	next := make([]any, 0, len(values))
	for j, a := range u.assign {
		c := columnIndex(s.ins.columns, a.column)
		if c < 0 {
			return false
		}
		v, ok := assign(a.kind, s.args[c], values[j])
		if !ok {
			return false
		}
		idx = append(idx, c)
		next = append(next, v)
	}
	if !s.owned {
		s.args = append([]any(nil), s.args...)
		s.owned = true
	}
	for k, c := range idx {
		s.args[c] = next[k]
	}
	return true
}

func columnIndex(cols []string, c string) int {
	for i := range cols {
		if cols[i] == c {
			return i
		}
	}
	return -1
}

// assign is what the column holds after one assignment, as PostgreSQL
// would compute it, for the kinds of values it knows: any value for Set;
// time.Time or NULL (nil) for Greatest; int64 for Add, without overflow.
func assign(kind int, cur, v any) (any, bool) {
	switch kind {
	case assignSet:
		return v, true
	case assignGreatest:
		if v == nil {
			return cur, isTimeOrNil(cur)
		}
		t, ok := v.(time.Time)
		if !ok {
			return nil, false
		}
		if cur == nil {
			return t, true
		}
		c, ok := cur.(time.Time)
		if !ok {
			return nil, false
		}
		// Stored rounded to microseconds; rounding keeps the order, so the
		// later of the two is the later after rounding too.
		if t.After(c) {
			return t, true
		}
		return c, true
	case assignAdd:
		c, ok1 := cur.(int64)
		n, ok2 := v.(int64)
		if !ok1 || !ok2 || n > 0 && c > math.MaxInt64-n || n < 0 && c < math.MinInt64-n {
			return nil, false
		}
		return c + n, true
	}
	return nil, false
}

func isTimeOrNil(v any) bool {
	if v == nil {
		return true
	}
	_, ok := v.(time.Time)
	return ok
}
