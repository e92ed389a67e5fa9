package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	flag "github.com/spf13/pflag"
)

// Soak operations, in report order.
const (
	opSignup     = "signup"
	opRefresh    = "refresh"
	opUserinfo   = "userinfo"
	opKeySignup  = "key_signup"
	opKeyLogin   = "key_login"
	opPromote    = "promote"
	soakDefaults = "signup=25,refresh=20,userinfo=30,key_signup=5,key_login=18,promote=2"
)

var soakOps = []string{opSignup, opRefresh, opUserinfo, opKeySignup, opKeyLogin, opPromote}

// soakOptions are the flags of `idstream bench soak` beyond the shared ones.
type soakOptions struct {
	load        *loadFlags
	every       time.Duration
	pid         int
	metricsURL  string
	metricsKey  string
	mix         string
	keepPerUser int
}

func (o *soakOptions) flags(fs *flag.FlagSet) {
	fs.DurationVar(&o.every, "report-every", time.Minute, "print a line this often")
	fs.IntVar(&o.pid, "pid", 0, "server process: RSS from /proc/PID/status (0: process_resident_memory_bytes from --metrics-url)")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "the server's Prometheus metrics (default: URL/metrics; use the metrics_addr listener's URL when the server has one)")
	fs.StringVar(&o.metricsKey, "metrics-token", "", "bearer token for --metrics-url (default: $IDSTREAM_METRICS_TOKEN); outside development mode the server requires it")
	fs.StringVar(&o.mix, "mix", soakDefaults, "operation weights")
	fs.IntVar(&o.keepPerUser, "keep", 32, "sessions and devices each client keeps to refresh, read and sign in again")
}

// soakSummary is what a soak run measured, for tests and the last line.
type soakSummary struct {
	Elapsed      time.Duration
	Counts       map[string]int64 // successful operations
	Errors       map[string]int   // "op status reason" -> count
	RSSStart     uint64
	RSSMax       uint64
	RSSEnd       uint64
	MaxLagEvents uint64
}

// latHist is a log-linear latency histogram (microseconds, 32 sub-buckets
// per power of two: within about 3 %), so a long run keeps no samples.
type latHist struct {
	n       int64
	buckets [2048]int64
}

func histIndex(us uint64) int {
	if us < 64 {
		return int(us)
	}
	e := bits.Len64(us) - 6
	return min(64+(e-1)*32+int(us>>e)-32, 2047)
}

func histUpper(i int) time.Duration {
	if i < 64 {
		return time.Duration(i) * time.Microsecond
	}
	e := (i-64)/32 + 1
	m := uint64((i-64)%32 + 32)
	return time.Duration(((m+1)<<e)-1) * time.Microsecond
}

func (h *latHist) add(d time.Duration) {
	h.n++
	h.buckets[histIndex(uint64(max(d.Microseconds(), 0)))]++
}

func (h *latHist) merge(o *latHist) {
	h.n += o.n
	for i, c := range o.buckets {
		h.buckets[i] += c
	}
}

// quantile returns the upper bound of the bucket holding the p-th percentile.
func (h *latHist) quantile(p int) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := (h.n*int64(p) + 99) / 100
	var seen int64
	for i, c := range h.buckets {
		seen += c
		if seen >= max(rank, 1) {
			return histUpper(i).Round(10 * time.Microsecond)
		}
	}
	return 0
}

// soakStats collects one interval's and the whole run's figures.
type soakStats struct {
	mu                sync.Mutex
	interval, total   map[string]*latHist
	intErrs, totErrs  map[string]int
	intervalStartedAt time.Time
}

func newSoakStats() *soakStats {
	s := &soakStats{interval: map[string]*latHist{}, total: map[string]*latHist{}, intErrs: map[string]int{}, totErrs: map[string]int{}}
	for _, op := range soakOps {
		s.interval[op], s.total[op] = &latHist{}, &latHist{}
	}
	return s
}

func (s *soakStats) ok(op string, d time.Duration) {
	s.mu.Lock()
	s.interval[op].add(d)
	s.total[op].add(d)
	s.mu.Unlock()
}

