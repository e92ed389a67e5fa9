package admin_test

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// exportFixture makes a known set of users: two guests, a promoted user, a
// disabled promoted user and a deleted promoted user.
func exportFixture(t *testing.T, c *apitest.Client, clk *clock.Fake) (subs []string, want map[string]map[string]string) {
	t.Helper()
	want = map[string]map[string]string{}
	for _, spec := range []struct{ login, action string }{{"", ""}, {"", ""}, {"eve@example.com", ""}, {"dan@example.com", "disable"}, {"zed@example.com", "delete"}} {
		at, _ := apitest.Signup(t, c)
		sub := apitest.Str(c.Userinfo(at).Body, "sub")
		w := map[string]string{"sub": sub, "is_anonymous": "true", "state": "active", "disabled": "false", "login_id": "", "client_id": "idstream-dev"}
		if spec.login != "" {
			if r := c.Promote(at, spec.login, apitest.GoodPassword); r.Status != 200 {
				t.Fatal(r.Raw)
			}
			w["is_anonymous"], w["login_id"] = "false", spec.login
		}
		switch spec.action {
		case "disable":
			c.Admin(http.MethodPost, "/admin/users/"+sub+"/disable", "")
			w["disabled"] = "true"
		case "delete":
			c.Admin(http.MethodDelete, "/admin/users/"+sub, "")
			w["state"], w["login_id"] = "deleted", ""
		}
		subs, want[sub] = append(subs, sub), w
		clk.Advance(time.Second)
	}
	apitest.WaitProjected(t, c)
	// Timestamps come from the read model through the admin API: another
	// code path than the exporter's.
	for _, sub := range subs {
		r := c.Admin(http.MethodGet, "/admin/users/"+sub, "")
		for _, f := range []string{"created_at", "last_seen_at", "promoted_at", "deleted_at"} {
			if v, ok := r.Body[f].(string); ok {
				at, err := time.Parse(time.RFC3339Nano, v)
				if err != nil {
					t.Fatal(err)
				}
				want[sub][f] = at.UTC().Format(time.RFC3339Nano)
			} else {
				want[sub][f] = ""
			}
		}
	}
	return subs, want
}

func TestUserExport(t *testing.T) {
	nats := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	configure := func(c *config.Config) { apitest.CheapHashes(c); c.AdminAPIKeys = []string{apitest.AdminKey} }
	a := testenv.StartNode(t, nats, testenv.NodeOptions{Configure: configure, DatabaseURL: dbURL, Clock: clk})
	c := apitest.NewClient(t, a)
	subs, want := exportFixture(t, c, clk)
	ctx := context.Background()

	// CSV with chosen fields, run by hand (no worker on node a).
	fields := []string{"sub", "is_anonymous", "state", "disabled", "login_id", "created_at", "last_seen_at", "promoted_at", "deleted_at", "client_id"}
	fj, _ := json.Marshal(fields)
	r := c.Admin(http.MethodPost, "/admin/users/export", `{"format":"csv","csv":{"fields":`+string(fj)+`}}`)
	if r.Status != 202 || apitest.Str(r.Body, "status") != "pending" || r.Header.Get("Location") == "" {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	csvID := apitest.Str(r.Body, "id")
	if r := c.Admin(http.MethodPost, "/admin/users/export", `{"format":"ndjson"}`); r.Status != 409 || r.Reason() != "ExportInProgress" {
		t.Fatalf("second job while one is pending: %d %s", r.Status, r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users/export/"+csvID+"/download", ""); r.Status != 404 || r.Reason() != "ExportNotReady" {
		t.Fatalf("download before completion: %d %s", r.Status, r.Raw)
	}
	if ran, err := a.Exports.RunNext(ctx); !ran || err != nil {
		t.Fatalf("run: %v %v", ran, err)
	}
	r = c.Admin(http.MethodGet, "/admin/users/export/"+csvID, "")
	if apitest.Str(r.Body, "status") != "completed" || r.Body["done"].(float64) != 5 || r.Body["total"].(float64) != 5 || r.Body["progress"].(float64) != 1 ||
		!strings.HasSuffix(apitest.Str(r.Body, "download_url"), "/admin/users/export/"+csvID+"/download") {
		t.Fatalf("status: %s", r.Raw)
	}
	dl := c.Admin(http.MethodGet, "/admin/users/export/"+csvID+"/download", "")
	if dl.Status != 200 || !strings.HasPrefix(dl.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("download: %d %v", dl.Status, dl.Header)
	}
	recs, err := csv.NewReader(strings.NewReader(dl.Raw)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(recs[0], fields) || len(recs) != 6 {
		t.Fatalf("csv header/rows: %v", recs)
	}
	for i, rec := range recs[1:] {
		w := want[rec[0]]
		if rec[0] != subs[i] {
			t.Fatalf("row %d is %s, want %s (oldest first)", i, rec[0], subs[i])
		}
		for j, f := range fields {
			if rec[j] != w[f] {
				t.Errorf("csv %s %s = %q, want %q", rec[0], f, rec[j], w[f])
			}
		}
	}

	// NDJSON, run by the background worker of another node; downloaded
	// from the first.
	b := testenv.StartNode(t, nats, testenv.NodeOptions{Configure: configure, DatabaseURL: dbURL, Clock: clk, Workers: true})
	_ = b
	r = c.Admin(http.MethodPost, "/admin/users/export", `{"format":"ndjson"}`)
	if r.Status != 202 {
		t.Fatalf("create ndjson: %d %s", r.Status, r.Raw)
	}
	ndID := apitest.Str(r.Body, "id")
	if r := c.WaitExport(ndID); apitest.Str(r.Body, "status") != "completed" {
		t.Fatalf("ndjson job: %s", r.Raw)
	}
	dl = c.Admin(http.MethodGet, "/admin/users/export/"+ndID+"/download", "")
	if dl.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("ndjson content type: %v", dl.Header)
	}
	sc := bufio.NewScanner(strings.NewReader(dl.Raw))
	n := 0
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatal(err)
		}
		w := want[apitest.Str(rec, "sub")]
		for f, v := range w {
			got := ""
			switch x := rec[f].(type) {
			case string:
				got = x
				if at, err := time.Parse(time.RFC3339Nano, x); err == nil && strings.HasSuffix(f, "_at") {
					got = at.UTC().Format(time.RFC3339Nano)
				}
			case bool:
				got = fmt.Sprint(x)
			}
			if got != v {
				t.Errorf("ndjson %s %s = %q, want %q", w["sub"], f, got, v)
			}
		}
		n++
	}
	if n != 5 {
		t.Fatalf("ndjson records: %d", n)
	}

	// Bad requests.
	for _, body := range []string{`{"format":"xml"}`, `{"format":"csv","csv":{"fields":["password"]}}`, `{"format":"csv","csv":{"fields":["sub","sub"]}}`,
		`{"format":"ndjson","csv":{"fields":["sub"]}}`, `{"format":"csv","extra":1}`, `nope`} {
		if r := c.Admin(http.MethodPost, "/admin/users/export", body); r.Status != 400 {
			t.Fatalf("%s: %d %s", body, r.Status, r.Raw)
		}
	}
	if r := c.Admin(http.MethodGet, "/admin/users/export/not-a-uuid", ""); r.Status != 404 {
		t.Fatalf("bad id: %d", r.Status)
	}

	// Kept 24 hours, then the job and its file are gone.
	clk.Advance(24*time.Hour + time.Minute)
	if r := c.Admin(http.MethodGet, "/admin/users/export/"+csvID, ""); r.Status != 404 {
		t.Fatalf("expired job: %d %s", r.Status, r.Raw)
	}
	// Node B's worker cleans up too, every second, and may be half-way
	// through (rows gone, file not yet): wait for both to be gone, running
	// the clean-up here as well.
	js := a.Store.JetStream()
	obs, err := js.ObjectStore(ctx, "idstream_exports")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, "the expired jobs and their files removed", 10*time.Second, func() bool {
		if _, err := a.Exports.RunNext(ctx); err != nil {
			t.Fatal(err)
		}
		var left int
		if err := a.Pool.QueryRow(ctx, `SELECT count(*) FROM export_jobs`).Scan(&left); err != nil {
			t.Fatal(err)
		}
		_, err := obs.GetInfo(ctx, csvID)
		return left == 0 && err != nil
	})
}

