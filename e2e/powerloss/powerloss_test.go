package powerloss

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/testenv/lazyfs"
	"github.com/idstream/idstream/tokens"
)

// The suite's scenarios: a few seconds each. IDSTREAM_POWERLOSS_CUTS=n runs
// n power cuts per scenario instead (the long run of BENCHMARKS.md).

// With fsync before every acknowledgement, no acknowledged sign-up, refresh
// or promotion is lost, whether the power goes at a random moment under
// load or on a write of the stream's message blocks while grouped atomic
// batches are being committed; nor is any command half-written.
func TestPowerLossKeepsAcknowledgedWrites(t *testing.T) {
	for _, mode := range []cutMode{cutTimed, cutMidBatch, cutMidBatchOnDisk} {
		t.Run(mode.String(), func(t *testing.T) {
			r := runScenario(t, "always", mode, cuts(t, 1))
			t.Logf("%s", r)
			if r.acked() == 0 {
				t.Fatal("no operation was acknowledged before the cut: the scenario proves nothing")
			}
			if len(r.lost) > 0 {
				t.Fatalf("%d acknowledged writes lost in %d power cuts, e.g.:\n%s", len(r.lost), r.cuts, strings.Join(first(r.lost, 20), "\n"))
			}
			if len(r.torn) > 0 {
				t.Fatalf("%d commands half-written or read-model rows without their events after a power cut, e.g.:\n%s", len(r.torn), strings.Join(first(r.torn, 20), "\n"))
			}
			// Each cut that left a batch's first messages on disk left
			// nats-server a partial batch to finish from its staging store:
			// the cut was where it meant to be.
			if r.rolledForward < r.onDiskCuts {
				t.Fatalf("%d cuts left part of a batch on disk, yet nats-server completed %d partial batches at restart", r.onDiskCuts, r.rolledForward)
			}
		})
	}
}

// The same load on a server that flushes every two minutes
// (IDSTREAM_NATS_SYNC=2m) loses acknowledged writes at a power cut, and the
// test sees it: it can tell an fsynced write from one in the page cache,
// which killing the process alone cannot.
func TestPowerLossDetectsLazyFsync(t *testing.T) {
	r := runScenario(t, "2m", cutTimed, 1)
	t.Logf("%s", r)
	if r.acked() == 0 {
		t.Fatal("no operation was acknowledged before the cut")
	}
	if len(r.lost) == 0 {
		t.Fatalf("no acknowledged write lost with a two-minute flush interval: the power cut did not drop unsynced data")
	}
}

func cuts(t *testing.T, def int) int {
	v := os.Getenv("IDSTREAM_POWERLOSS_CUTS")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("IDSTREAM_POWERLOSS_CUTS=%q: want a positive number", v)
	}
	return n
}

func first(s []string, n int) []string { return s[:min(n, len(s))] }

type cutMode int

const (
	// cutTimed cuts the power at a random moment under load.
	cutTimed cutMode = iota
	// cutMidBatch cuts it while an atomic batch (a group of sign-ups,
	// refreshes and promotions) is being written to the stream: on the
	// write of its second or a later message, before its commit. The
	// batch's first messages are unsynced and lost.
	cutMidBatch
	// cutMidBatchOnDisk is cutMidBatch where the stream's unsynced writes
	// reached the disk before the power went (kernel writeback): the
	// stream holds the first part of a batch whose commit never came.
	cutMidBatchOnDisk
)

func (m cutMode) String() string {
	return [...]string{"random moment", "mid batch commit", "mid batch commit, partial batch on disk"}[m]
}

// ledger is every operation a client saw acknowledged while the power was on.
type ledger struct {
	mu       sync.Mutex
	signups  map[string]signup // by session id
	refresh  map[string]refreshAck
	promoted map[string]string // user id -> login id
	counts   [3]int
}

type signup struct{ user, tokenHash string }

type refreshAck struct {
	user, tokenHash string
	generation      int
}

type result struct {
	sync        string
	mode        cutMode
	cuts        int
	ops         [3]int // acknowledged sign-ups, refreshes, promotions
	lost, torn  []string
	unsynced    lazyfs.Stats
	unackedTail int // requests answered after the cut, not counted
	// rolledForward counts restarts at which nats-server found a partial
	// atomic batch in the stream and completed it from its staging store.
	rolledForward, onDiskCuts int
}

func (r result) acked() int { return r.ops[0] + r.ops[1] + r.ops[2] }

