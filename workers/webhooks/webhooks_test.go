package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/workers/webhooks"
)

const adminKey = "webhook-test-admin-key"

// receiver is a real HTTP server on loopback that records every delivery
// and answers as its behaviour says.
type receiver struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []delivery
	// answer returns the status for the n-th request (from 1) and any
	// Retry-After; nil answers 200.
	answer func(n int) (int, string)
	delay  time.Duration
	n      int
}

type delivery struct {
	header http.Header
	body   []byte
	p      webhooks.Payload
	status int
}

func newReceiver(t *testing.T, answer func(n int) (int, string), delay time.Duration) *receiver {
	r := &receiver{answer: answer, delay: delay}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if r.delay > 0 {
			time.Sleep(r.delay)
		}
		r.mu.Lock()
		r.n++
		status, retryAfter := 200, ""
		if r.answer != nil {
			status, retryAfter = r.answer(r.n)
		}
		var p webhooks.Payload
		_ = json.Unmarshal(body, &p)
		r.got = append(r.got, delivery{header: req.Header.Clone(), body: body, p: p, status: status})
		r.mu.Unlock()
		if retryAfter != "" {
			w.Header().Set("Retry-After", retryAfter)
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

// accepted returns the deliveries answered 2xx, first copy of each event
// first, in arrival order, and how many were duplicates.
func (r *receiver) accepted() (firsts []delivery, dups int, all []delivery) {
	seen := map[string]bool{}
	for _, d := range r.deliveries() {
		if d.status/100 != 2 {
			continue
		}
		all = append(all, d)
		if seen[d.p.ID] {
			dups++
			continue
		}
		seen[d.p.ID] = true
		firsts = append(firsts, d)
	}
	return firsts, dups, all
}

// downReceiver is a receiver that answers 500 until up is called, then
// 204.
func downReceiver(t *testing.T) (r *receiver, up func()) {
	var mu sync.Mutex
	down := true
	r = newReceiver(t, func(int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return 500, ""
		}
		return 204, ""
	}, 0)
	return r, func() { mu.Lock(); down = false; mu.Unlock() }
}

func configure(maxAge time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		testenv.CheapHashes(c)
		c.AdminAPIKeys = []string{adminKey}
		c.Webhooks.InitialBackoff = config.Duration(50 * time.Millisecond)
		c.Webhooks.MaxBackoff = config.Duration(400 * time.Millisecond)
		c.Webhooks.BreakerFailures = 4
		c.Webhooks.BreakerCooldown = config.Duration(time.Second)
		c.Webhooks.MaxRetryAge = config.Duration(maxAge)
	}
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func call(t *testing.T, method, u, ct, body, bearer string) answer {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// createEndpoint registers an endpoint through the admin API and returns
// its id and secret.
func createEndpoint(t *testing.T, base string, spec map[string]any) (string, string) {
	t.Helper()
	raw, _ := json.Marshal(spec)
	a := call(t, http.MethodPost, base+"/admin/webhooks", "application/json", string(raw), adminKey)
	if a.status != 201 {
		t.Fatalf("create endpoint: %d %s", a.status, a.raw)
	}
	testenv.RecordSecret("webhook secret", a.body["secret"].(string))
	return a.body["id"].(string), a.body["secret"].(string)
}

// assertNotInLog reads the whole event log and fails if a secret is in it.
func assertNotInLog(t *testing.T, n *testenv.Node, secrets ...string) {
	t.Helper()
	ctx := context.Background()
	last, err := n.Store.LastSequence(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= last; seq++ {
		rec, err := n.Store.Get(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets {
			if strings.Contains(string(rec.Data), s) || strings.Contains(string(rec.Data), strings.TrimPrefix(s, "whsec_")) {
				t.Fatalf("event %d holds a webhook secret", seq)
			}
		}
	}
}

func getEndpoint(t *testing.T, base, id string) map[string]any {
	t.Helper()
	a := call(t, http.MethodGet, base+"/admin/webhooks/"+id, "", "", adminKey)
	if a.status != 200 {
		t.Fatalf("get endpoint: %d %s", a.status, a.raw)
	}
	return a.body
}

// guest signs a guest up and refreshes its session n times: 2+n events of
// one user, on two subjects. It returns the sub.
func guest(t *testing.T, base string, refreshes int) string {
	t.Helper()
	g := signUp(t, base)
	for range refreshes {
		g.refresh(t, base)
	}
	return g.sub
}

type guestSession struct{ sub, accessToken, refreshToken string }

// signUp makes a guest: user.anonymous.created and session.started.
func signUp(t *testing.T, base string) *guestSession {
	t.Helper()
	a := call(t, http.MethodPost, base+"/api/anonymous_user/signup", "application/json",
		`{"client_id":"idstream-dev","session_type":"refresh_token"}`, "")
	if a.status != 200 {
		t.Fatalf("sign-up: %d %s", a.status, a.raw)
	}
	res := a.body["result"].(map[string]any)
	u := call(t, http.MethodGet, base+"/oauth2/userinfo", "", "", res["access_token"].(string))
	return &guestSession{sub: u.body["sub"].(string), accessToken: res["access_token"].(string), refreshToken: res["refresh_token"].(string)}
}

// refresh rotates the guest's refresh token: session.refreshed.
func (g *guestSession) refresh(t *testing.T, base string) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {g.refreshToken}}
	r := call(t, http.MethodPost, base+"/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), "")
	if r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	g.refreshToken = r.body["refresh_token"].(string)
}

// checkOrder fails unless each user's events arrived (first copies) in log
// order.
func checkOrder(t *testing.T, name string, firsts []delivery) {
	t.Helper()
	last := map[string]uint64{}
	for _, d := range firsts {
		if d.p.Seq <= last[d.p.Sub] {
			t.Fatalf("%s: user %s got seq %d after %d", name, d.p.Sub, d.p.Seq, last[d.p.Sub])
		}
		last[d.p.Sub] = d.p.Seq
	}
}

// verify checks both signatures of a delivery: with the official Standard
// Webhooks library and as an Authgear receiver does (hex HMAC-SHA256 of
// the body under the secret string).
func verify(t *testing.T, d delivery, secret string) {
	t.Helper()
	verifyStandard(t, d, secret)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(d.body)
	want := hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(d.header.Get("x-authgear-body-signature")), []byte(want)) {
		t.Fatalf("Authgear body signature does not verify")
	}
}

// verifyStandard checks the Standard Webhooks signature only (the one
// that carries both secrets during a rotation's overlap).
func verifyStandard(t *testing.T, d delivery, secret string) {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(d.body, d.header); err != nil {
		t.Fatalf("Standard Webhooks verification failed: %v (headers %v)", err, d.header)
	}
	if d.header.Get("webhook-id") != d.p.ID {
		t.Fatalf("webhook-id %q is not the event id %q", d.header.Get("webhook-id"), d.p.ID)
	}
}

func TestWebhookDeliveryToSeveralReceivers(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: configure(time.Hour)})
	ok := newReceiver(t, nil, 0)
	slow := newReceiver(t, nil, 150*time.Millisecond)
	// Fails its first five requests (503 with Retry-After: 1), then recovers.
	// Requests from several lanes run at once, and the breaker counts
	// consecutive results in the order they come back: the first success
	// is answered a moment after the five failures (answers are serialised
	// here), so that the breaker sees the failures in a row whatever order
	// the lanes ran in.
	flaky := newReceiver(t, func(i int) (int, string) {
		if i <= 5 {
			return 503, "1"
		}
		if i == 6 {
			time.Sleep(300 * time.Millisecond)
		}
		return 200, ""
	}, 0)
	gone := newReceiver(t, func(int) (int, string) { return 410, "" }, 0)

	okID, okSecret := createEndpoint(t, n.URL, map[string]any{"url": ok.srv.URL + "/hook?token=abc", "event_types": []string{"*"}})
	slowID, slowSecret := createEndpoint(t, n.URL, map[string]any{"url": slow.srv.URL, "event_types": []string{"user.*"}})
	flakyID, flakySecret := createEndpoint(t, n.URL, map[string]any{"url": flaky.srv.URL, "event_types": []string{"session.*", "user.anonymous.created"}})
	goneID, _ := createEndpoint(t, n.URL, map[string]any{"url": gone.srv.URL, "event_types": []string{"*"}})
	// A client filter that matches nothing: no delivery at all.
	otherID, _ := createEndpoint(t, n.URL, map[string]any{"url": ok.srv.URL + "/other", "event_types": []string{"*"}, "client_ids": []string{"some-other-client"}})

	const users, refreshes = 6, 3
	subs := map[string]bool{}
	for range users {
		subs[guest(t, n.URL, refreshes)] = true
	}
	perUser := 2 + refreshes // created, session started, refreshed × n
	testenv.WaitFor(t, "every event at the ok receiver", 60*time.Second, func() bool {
		f, _, _ := ok.accepted()
		return len(f) >= users*perUser
	})
	testenv.WaitFor(t, "the flaky receiver to catch up", 60*time.Second, func() bool {
		f, _, _ := flaky.accepted()
		return len(f) >= users*perUser
	})
	testenv.WaitFor(t, "the slow receiver", 60*time.Second, func() bool {
		f, _, _ := slow.accepted()
		return len(f) >= users
	})

	okFirsts, _, okAll := ok.accepted()
	checkOrder(t, "ok", okFirsts)
	types := map[string]int{}
	for _, d := range okAll {
		if strings.Contains(string(d.body), "token_hash") || strings.Contains(string(d.body), "password_hash") {
			t.Fatalf("a delivery carries a credential hash: %s", d.body)
		}
		if !subs[d.p.Sub] {
			t.Fatalf("delivery for an unknown sub: %s", d.body)
		}
		if d.p.ClientID != "idstream-dev" || !d.p.IsAnonymous || d.p.Backfill || d.p.Seq == 0 || d.p.OccurredAt.IsZero() {
			t.Fatalf("envelope: %s", d.body)
		}
		verify(t, d, okSecret)
		types[d.p.Type]++
	}
	if types["user.anonymous.created.v1"] != users || types["session.started.v1"] != users || types["session.refreshed.v1"] != users*refreshes {
		t.Fatalf("types delivered: %v", types)
	}
	for _, d := range okFirsts {
		if d.p.Type == "user.anonymous.created.v1" && d.p.AuthgearType != "user.created" {
			t.Fatalf("no Authgear name on %s", d.body)
		}
	}

	slowFirsts, _, _ := slow.accepted()
	checkOrder(t, "slow", slowFirsts)
	for _, d := range slowFirsts {
		if !strings.HasPrefix(d.p.Type, "user.") {
			t.Fatalf("slow receiver asked for user.* and got %s", d.p.Type)
		}
		verify(t, d, slowSecret)
	}

	flakyFirsts, _, _ := flaky.accepted()
	checkOrder(t, "flaky", flakyFirsts)
	for _, d := range flakyFirsts {
		verify(t, d, flakySecret)
	}
	fails := 0
	for _, d := range flaky.deliveries() {
		if d.status == 503 {
			fails++
		}
	}
	if fails != 5 {
		t.Fatalf("flaky receiver: %d failed requests, want 5", fails)
	}

	// 410: the endpoint is disabled, and says why.
	testenv.WaitFor(t, "the 410 endpoint disabled", 20*time.Second, func() bool {
		return getEndpoint(t, n.URL, goneID)["state"] == "disabled"
	})
	if st := getEndpoint(t, n.URL, goneID); !strings.Contains(st["state_reason"].(string), "410") {
		t.Fatalf("disabled endpoint: %v", st)
	}
	if g := len(gone.deliveries()); g < 1 || g > 8 {
		t.Fatalf("the 410 receiver got %d requests (one per lane at most)", g)
	}

	// Status: counts, last errors, lag.
	testenv.WaitFor(t, "the status to show the flaky endpoint's failures and no lag", 20*time.Second, func() bool {
		st := getEndpoint(t, n.URL, flakyID)
		errs, _ := st["last_errors"].([]any)
		lag, _ := st["lag"].(float64)
		return st["failed"].(float64) == 5 && st["delivered"].(float64) >= float64(users*perUser) && len(errs) == 5 && lag == 0
	})
	st := getEndpoint(t, n.URL, flakyID)
	if e := st["last_errors"].([]any)[0].(map[string]any); !strings.Contains(e["error"].(string), "503") {
		t.Fatalf("last error: %v", e)
	}
	if _, has := st["secret"]; has {
		t.Fatal("the secret is shown after creation")
	}
	if st := getEndpoint(t, n.URL, otherID); st["delivered"].(float64) != 0 {
		t.Fatalf("client filter let events through: %v", st)
	}

	// The breaker opened on the flaky endpoint, and said so.
	if !strings.Contains(n.Logs.String(), "circuit open") || !strings.Contains(n.Logs.String(), flakyID) {
		t.Fatal("no log of the flaky endpoint's circuit opening")
	}

	// Metrics per endpoint.
	m := call(t, http.MethodGet, n.URL+"/metrics", "", "", "")
	if !strings.Contains(m.raw, fmt.Sprintf(`idstream_webhook_deliveries_total{endpoint=%q,outcome="delivered"}`, okID)) ||
		!strings.Contains(m.raw, fmt.Sprintf(`idstream_webhook_deliveries_total{endpoint=%q,outcome="failed"}`, flakyID)) ||
		!strings.Contains(m.raw, fmt.Sprintf(`idstream_webhook_circuit_open{endpoint=%q}`, flakyID)) {
		t.Fatalf("metrics lack the per-endpoint deliveries (status %d)", m.status)
	}

	// The admin API lists them all, and secrets are nowhere in the log.
	list := call(t, http.MethodGet, n.URL+"/admin/webhooks", "", "", adminKey)
	if eps, _ := list.body["endpoints"].([]any); len(eps) != 5 || strings.Contains(list.raw, "whsec_") {
		t.Fatalf("list: %s", list.raw)
	}
	_ = slowID
	assertNotInLog(t, n, okSecret, slowSecret, flakySecret)
}

