package workers_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
	"github.com/idstream/idstream/workers"
)

const day = 24 * time.Hour

func post(t *testing.T, n *testenv.Node, path, ctype, body string, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func field(m map[string]any, path ...string) string {
	for i, k := range path {
		if i == len(path)-1 {
			s, _ := m[k].(string)
			return s
		}
		m, _ = m[k].(map[string]any)
	}
	return ""
}

func webGuest(t *testing.T, n *testenv.Node) (userID, token string) {
	t.Helper()
	st, m := post(t, n, "/api/anonymous_user/signup", "application/json", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, nil)
	if st != 200 {
		t.Fatalf("signup: %d %v", st, m)
	}
	at := field(m, "result", "access_token")
	c, err := n.Keys.Verify(context.Background(), at)
	if err != nil {
		t.Fatal(err)
	}
	return c.Subject, field(m, "result", "refresh_token")
}

// device is a key-pair guest's device that signs in through the service.
type device struct{ testenv.Device }

func (d device) signIn(t *testing.T, n *testenv.Node, first bool) (string, error) {
	t.Helper()
	ctx := context.Background()
	ch, _, err := n.Service.IssueChallenge(ctx, app.ChallengePurposeAnonymousRequest)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := n.Service.SignInWithKey(ctx, "idstream-dev", d.JWT(t, ch, first, n.Clock.Now()), "", app.Meta{})
	return iss.UserID, err
}

func newDevice(t *testing.T) device { return device{testenv.NewDevice(t, jose.ES256)} }

// settle waits until every projection has applied the whole log.
func settle(t *testing.T, n *testenv.Node) {
	t.Helper()
	testenv.Settle(t, n.Pool, n.Store, 15*time.Second)
}

func tick(t *testing.T, n *testenv.Node, dry bool) workers.TickSummary {
	t.Helper()
	settle(t, n)
	sum, err := n.Reaper.Tick(context.Background(), dry)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func expired(t *testing.T, n *testenv.Node, id string) bool {
	t.Helper()
	u, _, err := n.Service.LoadUser(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return u.Expired()
}

func TestWebGuestExpiresAfterGrace(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	id, rt := webGuest(t, n)
	// The refresh token idles out after 30 days; the guest lives 24h more.
	n.Clock.Advance(30*day + time.Hour)
	if sum := tick(t, n, false); sum.Expired != 0 || expired(t, n, id) {
		t.Fatalf("expired inside the grace period: %+v", sum)
	}
	n.Clock.Advance(24 * day)
	before, _ := n.Store.LastSequence(context.Background())
	dry := tick(t, n, true)
	if after, _ := n.Store.LastSequence(context.Background()); dry.Expired != 1 || after != before || dry.Verdicts[0].Reason != domain.ExpiryNoLiveSession {
		t.Fatalf("dry run: %+v (wrote %d events)", dry, after-before)
	}
	if sum := tick(t, n, false); sum.Expired != 1 || !expired(t, n, id) {
		t.Fatalf("not expired after the grace period: %+v", sum)
	}
	// Idempotent: nothing expires twice.
	if sum := tick(t, n, false); sum.Expired != 0 {
		t.Fatalf("second pass: %+v", sum)
	}
	st, m := post(t, n, "/oauth2/token", "application/x-www-form-urlencoded",
		url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}}.Encode(), nil)
	if st != 400 {
		t.Fatalf("refresh of an expired guest: %d %v", st, m)
	}
	settle(t, n)
	var state string
	_ = n.Pool.QueryRow(context.Background(), `SELECT state FROM users WHERE id = $1`, id).Scan(&state)
	if state != "expired" {
		t.Fatalf("read model state %q", state)
	}
	// What the portal's Operations page shows: no worker holds the lease
	// on this node (workers off), one expiry in the last day.
	rs, err := n.Reaper.Status(context.Background())
	if err != nil || rs.Running || rs.ExpiredLastDay != 1 || rs.LastExpiry == nil || rs.Rules.WebGuestGrace != 24*time.Hour {
		t.Fatalf("reaper status: %+v %v", rs, err)
	}
}

func TestCookieActivityKeepsGuest(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	req, _ := http.NewRequest(http.MethodPost, n.URL+"/api/anonymous_user/signup", strings.NewReader(`{"client_id":"idstream-dev","session_type":"cookie"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("cookie signup: %v", err)
	}
	info := func() int {
		resp, err := c.Get(n.URL + "/oauth2/userinfo")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	n.Clock.Advance(20 * day)
	if info() != 200 {
		t.Fatal("cookie session refused")
	}
	// The read model only knows the session start: the guest looks idle,
	// but the decision sees the recorded activity and keeps it.
	n.Clock.Advance(20 * day)
	sum := tick(t, n, false)
	if sum.Candidates != 1 || sum.Skipped != 1 || sum.Expired != 0 {
		t.Fatalf("active cookie guest: %+v", sum)
	}
	// Postponed until it could expire: not a candidate again meanwhile.
	if sum := tick(t, n, false); sum.Candidates != 0 {
		t.Fatalf("postponed guest looked at again: %+v", sum)
	}
	if info() != 200 {
		t.Fatal("kept guest lost its session")
	}
}

func TestKeyGuestExpiresAfterInactivityPromotedNever(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	d := newDevice(t)
	id, err := d.signIn(t, n, true)
	if err != nil {
		t.Fatal(err)
	}
	promotedID, _ := webGuest(t, n)
	lid, _ := loginid.Parse(loginid.Email, "keeper@example.com")
	if _, err := n.Service.Promote(context.Background(), app.PromoteInput{UserID: promotedID, LoginID: lid, Password: "violet-tangerine-42"}); err != nil {
		t.Fatal(err)
	}
	n.Clock.Advance(60 * day)
	if _, err := d.signIn(t, n, false); err != nil { // activity restarts the clock
		t.Fatal(err)
	}
	n.Clock.Advance(89 * day)
	if sum := tick(t, n, false); sum.Expired != 0 {
		t.Fatalf("key guest expired early: %+v", sum)
	}
	n.Clock.Advance(2 * day)
	sum := tick(t, n, false)
	if sum.Expired != 1 || !expired(t, n, id) || sum.Verdicts[0].Reason != domain.ExpiryInactiveKey {
		t.Fatalf("key guest: %+v", sum)
	}
	if _, err := d.signIn(t, n, false); !errors.Is(err, domain.ErrUserExpired) {
		t.Fatalf("expired key signs in: %v", err)
	}
	n.Clock.Advance(400 * day)
	tick(t, n, false)
	if expired(t, n, promotedID) {
		t.Fatal("a promoted user expired")
	}
}

// TestKeyGuestInUseByRefreshIsKept: the SDKs sign a device in with its key
// once and then keep the session alive by refreshing it. Such a guest is
// in use: it is kept while it refreshes, and expires its inactivity period
// after the last refresh, not after the sign-in.
func TestKeyGuestInUseByRefreshIsKept(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	d := newDevice(t)
	ctx := context.Background()
	ch, _, err := n.Service.IssueChallenge(ctx, app.ChallengePurposeAnonymousRequest)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := n.Service.SignInWithKey(ctx, "idstream-dev", d.JWT(t, ch, true, n.Clock.Now()), "", app.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	rt := iss.SessionToken
	for range 12 { // every 10 days for 120 days: inside the idle timeout, past the 90 days of inactivity
		n.Clock.Advance(10 * day)
		st, m := post(t, n, "/oauth2/token", "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}}.Encode(), nil)
		if st != 200 {
			t.Fatalf("refresh: %d %v", st, m)
		}
		rt = m["refresh_token"].(string)
		if sum := tick(t, n, false); sum.Expired != 0 || expired(t, n, iss.UserID) {
			t.Fatalf("a key guest refreshing its session expired: %+v", sum)
		}
	}
	lastUse := n.Clock.Now()
	n.Clock.Advance(89 * day)
	if sum := tick(t, n, false); sum.Expired != 0 {
		t.Fatalf("expired before 90 days without use: %+v", sum)
	}
	n.Clock.Advance(2 * day)
	sum := tick(t, n, false)
	if sum.Expired != 1 || !expired(t, n, iss.UserID) || sum.Verdicts[0].Reason != domain.ExpiryInactiveKey {
		t.Fatalf("90 days after its last use: %+v", sum)
	}
	recs, _, err := n.Store.Load(ctx, n.Store.Subject("user", iss.UserID))
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	var ev domain.AnonymousUserExpired
	if err := json.Unmarshal(last.Data, &ev); err != nil || last.Type != domain.TypeAnonymousUserExpired || !ev.LastActivityAt.Equal(lastUse.UTC()) {
		t.Fatalf("expiry event %s %+v %v, want last_activity_at %s", last.Type, ev, err, lastUse.UTC())
	}
}

// TestReaperLeavesADeletedGuest: the reaper picks guests from the read
// model, which lags the log, and an operator may delete one in between:
// the expiry then writes nothing, and the deletion stays the last event on
// the user's subject (which webhook redaction reads).
func TestReaperLeavesADeletedGuest(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	ctx := context.Background()
	id, _ := webGuest(t, n)
	if _, err := n.Service.DeleteUser(ctx, id, "test", nil, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	n.Clock.Advance(400 * day)
	out, err := n.Service.ExpireAnonymousUser(ctx, id, nil, false, app.Meta{})
	if err != nil || out.Expired {
		t.Fatalf("expiry of a deleted guest: %+v %v", out, err)
	}
	recs, _, err := n.Store.Load(ctx, n.Store.Subject("user", id))
	if err != nil {
		t.Fatal(err)
	}
	if last := recs[len(recs)-1].Type; last != domain.TypeUserDeleted {
		t.Fatalf("the last event of a deleted guest: %s", last)
	}
}

func TestPromotionRacingReaper(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
	}})
	ctx := context.Background()
	const guests = 200
	devs := make([]device, guests)
	ids := make([]string, guests)
	for i := range devs {
		devs[i] = newDevice(t)
		var err error
		if ids[i], err = devs[i].signIn(t, n, true); err != nil {
			t.Fatal(err)
		}
	}
	n.Clock.Advance(91 * day)
	var promoted, expiredN, signedIn int
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range guests {
		wg.Add(2)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				lid, _ := loginid.Parse(loginid.Username, "racer"+uuid.NewString()[:8])
				_, err = n.Service.Promote(ctx, app.PromoteInput{UserID: ids[i], LoginID: lid, Password: "violet-tangerine-42"})
				if err == nil {
					mu.Lock()
					promoted++
					mu.Unlock()
				}
			} else {
				_, err = devs[i].signIn(t, n, false)
				if err == nil {
					mu.Lock()
					signedIn++
					mu.Unlock()
				}
			}
			if err != nil && !errors.Is(err, domain.ErrUserExpired) && !errors.Is(err, domain.ErrNotAnonymous) && !errors.Is(err, app.ErrKeyNotUsable) {
				t.Errorf("guest %d: %v", i, err)
			}
		}()
		go func() {
			defer wg.Done()
			out, err := n.Service.ExpireAnonymousUser(ctx, ids[i], nil, false, app.Meta{})
			if err != nil && !errors.Is(err, domain.ErrStillActive) {
				t.Errorf("expire %d: %v", i, err)
			}
			if out.Expired {
				mu.Lock()
				expiredN++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for i, id := range ids {
		u, _, err := n.Service.LoadUser(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		typ, value := u.LoginID()
		switch {
		case u.Expired() && !u.IsAnonymous():
			t.Fatalf("guest %d both promoted and expired", i)
		case u.Expired() && value != "":
			t.Fatalf("guest %d expired holding login ID %s:%s", i, typ, value)
		case !u.Expired() && u.IsAnonymous() && i%2 == 0:
			t.Fatalf("guest %d neither promoted nor expired", i)
		case u.Expired() && i%2 == 1 && u.LastSignIn().After(n.Clock.Now().Add(-time.Hour)):
			t.Fatalf("guest %d expired right after a sign-in it accepted", i)
		}
	}
	if promoted+expiredN+signedIn != guests {
		t.Fatalf("outcomes: %d promoted, %d signed in, %d expired of %d", promoted, signedIn, expiredN, guests)
	}
	t.Logf("races: %d promoted, %d signed in, %d expired", promoted, signedIn, expiredN)
}

func TestOneReaperAcrossNodes(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Workers: true})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Clock: a.Clock, Workers: true})
	waitHolders := func(want func(a, b bool) bool) {
		t.Helper()
		testenv.WaitFor(t, "the reaper's lease holders", 10*time.Second, func() bool { return want(a.Reaper.Holding(), b.Reaper.Holding()) })
	}
	waitHolders(func(x, y bool) bool { return x != y })
	// Either node reports the lease as held, whichever holds it.
	for _, n := range []*testenv.Node{a, b} {
		if st, err := n.Reaper.Status(context.Background()); err != nil || !st.Running {
			t.Fatalf("status on a node while one holds the lease: %+v %v", st, err)
		}
	}
	holder, other := a, b
	if b.Reaper.Holding() {
		holder, other = b, a
	}
	// Kill the holder's database session, as a node's death would: the
	// lease passes to the other node within the poll interval (2 s).
	if _, err := other.Pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND objid = 7230020 AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`); err != nil {
		t.Fatal(err)
	}
	waitHolders(func(x, y bool) bool { return x != y })
	// Shut one node down: the other holds the lease.
	holder.Close(context.Background())
	waitHolders(func(bool, bool) bool { return other.Reaper.Holding() })
}

// TestReaperKeepsAnOldFormatGuestInUse: a guest created before its first
// session was recorded on the user (user.anonymous.created.v1 without
// session_id) lists no session on its subject. Its cookie session, used
// every few days (activity kept in the bucket only, so the read model's
// last activity stays at the start), keeps it: the reaper gives the expiry
// command the read model's sessions, each decided on its own events.
func TestReaperKeepsAnOldFormatGuestInUse(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	ctx := context.Background()
	userID, sessionID := uuid.NewString(), uuid.NewString()
	token, hash, err := tokens.NewOpaque(rand.Reader, sessionID)
	if err != nil {
		t.Fatal(err)
	}
	now := n.Clock.Now()
	msg := func(kind, id string, ev domain.Event) eventstore.Message {
		data, _ := json.Marshal(ev)
		return eventstore.Message{Subject: n.Store.Subject(kind, id),
			Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: ev.EventType(), OccurredAt: now, Data: data}}
	}
	if _, err := n.Store.Append(ctx,
		msg("user", userID, domain.AnonymousUserCreated{UserID: userID, ClientID: "idstream-dev", CreatedAt: now}),
		msg("session", sessionID, domain.SessionStarted{SessionID: sessionID, UserID: userID, ClientID: "idstream-dev",
			Kind: domain.SessionKindCookie, Method: domain.MethodAnonymous, TokenHash: hash,
			IdleTimeout: domain.SecondsOf(30 * day), Lifetime: domain.SecondsOf(364 * day), StartedAt: now})); err != nil {
		t.Fatal(err)
	}
	cookie := n.Config.Cookie.Name + "=" + token
	use := func() {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, n.URL+"/oauth2/userinfo", nil)
		req.Header.Set("Cookie", cookie)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("the guest's cookie: %d", resp.StatusCode)
		}
	}
	for range 3 {
		n.Clock.Advance(12 * day)
		use()
	}
	n.Clock.Advance(5 * day) // 41 days after the start, 5 after the last use
	if sum := tick(t, n, false); sum.Expired != 0 || expired(t, n, userID) {
		t.Fatalf("an old-format guest in use was expired: %+v", sum)
	}
	use()
	// Unused, it goes as any web guest does: idle 30 days, then the grace.
	n.Clock.Advance(30*day + 25*time.Hour)
	if sum := tick(t, n, false); sum.Expired != 1 || !expired(t, n, userID) {
		t.Fatalf("the old-format guest, unused: %+v", sum)
	}
}