func (r result) String() string {
	return fmt.Sprintf("sync %s, %s: %d power cuts; acknowledged %d sign-ups, %d refreshes, %d promotions (%d in all); lost %d, half-written %d; %d partial batches completed at restart; at the last cut %d directory operations and %d files held unsynced data",
		r.sync, r.mode, r.cuts, r.ops[0], r.ops[1], r.ops[2], r.acked(), len(r.lost), len(r.torn), r.rolledForward, r.unsynced.UnsyncedDirOps, r.unsynced.UnsyncedFiles)
}

// child is the node under test, a process of its own.
type child struct {
	cmd  *exec.Cmd
	url  string
	logs *testenv.SyncBuffer
}

type rig struct {
	t        *testing.T
	fsys     *lazyfs.FS
	dataDir  string
	dbURL    string
	natsPort int
	sync     string
	armed    atomic.Bool
	// writeback: at the cut, the stream's unsynced writes reach the disk.
	writeback atomic.Bool
	// ahead counts restarts that found a projection past the log's end.
	ahead int
	// blkWrites counts writes to the stream's message blocks.
	blkWrites atomic.Int64
	logLast   uint64
}

func runScenario(t *testing.T, syncMode string, mode cutMode, cuts int) result {
	if err := lazyfs.Available(); err != nil {
		t.Skipf("the power-loss test mounts a FUSE filesystem: %v", err)
	}
	r := &rig{t: t, dataDir: t.TempDir(), sync: syncMode, natsPort: testenv.FreePort(t)}
	r.dbURL, _ = testenv.Database(t)
	var err error
	r.fsys, err = lazyfs.New(t.TempDir(), lazyfs.Options{CutOnWrite: r.cutOnWrite, Writeback: r.keepUnsynced})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.fsys.Close() })
	// The embedded server keeps its files in <data dir>/nats: the mount.
	if err := os.Symlink(r.fsys.Dir(), filepath.Join(r.dataDir, "nats")); err != nil {
		t.Fatal(err)
	}
	res := result{sync: syncMode, mode: mode}
	led := &ledger{signups: map[string]signup{}, refresh: map[string]refreshAck{}, promoted: map[string]string{}}
	c := r.start()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 22))
	for i := range cuts {
		m := mode
		if cuts > 1 {
			m = cutMode((int(mode) + i) % 3) // a long run takes turns
		}
		res.unackedTail += r.load(c, led, m, rng)
		c.kill()
		st, err := r.fsys.PowerCycle()
		if err != nil {
			t.Fatal(err)
		}
		res.unsynced = st
		res.cuts++
		c = r.start()
		if strings.Contains(c.logs.String(), "Restoring partial batch write") {
			res.rolledForward++
		}
		if m == cutMidBatchOnDisk {
			res.onDiskCuts++
		}
		res.lost, res.torn = r.verify(led)
		if len(res.lost) > 0 && syncMode == "always" {
			break
		}
	}
	c.kill()
	t.Logf("%d writes to the stream's message blocks; %d events in the log after the last cut; %d restarts found a projection past the log's end", r.blkWrites.Load(), r.logLast, r.ahead)
	led.mu.Lock()
	res.ops = led.counts
	led.mu.Unlock()
	return res
}

// cutOnWrite is the filesystem's hook: armed for a mid-batch cut, it cuts
// on a write to the stream's message blocks of the second or a later
// message of an atomic batch that is not its last: the batch's first
// messages are on disk, its commit is not.
func (r *rig) cutOnWrite(path string, data []byte) bool {
	if !strings.Contains(path, "streams/IDSTREAM/msgs/") || !strings.HasSuffix(path, ".blk") {
		return false
	}
	r.blkWrites.Add(1)
	if !r.armed.Load() || bytes.Contains(data, []byte("Nats-Batch-Commit:")) {
		return false
	}
	_, rest, ok := bytes.Cut(data, []byte("Nats-Batch-Sequence: "))
	if !ok {
		return false
	}
	end := bytes.IndexByte(rest, '\r')
	if end < 0 {
		return false
	}
	if n, err := strconv.Atoi(string(rest[:end])); err != nil || n < 2 {
		return false
	}
	r.armed.Store(false)
	return true
}

// keepUnsynced is the filesystem's writeback hook.
func (r *rig) keepUnsynced(path string) bool {
	return r.writeback.Load() && strings.Contains(path, "streams/IDSTREAM/msgs/")
}

