package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/examples/analytics/links"
	"github.com/idstream/idstream/testenv"
)

const password = "violet-tangerine-42"

// TestGuestAndMemberActivityIsOnePerson runs the whole story through a real
// idstream node: guest A comments, is promoted (same sub) and comments; guest
// B comments, then signs in to A's account (conflict policy "login": B is
// merged into A) and comments as A; guest C comments, logs out and expires.
// The consumer's links and the report put A's and B's comments under one
// person, each marked guest or member as the author was then. Redelivered
// events change nothing, and replays (from the start, from the merge) end
// with the same tables.
func TestGuestAndMemberActivityIsOnePerson(t *testing.T) {
	ctx := context.Background()
	ns := testenv.StartNATS(t)
	n := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
		c.Promotion.ConflictPolicy = "login"
	}})
	dbURL, db := testenv.Database(t) // the app's own database
	js, err := jetstream.New(ns.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	cfg := links.DefaultConfig()
	c, err := links.New(db, js, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t, n.URL)
	comment := func(sub, body string) {
		t.Helper()
		if err := addComment(ctx, db, sub, body, n.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		n.Clock.Advance(time.Minute)
	}

	// A: a guest, then a member with the same sub.
	createdA := n.Clock.Now()
	atA, _, subA := b.signUp()
	comment(subA, "a1")
	promotedA := n.Clock.Now()
	atA = b.promote(atA, "ada@example.com")
	if got := b.sub(atA); got != subA {
		t.Fatalf("promotion changed the sub: %s, was %s", got, subA)
	}
	n.Clock.Advance(time.Minute)
	comment(subA, "a2")

	// The consumer catches up half-way; later it goes on from there.
	st, err := c.CatchUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Applied != 2 || st.Ignored == 0 || st.Skipped != 0 {
		t.Fatalf("first catch-up: %+v, want 2 link events (created, promoted) and some others", st)
	}

	// B: a guest that signs in to A's account and is merged into it.
	atB, _, subB := b.signUp()
	comment(subB, "b1")
	mergedB := n.Clock.Now()
	atAB := b.signInAs(atB, "ada@example.com")
	if got := b.sub(atAB); got != subA {
		t.Fatalf("B signed in to %s, want A's account %s", got, subA)
	}
	n.Clock.Advance(time.Minute)
	comment(subA, "b2")

	// C: a guest that comments, logs out and expires.
	_, rtC, subC := b.signUp()
	comment(subC, "c1")
	b.logout(rtC)
	n.Clock.Advance(25 * time.Hour)
	expiredC := n.Clock.Now()
	if _, err := n.Service.ExpireAnonymousUser(ctx, subC, nil, false, app.Meta{}); err != nil {
		t.Fatal(err)
	}

	// An instance that died after pulling two events and before applying
	// them: without care, they would be redelivered after newer ones.
	dead, err := js.Consumer(ctx, cfg.Stream, cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := dead.Fetch(2, jetstream.FetchMaxWait(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	pulled := 0
	for range batch.Messages() {
		pulled++ // and never acked
	}
	if pulled != 2 {
		t.Fatalf("dead instance pulled %d", pulled)
	}

	// The program catches up.
	var out bytes.Buffer
	flags := []string{"-nats", ns.Server.ClientURL(), "-database-url", dbURL}
	if err := run(ctx, "consume", append([]string{"-once"}, flags...), &out, log); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "applied=4 ") {
		t.Fatalf("second catch-up: %s, want B's creation, the merge, C's creation and expiry", out.String())
	}

	wantLinks := map[string]linkRow{
		subA: {PersonID: subA, Kind: "member", CreatedAt: &createdA, PromotedAt: &promotedA, LoginIDType: ptr("email")},
		subB: {PersonID: subA, Kind: "guest", CreatedAt: ptr(promotedA.Add(2 * time.Minute)), MergedInto: &subA, MergedAt: &mergedB},
		subC: {PersonID: subC, Kind: "guest", CreatedAt: ptr(mergedB.Add(2 * time.Minute)), ExpiredAt: &expiredC},
	}
	checkLinks(t, db, wantLinks)

	wantReport := map[string][][3]string{ // person: (author, was, body)
		subA: {{subA, "guest", "a1"}, {subA, "member", "a2"}, {subB, "guest", "b1"}, {subA, "member", "b2"}},
		subC: {{subC, "guest", "c1"}},
	}
	checkReport(t, db, wantReport)
	out.Reset()
	if err := run(ctx, "report", flags, &out, log); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), "\n"); got != 6 || !strings.Contains(out.String(), "b1") {
		t.Fatalf("report output:\n%s", out.String())
	}
	snapshot := dump(t, db)

	// Redelivery: the durable is set back to the first event while the
	// tables stay; everything comes again and is skipped.
	rewindConsumer(t, js, cfg, 1)
	if st, err = c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if st.Applied != 0 || st.Ignored != 0 || st.Skipped == 0 {
		t.Fatalf("redelivery: %+v, want everything skipped", st)
	}
	sameTables(t, "after redelivery", snapshot, dump(t, db))

	// Replay from the start (through the program's flag).
	if err := run(ctx, "consume", append([]string{"-once", "-replay"}, flags...), &out, log); err != nil {
		t.Fatal(err)
	}
	sameTables(t, "after a replay from the start", snapshot, dump(t, db))

	// Replay from the merge: the tables go back to before it, then forward.
	var mergeSeq uint64
	if err := db.QueryRow(ctx, `SELECT seq FROM analytics_identity_events WHERE type = $1`, domain.TypeAnonymousUserMerged).Scan(&mergeSeq); err != nil {
		t.Fatal(err)
	}
	if err := c.Replay(ctx, mergeSeq); err != nil {
		t.Fatal(err)
	}
	before := maps.Clone(wantLinks)
	before[subB] = linkRow{PersonID: subB, Kind: "guest", CreatedAt: wantLinks[subB].CreatedAt}
	delete(before, subC)
	checkLinks(t, db, before)
	if _, err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	sameTables(t, "after a replay from the merge", snapshot, dump(t, db))

	pos, err := c.Position(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Replay(ctx, pos+2); err == nil {
		t.Fatal("a replay past the checkpoint was accepted")
	}
}

// TestMergeChainsInAnyOrder writes events straight to the log, including
// merges idstream itself never makes (a guest into a guest), to check that
// person_id follows chains whichever end is merged first, and that a cycle
// stops the consumer instead of being applied. On the way: Run follows new
// events, and tables restored from a backup are caught up from their own
// checkpoint although the durable had gone further.
func TestMergeChainsInAnyOrder(t *testing.T) {
	ctx := context.Background()
	ns := testenv.StartNATS(t)
	st, err := eventstore.Open(ctx, ns.Connect(t), eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	_, db := testenv.Database(t)
	c, err := links.New(db, st.JetStream(), links.DefaultConfig(), slog.New(slog.NewTextHandler(t.Output(), nil)))
	if err != nil {
		t.Fatal(err)
	}
	w := &writer{t: t, st: st, at: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), versions: map[string]uint64{}}
	x, y, z, p, q, r := uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString(), uuid.NewString()
	for _, g := range []string{x, y, p, q} {
		w.user(g, domain.AnonymousUserCreated{UserID: g, ClientID: "app", CreatedAt: w.now()})
	}
	for _, m := range []string{z, r} {
		w.user(m, domain.UserRegistered{UserID: m, ClientID: "app", LoginIDType: "email", LoginID: m + "@example.com", RegisteredAt: w.now()})
	}
	w.user(z, domain.PasswordSet{UserID: z, PasswordHash: "$argon2id$…", Reason: "registration", SetAt: w.now()})
	w.write("session", "s1", domain.SessionRevoked{SessionID: "s1", UserID: x, Reason: "logout", RevokedAt: w.now()})
	// Along the chain: x→y, then y→z.
	w.user(x, domain.AnonymousUserMerged{GuestID: x, IntoUserID: y, MergedAt: w.now()})
	w.user(y, domain.AnonymousUserMerged{GuestID: y, IntoUserID: z, MergedAt: w.now()})
	// Against it: q→r, then p→q.
	w.user(q, domain.AnonymousUserMerged{GuestID: q, IntoUserID: r, MergedAt: w.now()})
	w.user(p, domain.AnonymousUserMerged{GuestID: p, IntoUserID: q, MergedAt: w.now()})

	stats, err := c.CatchUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The session event is not delivered at all (subject filter); the
	// password is delivered and ignored.
	if stats.Applied != 10 || stats.Ignored != 1 {
		t.Fatalf("stats %+v, want 10 applied, 1 ignored", stats)
	}
	persons := func() map[string]string {
		rows, err := db.Query(ctx, `SELECT sub, person_id FROM analytics_identity_links`)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for rows.Next() {
			var s, pid string
			if err := rows.Scan(&s, &pid); err != nil {
				t.Fatal(err)
			}
			m[s] = pid
		}
		return m
	}
	want := map[string]string{x: z, y: z, z: z, p: r, q: r, r: r}
	if got := persons(); !maps.Equal(got, want) {
		t.Fatalf("persons %v, want %v", got, want)
	}
	// A backup of the tables, restored later.
	for _, table := range []string{"analytics_identity_links", "analytics_identity_events", "analytics_checkpoints"} {
		if _, err := db.Exec(ctx, `CREATE TABLE backup_`+table+` AS SELECT * FROM `+table); err != nil {
			t.Fatal(err)
		}
	}

	// Run follows the stream; stopped and started again with nothing new,
	// the consumer keeps its durable.
	created := consumerCreated(t, st.JetStream())
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- c.Run(runCtx) }()
	late := uuid.NewString()
	w.user(late, domain.AnonymousUserCreated{UserID: late, ClientID: "app", CreatedAt: w.now()})
	for deadline := time.Now().Add(10 * time.Second); persons()[late] != late; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("Run did not apply the new guest")
		}
	}
	stop()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if stats, err := c.CatchUp(ctx); err != nil || stats.Applied+stats.Ignored+stats.Skipped != 0 {
		t.Fatalf("nothing to do: %+v %v", stats, err)
	}
	if !consumerCreated(t, st.JetStream()).Equal(created) {
		t.Fatal("the durable was re-created with nothing to catch up")
	}
	snapshot := dump(t, db)

	// Restored from the backup, the tables are behind the durable, with an
	// event for them in between: the durable starts again after the
	// restored checkpoint.
	for _, table := range []string{"analytics_identity_links", "analytics_identity_events", "analytics_checkpoints"} {
		if _, err := db.Exec(ctx, `DELETE FROM `+table+`; INSERT INTO `+table+` SELECT * FROM backup_`+table); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := persons()[late]; ok {
		t.Fatal("restore: the late guest is still there")
	}
	if stats, err := c.CatchUp(ctx); err != nil || stats.Applied != 1 {
		t.Fatalf("after the restore: %+v %v, want the late guest applied", stats, err)
	}
	if consumerCreated(t, st.JetStream()).Equal(created) {
		t.Fatal("the durable was kept although it had delivered past the restored checkpoint")
	}
	sameTables(t, "after the restore", snapshot, dump(t, db))

	if err := c.Replay(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	sameTables(t, "after a replay", snapshot, dump(t, db))

	// A cycle (u→v, then v→u) stops the consumer at the second merge.
	u, v := uuid.NewString(), uuid.NewString()
	w.user(u, domain.AnonymousUserCreated{UserID: u, ClientID: "app", CreatedAt: w.now()})
	w.user(v, domain.AnonymousUserCreated{UserID: v, ClientID: "app", CreatedAt: w.now()})
	uv := w.user(u, domain.AnonymousUserMerged{GuestID: u, IntoUserID: v, MergedAt: w.now()})
	if _, err := c.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	w.user(v, domain.AnonymousUserMerged{GuestID: v, IntoUserID: u, MergedAt: w.now()})
	if _, err := c.CatchUp(ctx); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: %v", err)
	}
	if pos, err := c.Position(ctx); err != nil || pos != uv {
		t.Fatalf("position %d %v, want %d (before the cycle)", pos, err, uv)
	}
}

