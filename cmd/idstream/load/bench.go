// Package load holds idstream's load generators (idstream bench signup,
// refresh, mixed, keypair, promote, soak): HTTP clients of a running server on loopback,
// with latency, error and projection-lag figures.
package load

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"
	flag "github.com/spf13/pflag"
)

// loadFlags are the flags every scenario shares.
type loadFlags struct {
	target, clientID, dbURL string
	// api is the wire spoken (supabase.go); supabaseOK: the scenario
	// speaks Supabase Auth's too.
	api          string
	supabaseOK   bool
	conc, sample int
	dur          time.Duration
	rate         float64
	flags        *flag.FlagSet
}

// defaultDatabaseURL is --database-url's default without DATABASE_URL.
const defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/idstream?sslmode=disable"

// usageError is a bad flag value: the command line prints the usage and
// exits with 2 (it looks for the UsageError method).
type usageError struct{ error }

func (usageError) UsageError() bool { return true }

func (e usageError) Unwrap() error { return e.error }

// addLoadFlags defines the shared flags (and extra's) on fs.
func addLoadFlags(fs *flag.FlagSet, extra func(*flag.FlagSet)) *loadFlags {
	l := &loadFlags{flags: fs}
	fs.StringVar(&l.target, "url", "http://127.0.0.1:8080", "server base URL (loopback only)")
	fs.StringVar(&l.clientID, "client-id", "idstream-dev", "client_id")
	fs.IntVarP(&l.conc, "concurrency", "c", 16, "concurrent clients")
	fs.DurationVarP(&l.dur, "duration", "d", 10*time.Second, "how long to run")
	fs.Float64Var(&l.rate, "rate", 0, "target operations per second across all clients (0: as fast as possible)")
	// The default is resolved in check: help never prints $DATABASE_URL
	// (it may hold a password).
	fs.StringVar(&l.dbURL, "database-url", defaultDatabaseURL,
		"the server's database, to measure projection lag (default: $DATABASE_URL if set; empty: skip)")
	fs.IntVar(&l.sample, "lag-sample", 10, "measure projection lag for every Nth operation")
	fs.StringVar(&l.api, "api", apiIdstream, "the server's API: idstream, or supabase (Supabase Auth, for scripts/bench.sh --supabase; signup and refresh only)")
	if extra != nil {
		extra(fs)
	}
	return l
}

// check validates the parsed flags.
func (l *loadFlags) check() error {
	if v := os.Getenv("DATABASE_URL"); v != "" && !l.flags.Changed("database-url") {
		l.dbURL = v
	}
	if err := loopbackOnly(l.target); err != nil {
		return usageError{err}
	}
	if l.conc < 1 || l.dur <= 0 || l.sample < 1 {
		return usageError{errors.New("bench: --concurrency, --duration and --lag-sample must be positive")}
	}
	l.target = strings.TrimRight(l.target, "/")
	if err := l.checkAPI(); err != nil {
		return usageError{err}
	}
	return nil
}

// parseLoadFlags parses a scenario's command line outside cobra (tests).
func parseLoadFlags(name string, args []string, extra func(*flag.FlagSet)) (*loadFlags, error) {
	fs := flag.NewFlagSet("bench "+name, flag.ContinueOnError)
	l := addLoadFlags(fs, extra)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return l, l.check()
}

func (l *loadFlags) httpClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: l.conc * 2, MaxIdleConnsPerHost: l.conc * 2, IdleConnTimeout: time.Minute,
	}}
}

// operation is one iteration of a scenario: it returns the sub it saw (for
// lag sampling), the HTTP status of a failure, or a transport error.
type operation func(ctx context.Context, worker, i int) (sub string, status int, err error)

// scenario is one `idstream bench NAME` command: the shared flags, extra's
// flags, and run with them parsed and checked.
func scenario(use, short, example string, extra func(*flag.FlagSet), run func(context.Context, *loadFlags) error) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Example: example, Args: cobra.NoArgs}
	l := addLoadFlags(c.Flags(), extra)
	l.supabaseOK = use == "signup" || use == "refresh"
	c.RunE = func(c *cobra.Command, _ []string) error {
		if err := l.check(); err != nil {
			return err
		}
		return run(c.Context(), l)
	}
	return c
}

