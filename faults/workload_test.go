package faults_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

const password = "violet-tangerine-42"

// cheap keeps argon2id at its minimum cost: the tests hash a lot.
func cheap(c *config.Config) {
	testenv.CheapHashes(c)
	// Every promotion of the workload comes from one address.
	off := 0
	c.RateLimits.SignInPerIP.Burst = &off
}

// ledger records what the server acknowledged (2xx) and how the rest failed.
type ledger struct {
	mu        sync.Mutex
	signups   map[string]bool   // sub
	refreshes map[string]int    // session id → acknowledged refreshes
	promoted  map[string]string // sub → login ID
	failures  map[string]int    // "op status reason" → count
	unclean   []string          // failures that were not clean
	ackTimes  []time.Time       // when each sign-up was acknowledged
	ops       atomic.Int64
	logins    atomic.Int64 // numbers login IDs across runs
}

func newLedger() *ledger {
	return &ledger{signups: map[string]bool{}, refreshes: map[string]int{}, promoted: map[string]string{}, failures: map[string]int{}}
}

type answer struct {
	status int
	body   map[string]any
	raw    string
}

func call(hc *http.Client, method, u, ct, body, bearer string) (answer, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a, nil
}

// fail records a failed operation; a failure is clean when it is a 503 or
// a 409 with a stable reason (the server said what happened).
func (l *ledger) fail(op string, a answer, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures[op+" transport"]++
		l.unclean = append(l.unclean, op+": "+err.Error())
		return
	}
	reason := ""
	if e, ok := a.body["error"].(map[string]any); ok {
		reason, _ = e["reason"].(string)
	} else {
		reason, _ = a.body["reason"].(string)
	}
	l.failures[fmt.Sprintf("%s %d %s", op, a.status, reason)]++
	if reason == "" || (a.status != 503 && a.status != 409) {
		l.unclean = append(l.unclean, fmt.Sprintf("%s: %d %s", op, a.status, a.raw))
	}
}