func TestWebhookRotationSignsWithBothSecrets(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: configure(time.Hour)})
	r := newReceiver(t, nil, 0)
	id, old := createEndpoint(t, n.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"user.anonymous.created"}})
	guest(t, n.URL, 0)
	testenv.WaitFor(t, "the first delivery", 30*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == 1 })
	a := call(t, http.MethodPost, n.URL+"/admin/webhooks/"+id+"/rotate_secret", "application/json", `{"overlap_seconds":3600}`, adminKey)
	if a.status != 200 || a.body["secret"] == old {
		t.Fatalf("rotate: %d %s", a.status, a.raw)
	}
	fresh := a.body["secret"].(string)
	// The runner picks the rotation up at its next poll (about a second):
	// guests are created until a delivery is signed twice, which must come.
	var last int
	testenv.WaitFor(t, "a delivery signed with both secrets", 30*time.Second, func() bool {
		f, _, _ := r.accepted()
		if k := len(f); k > 1 && len(strings.Fields(f[k-1].header.Get("webhook-signature"))) == 2 {
			last = k - 1
			return true
		}
		want := len(f) + 1
		guest(t, n.URL, 0)
		testenv.WaitFor(t, "the next delivery", 30*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) >= want })
		return false
	})
	f, _, _ := r.accepted()
	verify(t, f[0], old)
	verify(t, f[last], fresh)
	verifyStandard(t, f[last], old)
	// A secret that was never the endpoint's does not verify.
	other, _ := webhooks.NewSecret(rand.Reader)
	if wh, _ := standardwebhooks.NewWebhook(other); wh.Verify(f[last].body, f[last].header) == nil {
		t.Fatal("a foreign secret verified")
	}
}