func (r *rig) start() *child {
	r.t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"=1", "DATABASE_URL="+r.dbURL, "IDSTREAM_DATA_DIR="+r.dataDir,
		"IDSTREAM_NATS_PORT="+strconv.Itoa(r.natsPort), "IDSTREAM_NATS_SYNC="+r.sync)
	c := &child{cmd: cmd, logs: &testenv.SyncBuffer{}}
	cmd.Stderr = c.logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		r.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- u
			}
		}
		close(ready)
	}()
	select {
	case u, ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			r.t.Fatalf("the node did not start:\n%s", c.logs)
		}
		c.url = u
	case <-time.After(60 * time.Second):
		c.kill()
		r.t.Fatalf("the node did not start in 60s:\n%s", c.logs)
	}
	r.t.Cleanup(c.kill)
	return c
}

// kill is the process's end at the power cut: SIGKILL, nothing flushed.
func (c *child) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// load drives sign-ups, refreshes and promotions from 16 clients until the
// power is cut: at a random moment after a second, or (mid batch) on a
// random write of the message blocks once the load runs. It returns how
// many answers came after the cut (never counted as acknowledged).
func (r *rig) load(c *child, led *ledger, mode cutMode, rng *rand.Rand) int {
	const clients = 16
	warm := time.Duration(700+rng.IntN(600)) * time.Millisecond
	var after atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := &client{hc: hc, base: c.url, rng: rand.New(rand.NewPCG(uint64(w), rng.Uint64()))}
			for ctx.Err() == nil && !r.fsys.Off() {
				if !cl.step(ctx, led, r.fsys) {
					after.Add(1)
				}
			}
		}()
	}
	time.Sleep(warm)
	r.writeback.Store(mode == cutMidBatchOnDisk)
	if mode != cutTimed {
		r.armed.Store(true)
		for !r.fsys.Off() && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		r.armed.Store(false)
		if !r.fsys.Off() {
			r.t.Fatal("the mid-batch cut never came")
		}
	} else {
		r.fsys.Cut()
	}
	// The power is off: the node dies with it. Clients still waiting see
	// errors; nothing they receive now counts.
	c.kill()
	cancel()
	wg.Wait()
	return int(after.Load())
}

// client is one load client with the guests it signed up.
type client struct {
	hc     *http.Client
	base   string
	rng    *rand.Rand
	guests []*guest
}

type guest struct {
	user, session, access, refresh string
	generation                     int
}

// step runs one operation; false if an answer arrived after the cut.
func (c *client) step(ctx context.Context, led *ledger, fsys *lazyfs.FS) bool {
	op := c.rng.IntN(10)
	switch {
	case op < 4 || len(c.guests) == 0:
		var out struct {
			Result struct {
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
			} `json:"result"`
		}
		if !c.do(ctx, "/api/anonymous_user/signup", "", "application/json", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, &out) {
			return true
		}
		if fsys.Off() {
			return false
		}
		sid, hash, err := tokens.ParseOpaque(out.Result.RefreshToken)
		if err != nil {
			return true
		}
		g := &guest{user: jwtSub(out.Result.AccessToken), session: sid, access: out.Result.AccessToken, refresh: out.Result.RefreshToken}
		c.guests = append(c.guests, g)
		led.mu.Lock()
		led.signups[sid] = signup{user: g.user, tokenHash: hash}
		led.counts[0]++
		led.mu.Unlock()
	case op < 8:
		i := c.rng.IntN(len(c.guests))
		g := c.guests[i]
		var out struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {g.refresh}}.Encode()
		ok := c.do(ctx, "/oauth2/token", "", "application/x-www-form-urlencoded", form, &out)
		if !ok {
			// The outcome is unknown: the token may have rotated.
			c.guests = append(c.guests[:i], c.guests[i+1:]...)
			return true
		}
		if fsys.Off() {
			return false
		}
		g.refresh, g.access = out.RefreshToken, out.AccessToken
		g.generation++
		led.mu.Lock()
		led.refresh[g.session] = refreshAck{user: g.user, tokenHash: tokens.Hash(out.RefreshToken), generation: g.generation}
		led.counts[1]++
		led.mu.Unlock()
	default:
		i := c.rng.IntN(len(c.guests))
		g := c.guests[i]
		// Promotion ends the guest's sessions: it leaves the pool either way.
		c.guests = append(c.guests[:i], c.guests[i+1:]...)
		if !c.do(ctx, "/api/anonymous_user/promotion_code", g.access, "application/json", `{"session_type":"refresh_token"}`, nil) {
			return true
		}
		login := "pl-" + uuid.NewString() + "@example.com"
		if !c.do(ctx, "/api/anonymous_user/promote", g.access, "application/json",
			fmt.Sprintf(`{"login_id":%q,"password":"power-loss-%s"}`, login, uuid.NewString()), nil) {
			return true
		}
		if fsys.Off() {
			return false
		}
		led.mu.Lock()
		led.promoted[g.user] = login
		led.counts[2]++
		led.mu.Unlock()
	}
	return true
}