func (s *soakStats) fail(op string, status int, raw []byte, err error) {
	key := op + " " + failureCode(status, raw, err)
	s.mu.Lock()
	s.intErrs[key]++
	s.totErrs[key]++
	s.mu.Unlock()
}

// failureCode is "transport", or the status and the API's reason code.
func failureCode(status int, raw []byte, err error) string {
	if err != nil && status == 0 {
		return "transport"
	}
	var body struct {
		Error  json.RawMessage `json:"error"`
		Reason string          `json:"reason"`
	}
	_ = json.Unmarshal(raw, &body)
	reason := body.Reason
	if reason == "" {
		var nested struct {
			Reason string `json:"reason"`
		}
		if json.Unmarshal(body.Error, &nested) == nil {
			reason = nested.Reason
		}
	}
	if reason == "" {
		reason = "-"
	}
	return strconv.Itoa(status) + " " + reason
}

// takeInterval returns the interval's figures and starts a new interval.
func (s *soakStats) takeInterval() (map[string]*latHist, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, e := s.interval, s.intErrs
	s.interval, s.intErrs = map[string]*latHist{}, map[string]int{}
	for _, op := range soakOps {
		s.interval[op] = &latHist{}
	}
	return h, e
}

// soakWorker is one client: it keeps a few of its own sessions (refresh
// rotates them, so no two clients share one) and devices.
type soakWorker struct {
	rng      *rand.Rand
	sessions []benchSession
	devices  []benchDevice
	keep     int
}

func (w *soakWorker) keepSession(s benchSession) {
	if len(w.sessions) < w.keep {
		w.sessions = append(w.sessions, s)
		return
	}
	w.sessions[w.rng.IntN(len(w.sessions))] = s
}

func (w *soakWorker) keepDevice(d benchDevice) {
	if len(w.devices) < w.keep {
		w.devices = append(w.devices, d)
		return
	}
	w.devices[w.rng.IntN(len(w.devices))] = d
}

// parseMix reads "op=weight,..." into cumulative weights in soakOps order.
func parseMix(mix string) ([]int, error) { return parseWeights("bench soak", mix, soakOps) }

// parseWeights reads "op=weight,..." into cumulative weights in the order
// of ops.
func parseWeights(cmd, mix string, ops []string) ([]int, error) {
	weights := map[string]int{}
	for part := range strings.SplitSeq(mix, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(val)
		if !ok || err != nil || n < 0 || !slices.Contains(ops, name) {
			return nil, usageError{fmt.Errorf("%s: --mix %q: want op=weight,… with ops %s", cmd, part, strings.Join(ops, ", "))}
		}
		weights[name] = n
	}
	cum := make([]int, len(ops))
	sum := 0
	for i, op := range ops {
		sum += weights[op]
		cum[i] = sum
	}
	if sum == 0 {
		return nil, usageError{fmt.Errorf("%s: --mix has no positive weight", cmd)}
	}
	return cum, nil
}