func TestWebhookPoisonQueueAndReplay(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: configure(1500 * time.Millisecond)})
	r, up := downReceiver(t)
	id, secret := createEndpoint(t, n.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"user.anonymous.created"}})
	const users = 3
	for range users {
		guest(t, n.URL, 0)
	}
	testenv.WaitFor(t, "every delivery dead-lettered", 60*time.Second, func() bool {
		return getEndpoint(t, n.URL, id)["dead_letters"].(float64) == users
	})
	dl := call(t, http.MethodGet, n.URL+"/admin/webhooks/"+id+"/dead_letters?limit=2", "", "", adminKey)
	page, _ := dl.body["dead_letters"].([]any)
	if dl.status != 200 || len(page) != 2 || dl.body["next_cursor"] == nil {
		t.Fatalf("dead letters page: %s", dl.raw)
	}
	first := page[0].(map[string]any)
	// The reason is the receiver's last answer; an event whose every
	// attempt fell while the breaker was open (the others' failures opened
	// it) never reached the receiver, and says so.
	if reason := first["reason"].(string); first["type"] != "user.anonymous.created.v1" ||
		!strings.Contains(reason, "500") && !strings.Contains(reason, "circuit breaker is open") {
		t.Fatalf("dead letter: %v", first)
	}
	all := call(t, http.MethodGet, n.URL+"/admin/webhooks/"+id+"/dead_letters?limit=10", "", "", adminKey)
	answered := 0
	for _, d := range all.body["dead_letters"].([]any) {
		if strings.Contains(d.(map[string]any)["reason"].(string), "receiver answered 500") {
			answered++
		}
	}
	if answered == 0 {
		t.Fatalf("no dead letter names the receiver's answer: %s", all.raw)
	}
	up()
	// Replay one, then the rest.
	a := call(t, http.MethodPost, fmt.Sprintf("%s/admin/webhooks/%s/dead_letters/%d/replay", n.URL, id, int64(first["id"].(float64))), "", "", adminKey)
	if a.status != 202 {
		t.Fatalf("replay: %d %s", a.status, a.raw)
	}
	testenv.WaitFor(t, "the replayed delivery", 30*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == 1 })
	f, _, _ := r.accepted()
	if f[0].p.ID != first["event_id"] {
		t.Fatalf("replayed %s, want %s", f[0].p.ID, first["event_id"])
	}
	verify(t, f[0], secret)
	if a := call(t, http.MethodPost, fmt.Sprintf("%s/admin/webhooks/%s/dead_letters/%d/replay", n.URL, id, int64(first["id"].(float64))), "", "", adminKey); a.status != 404 {
		t.Fatalf("replaying a replayed dead letter: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodPost, fmt.Sprintf("%s/admin/webhooks/%s/dead_letters/0/replay", n.URL, id), "", "", adminKey); a.status != 404 {
		t.Fatalf("replaying dead letter 0: %d %s", a.status, a.raw)
	}
	a = call(t, http.MethodPost, n.URL+"/admin/webhooks/"+id+"/dead_letters/replay", "", "", adminKey)
	if a.status != 202 || a.body["replayed"].(float64) != users-1 {
		t.Fatalf("replay all: %d %s", a.status, a.raw)
	}
	testenv.WaitFor(t, "every replayed delivery", 30*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == users })
	// Each replay carries the webhook-id its failed attempts carried: every
	// request of an event, failed or replayed, has the event's id as its
	// webhook-id, and every event that failed was delivered by a replay.
	// (An event may also have been dead-lettered with no request at all,
	// while the breaker was open.)
	failedIDs := map[string]bool{}
	for _, d := range r.deliveries() {
		if d.header.Get("webhook-id") != d.p.ID {
			t.Fatalf("webhook-id %s on a delivery of event %s", d.header.Get("webhook-id"), d.p.ID)
		}
		if d.status == 500 {
			failedIDs[d.p.ID] = true
		}
	}
	f, _, _ = r.accepted()
	replayed := map[string]bool{}
	for _, d := range f {
		replayed[d.p.ID] = true
	}
	for id := range failedIDs {
		if !replayed[id] {
			t.Fatalf("event %s failed and was never delivered by a replay", id)
		}
	}
	testenv.WaitFor(t, "no dead letters left", 10*time.Second, func() bool {
		return getEndpoint(t, n.URL, id)["dead_letters"].(float64) == 0
	})
	// The counters reach the endpoint's row by a flush every second (a
	// failed flush is added to the next): wait for it, bounded.
	testenv.WaitFor(t, "a dead-lettered count of every user's event", 15*time.Second, func() bool {
		return getEndpoint(t, n.URL, id)["dead_lettered"].(float64) == users
	})
}