// Command is `idstream bench`: the load scenarios against a running server.
func Command() *cobra.Command {
	bench := &cobra.Command{
		Use:   "bench",
		Short: "Load-test a running server on loopback (signup, refresh, mixed, keypair, promote, soak)",
		Long: `Load generators: HTTP clients of a running server on this machine's
loopback only, printing throughput, latency percentiles, errors and
projection lag. Start the server with the rate limits out of the way
(see README.md, Operations, and scripts/bench.sh).`,
	}
	signup := scenario("signup", "Anonymous sign-ups (refresh-token mode)",
		"  idstream bench signup --url http://127.0.0.1:8080 -c 64 -d 10s\n  idstream bench signup -c 64 -d 10s --rate 1800",
		nil, func(ctx context.Context, l *loadFlags) error {
			client := l.httpClient()
			endpoint, body := l.guestSignup()
			return runLoad(ctx, l, "sign-ups", func(ctx context.Context, _, _ int) (string, int, error) {
				return signupOnce(ctx, client, endpoint, body)
			})
		})
	var devices int
	var dpop string
	keypair := scenario("keypair", "Key-pair re-logins (challenge, signed JWT, token exchange)",
		"  idstream bench keypair -c 32 -d 10s --devices 200\n  idstream bench keypair -c 32 -d 10s --devices 200 --dpop rs256",
		func(fs *flag.FlagSet) {
			fs.IntVar(&devices, "devices", 200, "devices to register before the run; the run signs them in again")
			fs.StringVar(&dpop, "dpop", "", "send a DPoP proof on every request, signed with a key of each device's own: rs256 (Android, React Native, Flutter) or es256 (iOS); empty: no DPoP")
		}, func(ctx context.Context, l *loadFlags) error {
			return benchKeypair(ctx, l, devices, dpop)
		})
	var sessions int
	refresh := scenario("refresh", "Refresh-token exchanges (rotation) of guests signed up before the run",
		"  idstream bench refresh -c 32 -d 10s\n  idstream bench refresh -c 32 -d 10s --sessions 64",
		func(fs *flag.FlagSet) {
			fs.IntVar(&sessions, "sessions", 8, "guests each client signs up before the run; the run rotates their refresh tokens in turn")
		}, func(ctx context.Context, l *loadFlags) error {
			if sessions < 1 {
				return usageError{errors.New("bench refresh: --sessions must be positive")}
			}
			return benchRefresh(ctx, l, sessions)
		})
	var mix string
	mixed := scenario("mixed", "Sign-ups, refreshes and promotions in proportions (--mix)",
		"  idstream bench mixed -c 32 -d 10s\n  idstream bench mixed -c 32 -d 10s --mix signup=20,refresh=75,promote=5",
		func(fs *flag.FlagSet) {
			fs.StringVar(&mix, "mix", "signup=50,refresh=45,promote=5", "weights of the operations (signup, refresh, promote)")
		}, func(ctx context.Context, l *loadFlags) error {
			return benchMixed(ctx, l, mix)
		})
	var probe float64
	promote := scenario("promote", "Guest sign-up, promotion code and headless promotion per operation",
		"  idstream bench promote -c 8 -d 10s --probe-rate 20",
		func(fs *flag.FlagSet) {
			fs.Float64Var(&probe, "probe-rate", 20, "sign-ups per second probed alongside, to see that hashing does not starve them (0: off)")
		}, func(ctx context.Context, l *loadFlags) error {
			return benchPromote(ctx, l, probe)
		})
	var o soakOptions
	soak := scenario("soak", "A long mixed workload: throughput, latency, errors, server RSS, projection lag",
		"  idstream bench soak --url http://127.0.0.1:8090 --duration 30m --report-every 5m -c 16 --pid $SERVER",
		o.flags, func(ctx context.Context, l *loadFlags) error {
			o.load = l
			if !l.flags.Changed("metrics-token") {
				o.metricsKey = os.Getenv("IDSTREAM_METRICS_TOKEN")
			}
			_, err := runSoak(ctx, o, os.Stdout)
			return err
		})
	bench.AddCommand(signup, refresh, mixed, keypair, promote, soak)
	return bench
}

