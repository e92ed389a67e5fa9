package portal_test

import (
	"context"
	"encoding/csv"
	"html"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/testenv"
)

// TestPortalFunnel: a scripted history over two days (one guest on the
// first; a web guest and a key-pair guest on the second, the web guest
// promoted 90 minutes later) shows in the funnel page's table, totals and
// chart; a client filter and a bad range are handled.
func TestPortalFunnel(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Clock: clk, Configure: apitest.WithOperator})
	c := apitest.NewClient(t, n)
	day1 := clk.Now().UTC().Format(time.DateOnly)
	apitest.Signup(t, c)
	clk.Advance(24 * time.Hour)
	day2 := clk.Now().UTC().Format(time.DateOnly)
	_, rt := apitest.Signup(t, c)
	d := apitest.NewDevice(t, "ES256")
	if r := c.KeyGrant(d.JWT(t, c.Challenge(), true, clk.Now())); r.Status != 200 {
		t.Fatalf("key-pair guest: %d %s", r.Status, r.Raw)
	}
	clk.Advance(90 * time.Minute)
	ref := apitest.Refresh(c, rt)
	at := apitest.Str(ref.Body, "access_token")
	if ref.Status != 200 || at == "" {
		t.Fatalf("refresh: %d %s", ref.Status, ref.Raw)
	}
	if r := c.Promote(at, "funnel@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	testenv.Settle(t, n.Pool, n.Store, 30*time.Second)

	p := apitest.PortalClient(t, n)
	pg := p.Get("/portal/analytics/funnel")
	if pg.Status != 200 {
		t.Fatalf("funnel page: %d %s", pg.Status, pg.Raw)
	}
	// Day, created web, created key pair, promoted, merged, expired, still
	// anonymous, deleted.
	row := regexp.MustCompile(`<tr><th scope="row">(\d{4}-\d\d-\d\d)</th>((?:<td>\d+</td>){7})</tr>`)
	var got []string
	for _, m := range row.FindAllStringSubmatch(pg.Raw, -1) {
		got = append(got, m[1]+" "+strings.Join(regexp.MustCompile(`\d+`).FindAllString(m[2], -1), " "))
	}
	want := []string{day1 + " 1 0 0 0 0 1 0", day2 + " 1 1 1 0 0 1 0"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("table rows %q, want %q\n%s", got, want, pg.Raw)
	}
	for _, w := range []string{
		`<th scope="row">Guests created</th><td>3</td>`,
		`<th scope="row">Promoted</th><td>1</td>`,
		`<th scope="row">Conversion rate (promoted or merged)</th><td>33.3%</td>`,
		`<th scope="row">Orphan share (expired or still anonymous)</th><td>66.7%</td>`,
		`<th scope="row">Time to promotion, median</th><td>1h 30m</td>`,
		`<th scope="row">Time to promotion, 90th percentile</th><td>1h 30m</td>`,
		// The chart: an image with a title and a description naming the
		// numbers, patterns for the outcomes, counts as text on the bars.
		`role="img" aria-labelledby="funnel-title funnel-desc"`,
		`<title id="funnel-title">Guest funnel, `,
		html.EscapeString(day2 + ": 2 created (1 web, 1 key pair), 1 promoted, 0 merged, 0 expired, 1 still anonymous, 0 deleted."),
		`fill="url(#p-promoted)"`, `fill="url(#p-anonymous)"`, `>2 created</text>`,
		`aria-current="page">Analytics › Guest funnel</a>`,
	} {
		if !strings.Contains(pg.Raw, w) {
			t.Errorf("funnel page lacks %s", w)
		}
	}
	if strings.Contains(pg.Raw, "<script") || !strings.Contains(pg.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Error("the funnel page has a script or lacks the portal's CSP")
	}
	// The range and the client are filters.
	only1 := p.Get("/portal/analytics/funnel?" + url.Values{"from": {day1}, "to": {day1}}.Encode())
	if m := row.FindAllStringSubmatch(only1.Raw, -1); len(m) != 1 || m[0][1] != day1 || !strings.Contains(only1.Raw, `<td>0.0%</td>`) {
		t.Fatalf("first day only: %s", only1.Raw)
	}
	other := p.Get("/portal/analytics/funnel?client_id=nobody")
	if other.Status != 200 || row.MatchString(other.Raw) || !strings.Contains(other.Raw, "No guest was created in this range.") {
		t.Fatalf("another client: %s", other.Raw)
	}
	if r := p.Get("/portal/analytics/funnel?from=" + day2 + "&to=" + day1); r.Status != 400 || !strings.Contains(r.Raw, `aria-invalid="true"`) {
		t.Fatalf("reversed range: %d %s", r.Status, r.Raw)
	}
	if r := p.Get("/portal/analytics/funnel?from=tomorrow"); r.Status != 400 || !strings.Contains(r.Raw, "Enter a date as YYYY-MM-DD.") {
		t.Fatalf("not a date: %d %s", r.Status, r.Raw)
	}
}