// TestWebhookDeadLettersFullLoseNothing: once an endpoint has as many dead
// letters as it may keep, a delivery that gives up is neither dropped nor
// makes room by dropping an older one: it is tried again, and delivered
// when the receiver is back; the dead letters kept are all replayed.
func TestWebhookDeadLettersFullLoseNothing(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		configure(1500 * time.Millisecond)(c)
		c.Webhooks.MaxDeadLetters = 2
	}})
	r, up := downReceiver(t)
	id, _ := createEndpoint(t, n.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"user.anonymous.created"}})
	subs := map[string]bool{}
	for range 3 {
		subs[guest(t, n.URL, 0)] = true
	}
	testenv.WaitFor(t, "two dead letters", 60*time.Second, func() bool {
		return getEndpoint(t, n.URL, id)["dead_letters"].(float64) == 2
	})
	time.Sleep(3 * time.Second) // past the third's retry window (1.5 s): it would have been dead-lettered by now
	if got := getEndpoint(t, n.URL, id)["dead_letters"].(float64); got != 2 {
		t.Fatalf("%v dead letters kept, the limit is 2", got)
	}
	up()
	testenv.WaitFor(t, "the delivery that found the dead letters full", 30*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == 1 })
	if a := call(t, http.MethodPost, n.URL+"/admin/webhooks/"+id+"/dead_letters/replay", "", "", adminKey); a.status != 202 || a.body["replayed"].(float64) != 2 {
		t.Fatalf("replay all: %d %s", a.status, a.raw)
	}
	testenv.WaitFor(t, "every user's event", 30*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == 3 })
	f, _, _ := r.accepted()
	for _, d := range f {
		if !subs[d.p.Sub] {
			t.Fatalf("a delivery of an unknown user: %+v", d.p)
		}
		delete(subs, d.p.Sub)
	}
	if len(subs) != 0 {
		t.Fatalf("never delivered: %v", subs)
	}
}