// linkRow is a row of analytics_identity_links.
type linkRow struct {
	Sub         string     `db:"sub"`
	PersonID    string     `db:"person_id"`
	Kind        string     `db:"kind"`
	CreatedAt   *time.Time `db:"created_at"`
	PromotedAt  *time.Time `db:"promoted_at"`
	LoginIDType *string    `db:"login_id_type"`
	MergedInto  *string    `db:"merged_into"`
	MergedAt    *time.Time `db:"merged_at"`
	ExpiredAt   *time.Time `db:"expired_at"`
	LastSeq     int64      `db:"last_seq"`
}

func checkLinks(t *testing.T, db *pgxpool.Pool, want map[string]linkRow) {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT * FROM analytics_identity_links`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowToStructByName[linkRow])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d links, want %d: %+v", len(got), len(want), got)
	}
	for _, g := range got {
		w, ok := want[g.Sub]
		w.Sub, w.LastSeq = g.Sub, g.LastSeq
		if !ok || !sameLink(g, w) {
			t.Errorf("link %s:\n got %s\nwant %s", g.Sub, show(g), show(w))
		}
	}
}

func sameLink(a, b linkRow) bool {
	eqT := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	eqS := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Sub == b.Sub && a.PersonID == b.PersonID && a.Kind == b.Kind && eqT(a.CreatedAt, b.CreatedAt) &&
		eqT(a.PromotedAt, b.PromotedAt) && eqS(a.LoginIDType, b.LoginIDType) && eqS(a.MergedInto, b.MergedInto) &&
		eqT(a.MergedAt, b.MergedAt) && eqT(a.ExpiredAt, b.ExpiredAt)
}

func show(v any) string { b, _ := json.Marshal(v); return string(b) }

func checkReport(t *testing.T, db *pgxpool.Pool, want map[string][][3]string) {
	t.Helper()
	rows, err := readReport(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][][3]string{}
	for _, r := range rows {
		got[r.PersonID] = append(got[r.PersonID], [3]string{r.AuthorSub, r.AuthorWas, r.Body})
	}
	if len(got) != len(want) {
		t.Fatalf("report persons: %v, want %v", got, want)
	}
	for person, w := range want {
		if !slices.Equal(got[person], w) {
			t.Errorf("history of %s:\n got %v\nwant %v", person, got[person], w)
		}
	}
}

// dump is the analytics tables as text (without the checkpoint's time).
func dump(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), `
		SELECT 'link ' || row_to_json(l)::text FROM (SELECT * FROM analytics_identity_links ORDER BY sub) l
		UNION ALL SELECT 'event ' || row_to_json(e)::text FROM (SELECT * FROM analytics_identity_events ORDER BY seq) e
		UNION ALL SELECT 'checkpoint ' || consumer || ' ' || last_seq FROM analytics_checkpoints`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func sameTables(t *testing.T, when string, want, got []string) {
	t.Helper()
	if !slices.Equal(want, got) {
		t.Fatalf("%s the tables differ:\n got %s\nwant %s", when, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// rewindConsumer sets the durable back to stream sequence seq, as an
// operator could, without touching the tables.
func rewindConsumer(t *testing.T, js jetstream.JetStream, cfg links.Config, seq uint64) {
	t.Helper()
	ctx := context.Background()
	cons, err := js.Consumer(ctx, cfg.Stream, cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	cc := cons.CachedInfo().Config
	cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	if err := js.DeleteConsumer(ctx, cfg.Stream, cfg.Consumer); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, cfg.Stream, cc); err != nil {
		t.Fatal(err)
	}
}

func ptr[T any](v T) *T { return &v }

// writer appends events to the log directly, keeping each subject's
// version for the expected-sequence check.
type writer struct {
	t        *testing.T
	st       *eventstore.Store
	at       time.Time
	versions map[string]uint64
}

func (w *writer) now() time.Time { w.at = w.at.Add(time.Minute); return w.at }

func (w *writer) user(id string, ev domain.Event) uint64 { return w.write("user", id, ev) }

func (w *writer) write(kind, id string, ev domain.Event) uint64 {
	w.t.Helper()
	data, err := json.Marshal(ev)
	if err != nil {
		w.t.Fatal(err)
	}
	subject := w.st.Subject(kind, id)
	seqs, err := w.st.Append(context.Background(), eventstore.Message{Subject: subject, ExpectedLastSubjectSequence: w.versions[subject],
		Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: ev.EventType(), OccurredAt: w.at, Data: data}})
	if err != nil {
		w.t.Fatal(err)
	}
	w.versions[subject] = seqs[0]
	return seqs[0]
}

// browser is an app's client of idstream's HTTP API: cookies kept,
// redirects not followed.
type browser struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) result() map[string]any { m, _ := r.body["result"].(map[string]any); return m }

func field(m map[string]any, k string) string { s, _ := m[k].(string); return s }

func (b *browser) do(method, path, contentType, body, bearer string) reply {
	b.t.Helper()
	req, err := http.NewRequest(method, b.base+path, strings.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

func (b *browser) postJSON(path, body, bearer string) reply {
	return b.do(http.MethodPost, path, "application/json", body, bearer)
}

func (b *browser) postForm(path string, form url.Values) reply {
	return b.do(http.MethodPost, path, "application/x-www-form-urlencoded", form.Encode(), "")
}

// signUp makes a guest (refresh-token mode).
func (b *browser) signUp() (at, rt, sub string) {
	b.t.Helper()
	r := b.postJSON("/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, "")
	if r.status != 200 {
		b.t.Fatalf("sign-up: %d %s", r.status, r.raw)
	}
	at, rt = field(r.result(), "access_token"), field(r.result(), "refresh_token")
	return at, rt, b.sub(at)
}

func (b *browser) sub(at string) string {
	b.t.Helper()
	r := b.do(http.MethodGet, "/oauth2/userinfo", "", "", at)
	if r.status != 200 || field(r.body, "sub") == "" {
		b.t.Fatalf("userinfo: %d %s", r.status, r.raw)
	}
	return field(r.body, "sub")
}

// promote is the headless promotion; it returns the member's access token.
func (b *browser) promote(at, loginID string) string {
	b.t.Helper()
	r := b.postJSON("/api/anonymous_user/promote", `{"login_id":"`+loginID+`","password":"`+password+`"}`, at)
	if r.status != 200 {
		b.t.Fatalf("promote: %d %s", r.status, r.raw)
	}
	return field(r.result(), "access_token")
}

var csrfRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// signInAs runs the web SDK's promotion flow for a guest with a login ID that
// already belongs to an account: with conflict policy "login" the guest is
// merged into the account and signed in to it. It returns the account's
// access token.
func (b *browser) signInAs(guestAT, loginID string) string {
	b.t.Helper()
	pc := b.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, guestAT)
	if pc.status != 200 {
		b.t.Fatalf("promotion code: %d %s", pc.status, pc.raw)
	}
	verifier := "verifier-" + strings.Repeat("0123456789", 5)
	sum := sha256.Sum256([]byte(verifier))
	const redirect = "http://localhost:3000/after"
	hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "promotion_code": {field(pc.result(), "promotion_code")}}.Encode()
	params := url.Values{"response_type": {"code"}, "client_id": {"idstream-dev"}, "redirect_uri": {redirect},
		"code_challenge_method": {"S256"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])},
		"state": {"s"}, "scope": {"openid offline_access"}, "login_hint": {hint}}
	r := b.do(http.MethodGet, "/oauth2/authorize?"+params.Encode(), "", "", "")
	page := r.header.Get("Location")
	if r.status != 302 || !strings.HasPrefix(page, "/flows/") {
		b.t.Fatalf("authorize: %d %s", r.status, r.raw)
	}
	m := csrfRe.FindStringSubmatch(b.do(http.MethodGet, page, "", "", "").raw)
	if m == nil {
		b.t.Fatal("no CSRF token on the flow page")
	}
	r = b.postForm(page, url.Values{"login_id": {loginID}, "password": {password}, "csrf_token": {html.UnescapeString(m[1])}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc == nil || loc.Query().Get("code") == "" {
		b.t.Fatalf("sign in as %s: %d %s", loginID, r.status, r.raw)
	}
	tok := b.postForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "code_verifier": {verifier}})
	if tok.status != 200 {
		b.t.Fatalf("token: %d %s", tok.status, tok.raw)
	}
	return field(tok.body, "access_token")
}

// logout revokes a refresh token (RFC 7009).
func (b *browser) logout(rt string) {
	b.t.Helper()
	if r := b.postForm("/oauth2/revoke", url.Values{"client_id": {"idstream-dev"}, "token": {rt}}); r.status != 200 {
		b.t.Fatalf("logout: %d %s", r.status, r.raw)
	}
}

func consumerCreated(t *testing.T, js jetstream.JetStream) time.Time {
	t.Helper()
	cfg := links.DefaultConfig()
	cons, err := js.Consumer(context.Background(), cfg.Stream, cfg.Consumer)
	if err != nil {
		t.Fatal(err)
	}
	return cons.CachedInfo().Created
}