// runSoak drives the mixed workload until the duration passes, printing a
// line every interval and a summary at the end.
func runSoak(ctx context.Context, o soakOptions, out io.Writer) (*soakSummary, error) {
	l := o.load
	cum, err := parseMix(o.mix)
	if err != nil {
		return nil, err
	}
	if o.every <= 0 || o.keepPerUser < 1 {
		return nil, usageError{errors.New("bench soak: --report-every and --keep must be positive")}
	}
	if o.metricsURL == "" {
		o.metricsURL = l.target + "/metrics"
	}
	client := l.httpClient()
	probe := &soakProbe{client: &http.Client{Timeout: 10 * time.Second}, pid: o.pid, metricsURL: o.metricsURL, metricsToken: o.metricsKey,
		readyURL: l.target + "/readyz"}
	signupURL := l.target + "/api/anonymous_user/signup"
	signupBody, _ := json.Marshal(map[string]string{"client_id": l.clientID, "session_type": "refresh_token"})
	stats := newSoakStats()
	sum := &soakSummary{Counts: map[string]int64{}, Errors: map[string]int{}}
	first := probe.sample(ctx)
	sum.RSSStart, sum.RSSMax = first.rss, first.rss
	fmt.Fprintf(out, "soak: %d clients for %s against %s, mix %s; server RSS at start %s\n",
		l.conc, l.dur, l.target, o.mix, mib(first.rss))

	runCtx, cancel := context.WithTimeout(ctx, l.dur)
	defer cancel()
	do := func(w *soakWorker, op string) {
		t0 := time.Now()
		var (
			status int
			raw    []byte
			err    error
		)
		switch op {
		case opSignup, opPromote:
			var s benchSession
			s, status, raw, err = signupTokens(runCtx, client, signupURL, signupBody)
			if err == nil && status == http.StatusOK {
				if op == opSignup {
					w.keepSession(s)
				} else {
					status, raw, err = promoteGuest(runCtx, client, l.target, s.access)
				}
			}
		case opRefresh:
			i := w.rng.IntN(len(w.sessions))
			status, raw, err = post(runCtx, client, l.target+"/oauth2/token", "application/x-www-form-urlencoded",
				url.Values{"grant_type": {"refresh_token"}, "client_id": {l.clientID}, "refresh_token": {w.sessions[i].refresh}}.Encode())
			if err == nil && status == http.StatusOK {
				var tok struct {
					AccessToken  string `json:"access_token"`
					RefreshToken string `json:"refresh_token"`
				}
				err = json.Unmarshal(raw, &tok)
				w.sessions[i] = benchSession{access: tok.AccessToken, refresh: tok.RefreshToken}
			} else {
				// The outcome is unknown (the token may have rotated):
				// forget the session rather than reuse its token.
				w.sessions = slices.Delete(w.sessions, i, i+1)
			}
		case opUserinfo:
			status, raw, err = request(runCtx, client, http.MethodGet, l.target+"/oauth2/userinfo", w.sessions[w.rng.IntN(len(w.sessions))].access, "", "")
		case opKeySignup:
			var d benchDevice
			if d, err = newBenchDevice(); err == nil {
				if _, status, raw, err = keyLogin(runCtx, client, l, d, true); err == nil && status == http.StatusOK {
					w.keepDevice(d)
				}
			}
		case opKeyLogin:
			_, status, raw, err = keyLogin(runCtx, client, l, w.devices[w.rng.IntN(len(w.devices))], false)
		}
		switch {
		case runCtx.Err() != nil:
			// Cut off by the end of the run: not counted.
		case err != nil || status != http.StatusOK:
			stats.fail(op, status, raw, err)
		default:
			stats.ok(op, time.Since(t0))
		}
	}

	var wg sync.WaitGroup
	start := time.Now()
	for range l.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &soakWorker{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), keep: o.keepPerUser}
			for runCtx.Err() == nil {
				// A client starts with a session and a device of its own,
				// so every operation has something to work on.
				op := opSignup
				switch {
				case len(w.sessions) == 0:
				case len(w.devices) == 0:
					op = opKeySignup
				default:
					r := w.rng.IntN(cum[len(cum)-1])
					op = soakOps[pickOp(cum, r)]
				}
				do(w, op)
			}
		}()
	}

	// The reporter: one line per interval.
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(o.every)
		defer t.Stop()
		last := start
		lastLag := first
		for {
			select {
			case <-runCtx.Done():
				return
			case now := <-t.C:
				h, e := stats.takeInterval()
				s := probe.sample(ctx)
				sum.RSSMax = max(sum.RSSMax, s.rss)
				sum.MaxLagEvents = max(sum.MaxLagEvents, s.lagEvents)
				fmt.Fprintln(out, soakLine(fmt.Sprintf("[%s]", now.Sub(start).Round(time.Second)), now.Sub(last), h, e, s, lastLag))
				last, lastLag = now, s
			}
		}
	}()
	wg.Wait()
	<-done
	sum.Elapsed = time.Since(start)
	stats.mu.Lock()
	for op, h := range stats.total {
		sum.Counts[op] = h.n
	}
	for k, v := range stats.totErrs {
		sum.Errors[k] = v
	}
	stats.mu.Unlock()
	// Let the projections catch up before the last sample.
	end := probe.sample(ctx)
	for deadline := time.Now().Add(10 * time.Second); end.lagEvents > 0 && time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(200 * time.Millisecond)
		end = probe.sample(ctx)
	}
	sum.RSSEnd = end.rss
	sum.RSSMax = max(sum.RSSMax, end.rss)
	sum.MaxLagEvents = max(sum.MaxLagEvents, end.lagEvents)
	fmt.Fprintln(out, soakLine("summary", sum.Elapsed, stats.total, sum.Errors, end, first))
	fmt.Fprintf(out, "  server RSS: start %s, max %s, end %s; projection lag: max %d events sampled, %d events after the run\n",
		mib(sum.RSSStart), mib(sum.RSSMax), mib(sum.RSSEnd), sum.MaxLagEvents, end.lagEvents)
	if len(sum.Errors) > 0 {
		fmt.Fprintf(out, "  errors: %v\n", sum.Errors)
	}
	return sum, nil
}