// TestWebhookDeadLetterLimitNeverDropsWhatIsHeld: a node started with a
// lower max_dead_letters than an endpoint holds keeps the higher limit (the
// server would drop what is over it); once they are replayed, the lower
// one takes.
func TestWebhookDeadLetterLimitNeverDropsWhatIsHeld(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	limit := func(max int) testenv.NodeOptions {
		return testenv.NodeOptions{DatabaseURL: dbURL, Configure: func(c *config.Config) {
			configure(1500 * time.Millisecond)(c)
			c.Webhooks.MaxDeadLetters = max
		}}
	}
	streamLimit := func(n *testenv.Node) int64 {
		st, err := n.Store.JetStream().Stream(context.Background(), "IDSTREAM_WEBHOOK_DEAD")
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config.MaxMsgsPerSubject
	}
	r, up := downReceiver(t)
	a := testenv.StartNode(t, ns, limit(5))
	id, _ := createEndpoint(t, a.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"user.anonymous.created"}})
	for range 4 {
		guest(t, a.URL, 0)
	}
	testenv.WaitFor(t, "four dead letters", 60*time.Second, func() bool { return getEndpoint(t, a.URL, id)["dead_letters"].(float64) == 4 })
	a.Close(context.Background())

	b := testenv.StartNode(t, ns, limit(2))
	if got := getEndpoint(t, b.URL, id)["dead_letters"].(float64); got != 4 || streamLimit(b) != 5 {
		t.Fatalf("after a start with a lower limit: %v dead letters, stream limit %d", got, streamLimit(b))
	}
	up()
	if a := call(t, http.MethodPost, b.URL+"/admin/webhooks/"+id+"/dead_letters/replay", "", "", adminKey); a.status != 202 || a.body["replayed"].(float64) != 4 {
		t.Fatalf("replay all: %d %s", a.status, a.raw)
	}
	testenv.WaitFor(t, "no dead letters left", 30*time.Second, func() bool { return getEndpoint(t, b.URL, id)["dead_letters"].(float64) == 0 })
	b.Close(context.Background())
	if c := testenv.StartNode(t, ns, limit(2)); streamLimit(c) != 2 {
		t.Fatalf("the lower limit once nothing is over it: %d", streamLimit(c))
	}
}