func claims(at string) map[string]any {
	parts := strings.Split(at, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c map[string]any
	_ = json.Unmarshal(raw, &c)
	return c
}

// run drives guests through sign-up, two refreshes and a promotion, in
// workers, until ctx ends. An operation whose outcome is unknown (a failed
// refresh may have rotated the token) ends that guest; the next starts.
func (l *ledger) run(ctx context.Context, base string, workers int) {
	hc := &http.Client{Timeout: 15 * time.Second}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				l.ops.Add(1)
				a, err := call(hc, http.MethodPost, base+"/api/anonymous_user/signup", "application/json",
					`{"client_id":"idstream-dev","session_type":"refresh_token"}`, "")
				if err != nil || a.status != 200 {
					l.fail("signup", a, err)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				res, _ := a.body["result"].(map[string]any)
				at, _ := res["access_token"].(string)
				rt, _ := res["refresh_token"].(string)
				c := claims(at)
				sub, _ := c["sub"].(string)
				sid, _ := c["sid"].(string)
				l.mu.Lock()
				l.signups[sub] = true
				l.ackTimes = append(l.ackTimes, time.Now())
				l.mu.Unlock()
				ok := true
				for range 2 {
					l.ops.Add(1)
					a, err := call(hc, http.MethodPost, base+"/oauth2/token", "application/x-www-form-urlencoded",
						url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}}.Encode(), "")
					if err != nil || a.status != 200 {
						l.fail("refresh", a, err)
						ok = false
						break
					}
					rt, _ = a.body["refresh_token"].(string)
					at, _ = a.body["access_token"].(string)
					l.mu.Lock()
					l.refreshes[sid]++
					l.mu.Unlock()
				}
				if !ok {
					continue
				}
				l.ops.Add(1)
				login := fmt.Sprintf("member%d@example.com", l.logins.Add(1))
				a, err = call(hc, http.MethodPost, base+"/api/anonymous_user/promote", "application/json",
					fmt.Sprintf(`{"login_id":%q,"password":%q}`, login, password), at)
				if err != nil || a.status != 200 {
					l.fail("promote", a, err)
					continue
				}
				l.mu.Lock()
				l.promoted[sub] = login
				l.mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// waitCaughtUp waits until every projection has applied the whole log.
func waitCaughtUp(t *testing.T, n *testenv.Node, within time.Duration) {
	t.Helper()
	testenv.Settle(t, n.Pool, n.Store, within)
}

// verify checks every acknowledged operation against the log and the read
// models, and that nothing is half-written; it returns how many
// acknowledged operations are missing (must be 0).
func (l *ledger) verify(t *testing.T, n *testenv.Node) int {
	t.Helper()
	ctx := context.Background()
	lost := 0
	for sub := range l.signups {
		u, _, err := n.Service.LoadUser(ctx, sub)
		if err != nil || !u.Exists() {
			t.Errorf("acknowledged sign-up %s is not in the log (%v)", sub, err)
			lost++
			continue
		}
		var rows int
		if err := n.Pool.QueryRow(ctx, `SELECT count(*) FROM users WHERE id = $1`, sub).Scan(&rows); err != nil || rows != 1 {
			t.Errorf("acknowledged sign-up %s is not in the read model", sub)
			lost++
		}
	}
	for sid, want := range l.refreshes {
		var got int
		if err := n.Pool.QueryRow(ctx, `SELECT refresh_count FROM sessions WHERE id = $1`, sid).Scan(&got); err != nil || got < want {
			t.Errorf("session %s: %d refreshes in the read model, %d acknowledged (%v)", sid, got, want, err)
			lost++
		}
	}
	for sub, login := range l.promoted {
		u, _, err := n.Service.LoadUser(ctx, sub)
		if _, id := u.LoginID(); err != nil || u.IsAnonymous() || id != login || u.PasswordHash() == "" {
			t.Errorf("acknowledged promotion of %s to %s is not in the log", sub, login)
			lost++
		}
		var rows int
		if err := n.Pool.QueryRow(ctx, `SELECT count(*) FROM users u JOIN identities i ON i.user_id = u.id
			WHERE u.id = $1 AND NOT u.is_anonymous AND u.login_id = $2 AND i.type = 'email'`, sub, login).Scan(&rows); err != nil || rows != 1 {
			t.Errorf("acknowledged promotion of %s is not in the read model", sub)
			lost++
		}
	}
	// Nothing half-written: every regular user has its login ID claim and
	// its identity, every guest has none, and every user has a session.
	var bad int
	if err := n.Pool.QueryRow(ctx, `SELECT count(*) FROM users u WHERE
		(NOT u.is_anonymous AND NOT EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id AND i.type = 'email'))
		OR (u.is_anonymous AND (u.login_id IS NOT NULL OR EXISTS (SELECT 1 FROM identities i WHERE i.user_id = u.id AND i.type = 'email')))
		OR NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id)`).Scan(&bad); err != nil || bad != 0 {
		t.Errorf("%d users are half-written (%v)", bad, err)
	}
	return lost
}

func (l *ledger) report(t *testing.T, lost int) {
	t.Helper()
	keys := make([]string, 0, len(l.failures))
	for k := range l.failures {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var fs []string
	for _, k := range keys {
		fs = append(fs, fmt.Sprintf("%s ×%d", k, l.failures[k]))
	}
	refreshes := 0
	for _, n := range l.refreshes {
		refreshes += n
	}
	t.Logf("operations %d; acknowledged: %d sign-ups, %d refreshes, %d promotions; acknowledged but lost: %d; failures: %s",
		l.ops.Load(), len(l.signups), refreshes, len(l.promoted), lost, strings.Join(fs, ", "))
	for i, u := range l.unclean {
		if i == 5 {
			break
		}
		t.Errorf("unclean failure: %s", u)
	}
}

// lastAck is when the latest sign-up was acknowledged.
func (l *ledger) lastAck() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var last time.Time
	for _, at := range l.ackTimes {
		if at.After(last) {
			last = at
		}
	}
	return last
}

// longestGap is the longest time without an acknowledged sign-up between
// from and until (the failover time when from is the moment of a fault).
func (l *ledger) longestGap(from, until time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := append([]time.Time(nil), l.ackTimes...)
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	prev, gap := from, time.Duration(0)
	for _, at := range ts {
		if at.Before(from) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	// The time since the last acknowledgement is a gap too: with none
	// after from, the gap is all of it.
	return max(gap, until.Sub(prev))
}