// TestPortalExport: an operator starts a CSV export on the Operations page
// (CSRF checked), sees it pending, and after it ran downloads the file.
func TestPortalExport(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.WithOperator})
	c := apitest.NewClient(t, n)
	apitest.Signup(t, c)
	apitest.Signup(t, c)
	testenv.Settle(t, n.Pool, n.Store, 30*time.Second)
	p := apitest.PortalClient(t, n)
	ops := p.Get("/portal/operations")
	csrf := apitest.PortalCSRF.FindStringSubmatch(ops.Raw)
	if ops.Status != 200 || csrf == nil || !strings.Contains(ops.Raw, `action="/portal/operations/exports"`) {
		t.Fatalf("operations page: %d %s", ops.Status, ops.Raw)
	}
	form := url.Values{"format": {"csv"}, "fields": {"is_anonymous", "sub"}}
	if r := p.PostForm("/portal/operations/exports", form); r.Status != 403 {
		t.Fatalf("no CSRF token: %d", r.Status)
	}
	form.Set("csrf_token", html.UnescapeString(csrf[1]))
	bad := url.Values{"csrf_token": form["csrf_token"], "format": {"xml"}}
	if r := p.PostForm("/portal/operations/exports", bad); r.Status != 400 || !strings.Contains(r.Raw, "The export was not started") {
		t.Fatalf("bad format: %d %s", r.Status, r.Raw)
	}
	r := p.PostForm("/portal/operations/exports", form)
	loc := r.Header.Get("Location")
	id := regexp.MustCompile(`^/portal/operations\?export=([0-9a-f-]{36})#export$`).FindStringSubmatch(loc)
	if r.Status != 303 || id == nil {
		t.Fatalf("start: %d %v %s", r.Status, r.Header, r.Raw)
	}
	pending := p.Get(strings.TrimSuffix(loc, "#export"))
	if !strings.Contains(pending.Raw, `<dd role="status">pending`) || !strings.Contains(pending.Raw, `<meta http-equiv="refresh" content="2">`) ||
		!strings.Contains(pending.Raw, "csv (sub, is_anonymous)") || strings.Contains(pending.Raw, "/portal/exports/"+id[1]+"/download") {
		t.Fatalf("pending job: %s", pending.Raw)
	}
	if r := p.PostForm("/portal/operations/exports", form); r.Status != 409 || !strings.Contains(r.Raw, "The export was not started") {
		t.Fatalf("a second job while one is pending: %d %s", r.Status, r.Raw)
	}
	// No worker on this node: the job is run here.
	if ran, err := n.Exports.RunNext(context.Background()); !ran || err != nil {
		t.Fatalf("run: %v %v", ran, err)
	}
	done := p.Get(strings.TrimSuffix(loc, "#export"))
	if !strings.Contains(done.Raw, `<dd role="status">completed`) || strings.Contains(done.Raw, `http-equiv="refresh"`) ||
		!strings.Contains(done.Raw, "100% (2 of 2 users)") || !strings.Contains(done.Raw, `href="/portal/exports/`+id[1]+`/download"`) {
		t.Fatalf("completed job: %s", done.Raw)
	}
	dl := p.Get("/portal/exports/" + id[1] + "/download")
	recs, err := csv.NewReader(strings.NewReader(dl.Raw)).ReadAll()
	if dl.Status != 200 || err != nil || len(recs) != 3 || strings.Join(recs[0], ",") != "sub,is_anonymous" || recs[1][1] != "true" || recs[2][1] != "true" {
		t.Fatalf("download: %d %v %q", dl.Status, err, dl.Raw)
	}
}