// TestWebhookDeletedUsersRetriesAndReplaysAreRedacted: a delivery built
// before its user was deleted goes out without the user's data when it is
// sent after the deletion: a retry (the receiver was down), and a replay of
// a dead letter (whose stored body was built before).
func TestWebhookDeletedUsersRetriesAndReplaysAreRedacted(t *testing.T) {
	for _, tc := range []struct {
		name   string
		maxAge time.Duration
		replay bool
	}{{"retry", time.Hour, false}, {"replay", 1500 * time.Millisecond, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := testenv.StartNATS(t)
			dbURL, _ := testenv.Database(t)
			n := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: configure(tc.maxAge), DatabaseURL: dbURL})
			r, up := downReceiver(t)
			id, secret := createEndpoint(t, n.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"session.started"}})
			g := signUp(t, n.URL)
			testenv.WaitFor(t, "a failed attempt", 30*time.Second, func() bool { return len(r.deliveries()) > 0 })
			if tc.replay {
				testenv.WaitFor(t, "the dead letter", 30*time.Second, func() bool {
					return getEndpoint(t, n.URL, id)["dead_letters"].(float64) == 1
				})
			}
			if a := call(t, http.MethodDelete, n.URL+"/admin/users/"+g.sub, "", "", adminKey); a.status/100 != 2 {
				t.Fatalf("delete: %d %s", a.status, a.raw)
			}
			if tc.replay {
				// A node that has not read the deletion (started after its
				// endpoint's readers passed it): the replay reads it from
				// the log.
				testenv.WaitFor(t, "the endpoint past the deletion", 30*time.Second, func() bool {
					lag, ok := getEndpoint(t, n.URL, id)["lag"].(float64)
					return ok && lag == 0
				})
				n.Close(context.Background())
				n = testenv.StartNode(t, ns, testenv.NodeOptions{Configure: configure(tc.maxAge), DatabaseURL: dbURL})
			}
			up()
			if tc.replay {
				if a := call(t, http.MethodPost, n.URL+"/admin/webhooks/"+id+"/dead_letters/replay", "", "", adminKey); a.status != 202 {
					t.Fatalf("replay: %d %s", a.status, a.raw)
				}
			}
			testenv.WaitFor(t, "the delivery", 30*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == 1 })
			f, _, _ := r.accepted()
			verify(t, f[0], secret)
			verifyStandard(t, f[0], secret)
			if !f[0].p.Redacted || string(f[0].p.Data) != "{}" || f[0].p.Sub != g.sub || f[0].p.Type != "session.started.v1" {
				t.Fatalf("%s after the user's deletion: %s", tc.name, f[0].body)
			}
			for _, d := range r.deliveries() {
				if d.status == 500 && d.p.Redacted {
					t.Fatalf("an attempt before the deletion was redacted: %s", d.body)
				}
			}
		})
	}
}

// TestWebhookRedactionWithTheReaderHeldBack: a receiver down long enough
// that the endpoint has as many deliveries unacknowledged as its consumer
// allows (1,024): the reader gets nothing more, the user's deletion
// included, and the retry after it asks the log.
func TestWebhookRedactionWithTheReaderHeldBack(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: configure(time.Hour)})
	r, up := downReceiver(t)
	createEndpoint(t, n.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"session.started"}})
	g := signUp(t, n.URL)
	testenv.WaitFor(t, "a failed attempt", 30*time.Second, func() bool { return len(r.deliveries()) > 0 })
	for range 1030 { // behind the user's first event: past the consumer's 1,024
		g.refresh(t, n.URL)
	}
	if a := call(t, http.MethodDelete, n.URL+"/admin/users/"+g.sub, "", "", adminKey); a.status/100 != 2 {
		t.Fatalf("delete: %d %s", a.status, a.raw)
	}
	time.Sleep(2 * time.Second) // the body is older than a fresh one
	up()
	testenv.WaitFor(t, "the delivery", 60*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) >= 1 })
	if f, _, _ := r.accepted(); !f[0].p.Redacted || string(f[0].p.Data) != "{}" {
		t.Fatalf("sent after the user's deletion with its data: %s", f[0].body)
	}
}

// TestWebhookDeliveringNodeLost: two nodes share the database and NATS;
// the one delivering is stopped mid-burst, the other takes the lease and
// goes on from the consumer's ack floor. Nothing is lost, no user's events
// are reordered, and a duplicate carries the same webhook-id and body.
func TestWebhookDeliveringNodeLost(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: configure(time.Hour), DatabaseURL: dbURL})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: configure(time.Hour), DatabaseURL: dbURL, Clock: a.Clock})
	r := newReceiver(t, nil, 20*time.Millisecond)
	_, secret := createEndpoint(t, a.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"*"}})
	var holder, other *testenv.Node
	testenv.WaitFor(t, "one node to hold the webhook lease", 20*time.Second, func() bool {
		switch {
		case a.Webhooks.Delivering() && !b.Webhooks.Delivering():
			holder, other = a, b
		case b.Webhooks.Delivering() && !a.Webhooks.Delivering():
			holder, other = b, a
		}
		return holder != nil
	})
	// Every user's events straddle the loss: sign-ups first, then the
	// refreshes round by round.
	const users, refreshes = 12, 4
	var gs []*guestSession
	for range users {
		gs = append(gs, signUp(t, other.URL))
	}
	for round := range refreshes {
		for _, g := range gs {
			g.refresh(t, other.URL)
		}
		if round == 1 {
			testenv.WaitFor(t, "deliveries under way", 20*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) > 5 })
			// Lost, not stopped: its NATS connection goes first, so none of
			// what it has in flight is acknowledged, then the process.
			holder.NATS.Close()
			holder.Close(context.Background())
			t.Logf("lost the delivering node after %d deliveries", len(r.deliveries()))
		}
	}
	want := users * (2 + refreshes)
	testenv.WaitFor(t, "every event delivered by the other node", 90*time.Second, func() bool {
		f, _, _ := r.accepted()
		return len(f) >= want
	})
	firsts, dups, all := r.accepted()
	if len(firsts) != want {
		t.Fatalf("%d distinct events delivered, want %d", len(firsts), want)
	}
	checkOrder(t, "after failover", firsts)
	bodies := map[string]string{}
	for _, d := range all {
		verify(t, d, secret)
		if b, seen := bodies[d.p.ID]; seen && b != string(d.body) {
			t.Fatalf("a duplicate of %s differs: %s vs %s", d.p.ID, b, d.body)
		}
		bodies[d.p.ID] = string(d.body)
	}
	t.Logf("failover: %d events, %d duplicates (same webhook-id and body)", len(firsts), dups)
}