func (c *client) do(ctx context.Context, path, bearer, ctype, body string, out any) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, strings.NewReader(body))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", ctype)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return false
	}
	return out == nil || json.Unmarshal(raw, out) == nil
}

func jwtSub(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(raw, &c)
	return c.Sub
}

// verify checks, on the restarted node, that every acknowledged operation
// is in the log and, once the projections caught up, in the read models;
// and that no command is half in the log.
func (r *rig) verify(led *ledger) (lost, torn []string) {
	t := r.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	opt, err := nats.NkeyOptionFromSeed(filepath.Join(r.dataDir, "nats-user.nk"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", r.natsPort), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	store, err := eventstore.Open(ctx, nc, eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	pool, err := pgxpool.New(ctx, r.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Right after the restart: a projection whose checkpoint is past the
	// log's end applied events the power cut took (delivered before they
	// were synced, never acknowledged).
	past := func() int {
		last, err := store.LastSequence(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM projection_checkpoints WHERE position > $1`, int64(last)).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if past() > 0 {
		r.ahead++
		// The runner rebuilds such a read model from the log; "caught up"
		// means nothing until it has.
		testenv.WaitFor(t, "projections past the log's end rebuilt", time.Minute, func() bool { return past() == 0 })
	}
	testenv.Settle(t, pool, store, time.Minute)

	r.logLast, _ = store.LastSequence(ctx)
	log, err := readLog(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	for sid, s := range led.signups {
		if !log.has(store.Subject("user", s.user), domain.TypeAnonymousUserCreated, "") {
			lost = append(lost, "sign-up "+s.user+": user.anonymous.created not in the log")
		}
		if !log.has(store.Subject("session", sid), domain.TypeSessionStarted, s.tokenHash) {
			lost = append(lost, "sign-up "+s.user+": session.started not in the log")
		}
	}
	for sid, a := range led.refresh {
		if !log.has(store.Subject("session", sid), domain.TypeSessionRefreshed, a.tokenHash) {
			lost = append(lost, fmt.Sprintf("refresh of session %s (generation %d) not in the log", sid, a.generation))
		}
	}
	for user := range led.promoted {
		if !log.hasPrefix(store.Subject("user", user), "user.promoted.") {
			lost = append(lost, "promotion of "+user+" not in the log")
		}
	}
	torn = log.torn()
	// No read-model row for a user the log does not have.
	var all []string
	rows, err := pool.Query(ctx, `SELECT id::text FROM users`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		all = append(all, id)
	}
	rows.Close()
	for _, id := range all {
		if len(log.bySubject[store.Subject("user", id)]) == 0 {
			torn = append(torn, "users row "+id+" for a user the log does not have")
		}
	}

	// The read models, after catch-up.
	var users, sessions []string
	for _, s := range led.signups {
		users = append(users, s.user)
	}
	for sid := range led.signups {
		sessions = append(sessions, sid)
	}
	have := map[string]bool{}
	rows, err = pool.Query(ctx, `SELECT id::text, is_anonymous, coalesce(login_id, '') FROM users WHERE id = ANY($1::uuid[])`, users)
	if err != nil {
		t.Fatal(err)
	}
	loginOf := map[string]string{}
	for rows.Next() {
		var id, login string
		var anon bool
		if err := rows.Scan(&id, &anon, &login); err != nil {
			t.Fatal(err)
		}
		have[id] = true
		loginOf[id] = login
	}
	rows.Close()
	for _, u := range users {
		if !have[u] {
			lost = append(lost, "sign-up "+u+": no users row")
		}
	}
	for u, login := range led.promoted {
		if have[u] && !strings.EqualFold(loginOf[u], login) {
			lost = append(lost, fmt.Sprintf("promotion of %s: users row has login id %q", u, loginOf[u]))
		}
	}
	count := map[string]int{}
	rows, err = pool.Query(ctx, `SELECT id::text, refresh_count FROM sessions WHERE id = ANY($1::uuid[])`, sessions)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		count[id] = n + 1 // present
	}
	rows.Close()
	for _, sid := range sessions {
		if count[sid] == 0 {
			lost = append(lost, "sign-up session "+sid+": no sessions row")
		}
	}
	for sid, a := range led.refresh {
		if n := count[sid]; n > 0 && n-1 < a.generation {
			lost = append(lost, fmt.Sprintf("session %s: refresh_count %d, %d refreshes acknowledged", sid, n-1, a.generation))
		}
	}
	return lost, torn
}

// eventLog is the whole log as read back after a cut.
type eventLog struct {
	bySubject map[string][]eventstore.Record
}

func readLog(ctx context.Context, store *eventstore.Store) (*eventLog, error) {
	l := &eventLog{bySubject: map[string][]eventstore.Record{}}
	last, err := store.LastSequence(ctx)
	if err != nil || last == 0 {
		return l, err
	}
	cons, err := store.JetStream().OrderedConsumer(ctx, store.StreamName(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	for {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			n++
			rec, err := eventstore.DecodeMsg(m)
			if err != nil {
				return nil, err
			}
			l.bySubject[rec.Subject] = append(l.bySubject[rec.Subject], rec)
			if rec.Sequence >= last {
				return l, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("log read stopped short of sequence %d", last)
		}
	}
}

func (l *eventLog) has(subject, typ, tokenHash string) bool {
	for _, r := range l.bySubject[subject] {
		if r.Type == typ && (tokenHash == "" || bytes.Contains(r.Data, []byte(`"token_hash":"`+tokenHash+`"`))) {
			return true
		}
	}
	return false
}

func (l *eventLog) hasPrefix(subject, prefix string) bool {
	for _, r := range l.bySubject[subject] {
		if strings.HasPrefix(r.Type, prefix) {
			return true
		}
	}
	return false
}

// torn lists commands of which only a part is in the log: a guest's
// creation without its first session, or a session whose user was never
// created. A sign-up writes both in one atomic append.
func (l *eventLog) torn() []string {
	var out []string
	for subj, recs := range l.bySubject {
		for _, r := range recs {
			if r.Type != domain.TypeSessionStarted {
				continue
			}
			var s struct {
				UserID string `json:"user_id"`
			}
			_ = json.Unmarshal(r.Data, &s)
			if len(l.bySubject[userSubject(subj, s.UserID)]) == 0 {
				out = append(out, fmt.Sprintf("%s (seq %d): session.started for user %s, who is not in the log", subj, r.Sequence, s.UserID))
			}
		}
	}
	for subj, recs := range l.bySubject {
		for _, r := range recs {
			if r.Type != domain.TypeAnonymousUserCreated {
				continue
			}
			var u struct {
				UserID    string `json:"user_id"`
				SessionID string `json:"session_id"`
			}
			_ = json.Unmarshal(r.Data, &u)
			if u.SessionID != "" && len(l.bySubject[strings.TrimSuffix(subj, ".user."+u.UserID)+".session."+u.SessionID]) == 0 {
				out = append(out, fmt.Sprintf("%s (seq %d): guest created without its first session %s", subj, r.Sequence, u.SessionID))
			}
		}
	}
	return out
}

// userSubject is the user subject beside a session subject.
func userSubject(sessionSubject, user string) string {
	prefix, _, _ := strings.Cut(sessionSubject, ".session.")
	return prefix + ".user." + user
}

// The half-written check finds a guest without its first session and a
// session without its user.
func TestTornCommandsAreFound(t *testing.T) {
	rec := func(subj, typ, data string) eventstore.Record {
		return eventstore.Record{Subject: subj, Envelope: eventstore.Envelope{Type: typ, Data: json.RawMessage(data)}}
	}
	whole := &eventLog{bySubject: map[string][]eventstore.Record{
		"idstream.user.u1":    {rec("idstream.user.u1", domain.TypeAnonymousUserCreated, `{"user_id":"u1","session_id":"s1"}`)},
		"idstream.session.s1": {rec("idstream.session.s1", domain.TypeSessionStarted, `{"user_id":"u1","session_id":"s1"}`)},
	}}
	if torn := whole.torn(); len(torn) != 0 {
		t.Fatalf("a whole sign-up reported torn: %v", torn)
	}
	noSession := &eventLog{bySubject: map[string][]eventstore.Record{
		"idstream.user.u1": whole.bySubject["idstream.user.u1"],
	}}
	noUser := &eventLog{bySubject: map[string][]eventstore.Record{
		"idstream.session.s1": whole.bySubject["idstream.session.s1"],
	}}
	for name, l := range map[string]*eventLog{"guest without session": noSession, "session without user": noUser} {
		if torn := l.torn(); len(torn) != 1 {
			t.Errorf("%s: %d torn commands found, want 1 (%v)", name, len(torn), torn)
		}
	}
}
