package workers_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"

	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/workers"
)

// TestCSVExportNeutralisesFormulas: login IDs that a spreadsheet would run
// as formulas are exported as text (a leading single quote, the cell
// quoted); the NDJSON export keeps them as they are.
func TestCSVExportNeutralisesFormulas(t *testing.T) {
	_, pool := testenv.Database(t)
	ctx := context.Background()
	values := []string{`=cmd|' /C calc'!A0`, "+14155550100", "-2+3@x", "@SUM(1)", "\tx", "\rx", `=HYPERLINK("http://evil.example","a,b")`,
		"plain@example.com", "a=b", "'quoted"}
	want := map[string]string{
		`=cmd|' /C calc'!A0`: `'=cmd|' /C calc'!A0`, "+14155550100": "'+14155550100", "-2+3@x": "'-2+3@x", "@SUM(1)": "'@SUM(1)",
		"\tx": "'\tx", "\rx": "'\rx", `=HYPERLINK("http://evil.example","a,b")`: `'=HYPERLINK("http://evil.example","a,b")`,
		"plain@example.com": "plain@example.com", "a=b": "a=b", "'quoted": "'quoted",
	}
	for i, v := range values {
		if _, err := pool.Exec(ctx, `INSERT INTO users (id, is_anonymous, client_id, state, created_at, last_seen_at, version, login_id_type, login_id, promoted_at)
			VALUES (gen_random_uuid(), false, 'idstream-dev', 'active', now() + $1 * interval '1 second', now(), 1, 'username', $2, now())`, i, v); err != nil {
			t.Fatal(err)
		}
	}

	var out bytes.Buffer
	if n, err := workers.WriteUsers(ctx, pool, &out, workers.FormatCSV, []string{"login_id", "state"}, nil); err != nil || n != int64(len(values)) {
		t.Fatalf("csv export: %d %v", n, err)
	}
	recs, err := csv.NewReader(bytes.NewReader(out.Bytes())).ReadAll()
	if err != nil {
		t.Fatalf("the export is not valid CSV: %v\n%s", err, out.String())
	}
	if len(recs) != len(values)+1 || strings.Join(recs[0], ",") != "login_id,state" {
		t.Fatalf("rows: %q", recs)
	}
	for i, v := range values {
		if got := recs[i+1]; got[0] != want[v] || got[1] != "active" {
			t.Errorf("%q exported as %q, want %q", v, got, want[v])
		}
	}
	// Every neutralised cell is quoted in the file itself: what follows the
	// quote stays in its cell even for a reader that splits on tabs.
	lines := strings.Split(out.String(), "\n")
	for _, line := range lines[1:] {
		if strings.HasPrefix(line, "'") {
			t.Errorf("unquoted neutralised cell: %q", line)
		}
		if line != "" && strings.ContainsAny(line[:1], "=+-@\t") {
			t.Errorf("a cell begins with a formula character: %q", line)
		}
	}

	out.Reset()
	if _, err := workers.WriteUsers(ctx, pool, &out, workers.FormatNDJSON, nil, nil); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	got := map[string]bool{}
	for sc.Scan() {
		var rec struct {
			LoginID string `json:"login_id"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		got[rec.LoginID] = true
	}
	for _, v := range values {
		if !got[v] {
			t.Errorf("ndjson lost or changed %q", v)
		}
	}
}