// runLoad runs op from l.conc clients for l.dur and prints the figures.
func runLoad(ctx context.Context, l *loadFlags, what string, op operation) error {
	var lag *lagProbe
	if l.dbURL != "" {
		pool, err := pgxpool.New(ctx, l.dbURL)
		if err != nil {
			return fmt.Errorf("bench: database: %w", err)
		}
		defer pool.Close()
		lag = newLagProbe(pool)
		go lag.run(ctx)
	}
	// Open-loop pacing for --rate: operation k is due at start + k/rate, so a
	// slow answer does not lower the offered load (no coordinated omission
	// beyond the number of clients).
	var next atomic.Int64
	rctx, cancel := context.WithTimeout(ctx, l.dur)
	defer cancel()
	results := make([][]time.Duration, l.conc)
	errs := make([]map[string]int, l.conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range l.conc {
		errs[w] = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				t0 := time.Now()
				if l.rate > 0 {
					due := start.Add(time.Duration(float64(next.Add(1)-1) / l.rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-rctx.Done():
							return
						}
					}
					// Latency counts from when the operation was due.
					t0 = due
				}
				if rctx.Err() != nil {
					return
				}
				sub, status, err := op(rctx, w, i)
				d := time.Since(t0)
				switch {
				case err != nil && rctx.Err() != nil:
					return
				case err != nil:
					errs[w]["transport"]++
				case status != http.StatusOK:
					errs[w][fmt.Sprintf("http_%d", status)]++
				default:
					results[w] = append(results[w], d)
					if lag != nil && (i*l.conc+w)%l.sample == 0 {
						lag.add(sub, time.Now())
					}
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	errTotal := map[string]int{}
	for w := range l.conc {
		all = append(all, results[w]...)
		for k, v := range errs[w] {
			errTotal[k] += v
		}
	}
	slices.Sort(all)
	fmt.Printf("bench: %d clients, %s, target %s\n", l.conc, elapsed.Round(time.Millisecond), l.target)
	fmt.Printf("  %s:  %d ok (%.0f/s)\n", what, len(all), float64(len(all))/elapsed.Seconds())
	fmt.Printf("  latency:   p50 %s  p90 %s  p99 %s  max %s\n", pct(all, 50), pct(all, 90), pct(all, 99), pct(all, 100))
	fmt.Printf("  errors:    %v\n", errTotal)
	if errTotal["http_429"] > 0 {
		fmt.Println("  (429s: the server's rate limits apply to this one address; for load tests start it with",
			"IDSTREAM_SIGNUP_RATE_LIMIT=1000000000/1s IDSTREAM_CHALLENGE_RATE_LIMIT=1000000000/1s",
			"IDSTREAM_SIGNIN_IP_RATE_LIMIT=1000000000/1s IDSTREAM_SIGNIN_LOGIN_ID_RATE_LIMIT=1000000000/1s IDSTREAM_AUTHORIZE_RATE_LIMIT=1000000000/1s",
			"IDSTREAM_REFRESH_RATE_LIMIT=1000000000/1s IDSTREAM_DPOP_PROOF_RATE_LIMIT=1000000000/1s)")
	}
	if lag != nil {
		lags, missing := lag.finish(5 * time.Second)
		slices.Sort(lags)
		fmt.Printf("  projection lag (ack -> users row visible, %d samples, %d not seen in 5s): p50 %s  p99 %s  max %s\n",
			len(lags), missing, pct(lags, 50), pct(lags, 99), pct(lags, 100))
	}
	return nil
}

// loopbackOnly refuses targets off this machine: load is for our own server.
func loopbackOnly(target string) error {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return fmt.Errorf("bench: %q is not a URL", target)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("bench: refusing to load %s: only loopback targets are allowed", host)
}

func signupOnce(ctx context.Context, client *http.Client, endpoint string, body []byte) (string, int, error) {
	ses, status, _, err := signupTokens(ctx, client, endpoint, body)
	return jwtSubject(ses.access), status, err
}

// benchSession is what a token-mode sign-up, promotion or refresh answers.
type benchSession struct {
	access, refresh string
}

// signupTokens signs a guest up in refresh_token mode (endpoint and body
// from guestSignup) and returns its tokens, or the status and body of the
// failure.
func signupTokens(ctx context.Context, client *http.Client, endpoint string, body []byte) (benchSession, int, []byte, error) {
	status, raw, err := post(ctx, client, endpoint, "application/json", string(body))
	if err != nil || status != http.StatusOK {
		return benchSession{}, status, raw, err
	}
	ses, err := parseSession(raw)
	return ses, status, raw, err
}

// jwtSubject reads sub from a JWT without verifying it (the bench only needs
// the id to watch for the row).
func jwtSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(raw, &c)
	return c.Sub
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	i = min(max(i-1, 0), len(sorted)-1)
	return sorted[i].Round(10 * time.Microsecond)
}

// lagProbe measures how long after the acknowledgement a user's row appears.
type lagProbe struct {
	pool    *pgxpool.Pool
	mu      sync.Mutex
	pending map[string]time.Time
	lags    []time.Duration
}

func newLagProbe(pool *pgxpool.Pool) *lagProbe {
	return &lagProbe{pool: pool, pending: map[string]time.Time{}}
}

func (l *lagProbe) add(sub string, acked time.Time) {
	if sub == "" {
		return
	}
	l.mu.Lock()
	l.pending[sub] = acked
	l.mu.Unlock()
}

func (l *lagProbe) run(ctx context.Context) {
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.poll(ctx)
		}
	}
}

func (l *lagProbe) poll(ctx context.Context) {
	l.mu.Lock()
	ids := make([]string, 0, len(l.pending))
	for id := range l.pending {
		ids = append(ids, id)
	}
	l.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	rows, err := l.pool.Query(ctx, `SELECT id::text FROM users WHERE id = ANY($1::uuid[])`, ids)
	if err != nil {
		return
	}
	seen := time.Now()
	var found []string
	for rows.Next() {
		var id string
		if rows.Scan(&id) == nil {
			found = append(found, id)
		}
	}
	rows.Close()
	l.mu.Lock()
	for _, id := range found {
		if at, ok := l.pending[id]; ok {
			l.lags = append(l.lags, seen.Sub(at))
			delete(l.pending, id)
		}
	}
	l.mu.Unlock()
}

func (l *lagProbe) finish(wait time.Duration) ([]time.Duration, int) {
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		l.mu.Lock()
		n := len(l.pending)
		l.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]time.Duration(nil), l.lags...), len(l.pending)
}