// pickOp returns the index of the first cumulative weight above r.
func pickOp(cum []int, r int) int {
	i, _ := slices.BinarySearch(cum, r+1)
	return i
}

func soakLine(label string, span time.Duration, h map[string]*latHist, errs map[string]int, s, prev soakSample) string {
	var b strings.Builder
	b.WriteString(label)
	var total int64
	for _, op := range soakOps {
		total += h[op].n
		fmt.Fprintf(&b, " %s %.0f/s p50 %s p99 %s;", op, float64(h[op].n)/max(span.Seconds(), 1e-9), h[op].quantile(50), h[op].quantile(99))
	}
	nerr := 0
	keys := make([]string, 0, len(errs))
	for k, v := range errs {
		nerr += v
		keys = append(keys, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(keys)
	fmt.Fprintf(&b, " all %.0f/s; errors %d", float64(total)/max(span.Seconds(), 1e-9), nerr)
	if nerr > 0 {
		fmt.Fprintf(&b, " {%s}", strings.Join(keys, ", "))
	}
	fmt.Fprintf(&b, "; rss %s; lag %d events", mib(s.rss), s.lagEvents)
	if n := s.lagCount - prev.lagCount; n > 0 {
		fmt.Fprintf(&b, ", mean ack->row %s", time.Duration((s.lagSum-prev.lagSum)/n*float64(time.Second)).Round(100*time.Microsecond))
	}
	return b.String()
}

func mib(b uint64) string {
	if b == 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

// soakProbe reads the server's memory and projection lag.
type soakProbe struct {
	client                             *http.Client
	pid                                int
	metricsURL, metricsToken, readyURL string
}

type soakSample struct {
	rss              uint64
	lagEvents        uint64
	lagSum, lagCount float64 // idstream_projection_lag_seconds, all projections
}

func (p *soakProbe) sample(ctx context.Context) soakSample {
	var s soakSample
	m := p.metrics(ctx)
	if p.pid > 0 {
		s.rss = procRSS(p.pid)
	} else {
		s.rss = uint64(m["process_resident_memory_bytes"])
	}
	s.lagSum, s.lagCount = m["idstream_projection_lag_seconds_sum"], m["idstream_projection_lag_seconds_count"]
	// /readyz lists every projection's lag in events (and answers 503
	// with the same body when one is behind).
	if _, raw, err := request(ctx, p.client, http.MethodGet, p.readyURL, "", "", ""); err == nil {
		var body struct {
			Projections []struct {
				Lag uint64 `json:"lag"`
			} `json:"projections"`
		}
		_ = json.Unmarshal(raw, &body)
		for _, pr := range body.Projections {
			s.lagEvents = max(s.lagEvents, pr.Lag)
		}
	}
	return s
}

// metrics reads a Prometheus text exposition, summing each metric name
// over its labels.
func (p *soakProbe) metrics(ctx context.Context) map[string]float64 {
	status, raw, err := request(ctx, p.client, http.MethodGet, p.metricsURL, p.metricsToken, "", "")
	if err != nil || status != http.StatusOK {
		return map[string]float64{}
	}
	return parseMetrics(raw)
}

func parseMetrics(raw []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if j := strings.LastIndexByte(rest, '}'); j >= 0 {
			rest = rest[j+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(fields[0], 64); err == nil {
			out[name] += v
		}
	}
	return out
}

// procRSS is VmRSS of a process in bytes (0 if unreadable).
func procRSS(pid int) uint64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}