// TestUserExportCSVInjection: login IDs people choose (an email address
// may begin with =, + or -, and a phone number always begins with +) are
// exported as text a spreadsheet does not evaluate, and unchanged in NDJSON.
// (No login ID can begin with @, tab or CR; the workers test writes those
// into the read model directly.)
func TestUserExportCSVInjection(t *testing.T) {
	n, c := apitest.AdminNode(t)
	logins := map[string]string{
		"=cmd|'/c_calc'!a0@example.com": "'=cmd|'/c_calc'!a0@example.com",
		"+1+1@example.com":              "'+1+1@example.com",
		"-2+3@example.com":              "'-2+3@example.com",
		"+14155550100":                  "'+14155550100",
		"plain@example.com":             "plain@example.com",
	}
	for login := range logins {
		at, _ := apitest.Signup(t, c)
		if r := c.Promote(at, login, apitest.GoodPassword); r.Status != 200 {
			t.Fatalf("promote %q: %s", login, r.Raw)
		}
	}
	apitest.WaitProjected(t, c)
	for _, format := range []string{"csv", "ndjson"} {
		r := c.Admin(http.MethodPost, "/admin/users/export", `{"format":"`+format+`","csv":{"fields":["login_id"]}}`)
		if format == "ndjson" {
			r = c.Admin(http.MethodPost, "/admin/users/export", `{"format":"ndjson"}`)
		}
		if r.Status != 202 {
			t.Fatalf("create %s: %d %s", format, r.Status, r.Raw)
		}
		if ran, err := n.Exports.RunNext(context.Background()); !ran || err != nil {
			t.Fatalf("run: %v %v", ran, err)
		}
		dl := c.Admin(http.MethodGet, "/admin/users/export/"+apitest.Str(r.Body, "id")+"/download", "")
		got := map[string]bool{}
		if format == "csv" {
			recs, err := csv.NewReader(strings.NewReader(dl.Raw)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range recs[1:] {
				got[rec[0]] = true
			}
			for login, cell := range logins {
				if !got[cell] {
					t.Errorf("csv: %q not exported as %q: %q", login, cell, recs)
				}
			}
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(dl.Raw))
		for sc.Scan() {
			var rec map[string]any
			_ = json.Unmarshal(sc.Bytes(), &rec)
			got[apitest.Str(rec, "login_id")] = true
		}
		for login := range logins {
			if !got[login] {
				t.Errorf("ndjson: %q changed: %s", login, dl.Raw)
			}
		}
	}
}