// TestWebhookPayloadOfPromotionMergeDeletionAndBackfill: an endpoint made
// after the fact with start_from beginning gets the whole history marked
// backfill; a promotion names the guest and the user, a merge the guest
// and the account it went into, a deletion is a tombstone, and no
// password hash goes out.
func TestWebhookPayloadOfPromotionMergeDeletionAndBackfill(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		configure(time.Hour)(c)
		c.Promotion.ConflictPolicy = "login"
	}})
	const pw = "violet-tangerine-42"
	promote := func(g *guestSession, loginID string) answer {
		return call(t, http.MethodPost, n.URL+"/api/anonymous_user/promote", "application/json",
			fmt.Sprintf(`{"login_id":%q,"password":%q}`, loginID, pw), g.accessToken)
	}
	a := signUp(t, n.URL)
	if r := promote(a, "ada@example.com"); r.status != 200 {
		t.Fatalf("promote: %d %s", r.status, r.raw)
	}
	b := signUp(t, n.URL)
	if r := promote(b, "ada@example.com"); r.status != 200 {
		t.Fatalf("promote into an existing account (merge): %d %s", r.status, r.raw)
	}
	testenv.Settle(t, n.Pool, n.Store, 30*time.Second)
	if r := call(t, http.MethodDelete, n.URL+"/admin/users/"+a.sub, "", "", adminKey); r.status/100 != 2 {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	rec := newReceiver(t, nil, 0)
	id, secret := createEndpoint(t, n.URL, map[string]any{"url": rec.srv.URL, "event_types": []string{"user.*"}, "start_from": "beginning"})
	created := getEndpoint(t, n.URL, id)["created_seq"].(float64)
	after := signUp(t, n.URL)
	// Every user.* event of the log, the history and the new guest's.
	want := 0
	last, err := n.Store.LastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= last; seq++ {
		if r, err := n.Store.Get(context.Background(), seq); err == nil && strings.HasPrefix(r.Type, "user.") {
			want++
		}
	}
	testenv.WaitFor(t, "the history and the new guest", 30*time.Second, func() bool {
		f, _, _ := rec.accepted()
		return len(f) >= want
	})
	f, _, _ := rec.accepted()
	checkOrder(t, "backfill", f)
	byType := map[string][]webhooks.Payload{}
	for _, d := range f {
		verify(t, d, secret)
		if strings.Contains(string(d.body), "password_hash") || strings.Contains(string(d.body), "argon2") {
			t.Fatalf("a password hash went out: %s", d.body)
		}
		if d.p.Backfill != (float64(d.p.Seq) <= created) {
			t.Fatalf("backfill mark wrong on seq %d (created at %v): %s", d.p.Seq, created, d.body)
		}
		byType[d.p.Type] = append(byType[d.p.Type], d.p)
	}
	pr := byType["user.promoted.v2"]
	if len(pr) != 1 || pr[0].AnonymousUser == nil || pr[0].AnonymousUser.Sub != a.sub || pr[0].User.Sub != a.sub ||
		pr[0].IsAnonymous || pr[0].AuthgearType != "user.anonymous.promoted" || pr[0].Sub != a.sub {
		t.Fatalf("promotion payload: %+v", pr)
	}
	// The promoted user was deleted before the endpoint was made: its
	// history goes out as envelopes, without the login ID or any data.
	for _, d := range f {
		if d.p.Sub == a.sub && d.p.Type != "user.deleted.v1" && (!d.p.Redacted || string(d.p.Data) != "{}") {
			t.Fatalf("a deleted user's %s went out with its data: %s", d.p.Type, d.body)
		}
		if d.p.Sub != a.sub && d.p.Redacted {
			t.Fatalf("a user who was not deleted had %s redacted: %s", d.p.Type, d.body)
		}
	}
	for _, d := range rec.deliveries() {
		if strings.Contains(string(d.body), "ada@example.com") && strings.Contains(string(d.body), a.sub) {
			t.Fatalf("the deleted user's login ID went out: %s", d.body)
		}
	}
	mg := byType["user.anonymous.merged.v1"]
	if len(mg) != 1 || mg[0].AnonymousUser.Sub != b.sub || mg[0].User.Sub != a.sub || mg[0].Sub != b.sub {
		t.Fatalf("merge payload: %+v", mg)
	}
	del := byType["user.deleted.v1"]
	if len(del) != 1 || !del[0].Tombstone || string(del[0].Data) != "{}" || del[0].Sub != a.sub || del[0].AuthgearType != "user.deleted" ||
		!strings.HasPrefix(del[0].Actor, "admin-key:") {
		t.Fatalf("deletion payload: %+v", del)
	}
	if len(byType["user.password.set.v1"]) == 0 {
		t.Fatalf("no password event delivered (types %v)", keys(byType))
	}
	if len(f) != want {
		t.Fatalf("%d events delivered, the log has %d user events", len(f), want)
	}
	var fresh []webhooks.Payload
	for _, d := range f {
		if d.p.Sub == after.sub {
			fresh = append(fresh, d.p)
		}
	}
	if len(fresh) != 1 || fresh[0].Backfill || !fresh[0].IsAnonymous || fresh[0].Type != "user.anonymous.created.v1" {
		t.Fatalf("the event after creation: %+v", fresh)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func specOf(url string, types ...string) webhooks.Spec {
	return webhooks.Spec{URL: &url, EventTypes: &types}
}

// TestWebhookGoneThenReenabledAndPaused: the event that got a 410 is the
// first delivered once the operator enables the endpoint again; a paused
// endpoint keeps its position (the log runs ahead of it) and resumes there.
func TestWebhookGoneThenReenabledAndPaused(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: configure(time.Hour)})
	r := newReceiver(t, func(i int) (int, string) {
		if i == 1 {
			return 410, ""
		}
		return 200, ""
	}, 0)
	id, _ := createEndpoint(t, n.URL, map[string]any{"url": r.srv.URL, "event_types": []string{"user.anonymous.created"}})
	first := signUp(t, n.URL)
	testenv.WaitFor(t, "the endpoint disabled by the 410", 20*time.Second, func() bool {
		return getEndpoint(t, n.URL, id)["state"] == "disabled"
	})
	patch := func(state string) {
		a := call(t, http.MethodPatch, n.URL+"/admin/webhooks/"+id, "application/json", `{"state":"`+state+`"}`, adminKey)
		if a.status != 200 || a.body["state"] != state {
			t.Fatalf("patch %s: %d %s", state, a.status, a.raw)
		}
	}
	patch("enabled")
	testenv.WaitFor(t, "the 410'd event delivered after re-enabling", 20*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == 1 })
	f, _, _ := r.accepted()
	if all := r.deliveries(); f[0].p.Sub != first.sub || all[0].header.Get("webhook-id") != f[0].header.Get("webhook-id") {
		t.Fatalf("after re-enabling got %s, want the event that got the 410", f[0].p.Sub)
	}
	patch("paused")
	testenv.WaitFor(t, "the paused endpoint's runner stopped", 20*time.Second, func() bool { return !n.Webhooks.Running(id) })
	second := signUp(t, n.URL)
	testenv.WaitFor(t, "the paused endpoint to fall behind the log", 20*time.Second, func() bool {
		lag, _ := getEndpoint(t, n.URL, id)["lag"].(float64)
		return lag > 0
	})
	if f, _, _ := r.accepted(); len(f) != 1 {
		t.Fatalf("a paused endpoint delivered: %d", len(f))
	}
	patch("enabled")
	testenv.WaitFor(t, "the event written while paused", 20*time.Second, func() bool { f, _, _ := r.accepted(); return len(f) == 2 })
	if f, _, _ := r.accepted(); f[1].p.Sub != second.sub {
		t.Fatalf("after the pause got %s", f[1].p.Sub)
	}
	if bad := call(t, http.MethodPatch, n.URL+"/admin/webhooks/"+id, "application/json", `{"state":"disabled"}`, adminKey); bad.status != 400 || !strings.Contains(bad.raw, "InvalidWebhookEndpoint") {
		t.Fatalf("state disabled by hand: %d %s", bad.status, bad.raw)
	}
	if a := call(t, http.MethodGet, n.URL+"/admin/webhooks/00000000-0000-0000-0000-000000000000", "", "", adminKey); a.status != 404 || !strings.Contains(a.raw, "WebhookEndpointNotFound") {
		t.Fatalf("unknown endpoint: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodDelete, n.URL+"/admin/webhooks/"+id, "", "", adminKey); a.status != 204 {
		t.Fatalf("delete: %d %s", a.status, a.raw)
	}
	if a := call(t, http.MethodGet, n.URL+"/admin/webhooks/"+id, "", "", adminKey); a.status != 404 {
		t.Fatalf("deleted endpoint: %d", a.status)
	}
}
