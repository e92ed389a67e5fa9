package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
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
)

// bench runs a load scenario against a running server.
func bench(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "signup" {
		return errors.New("usage: idstream bench signup [flags]")
	}
	fs := flag.NewFlagSet("bench signup", flag.ContinueOnError)
	target := fs.String("url", "http://127.0.0.1:8080", "server base URL (loopback only)")
	clientID := fs.String("client-id", "idstream-dev", "client_id to sign up with")
	conc := fs.Int("c", 16, "concurrent clients")
	dur := fs.Duration("d", 10*time.Second, "how long to run")
	rate := fs.Float64("rate", 0, "target sign-ups per second across all clients (0: as fast as possible)")
	dbURL := fs.String("database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idstream?sslmode=disable"),
		"the server's database, to measure projection lag (empty: skip)")
	sample := fs.Int("lag-sample", 10, "measure projection lag for every Nth sign-up")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if err := loopbackOnly(*target); err != nil {
		return err
	}
	if *conc < 1 || *dur <= 0 || *sample < 1 {
		return errors.New("bench: -c, -d and -lag-sample must be positive")
	}
	body, _ := json.Marshal(map[string]string{"client_id": *clientID, "session_type": "refresh_token"})
	endpoint := strings.TrimRight(*target, "/") + "/api/anonymous_user/signup"
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		MaxIdleConns: *conc * 2, MaxIdleConnsPerHost: *conc * 2, IdleConnTimeout: time.Minute,
	}}

	var lag *lagProbe
	if *dbURL != "" {
		pool, err := pgxpool.New(ctx, *dbURL)
		if err != nil {
			return fmt.Errorf("bench: database: %w", err)
		}
		defer pool.Close()
		lag = newLagProbe(pool)
		go lag.run(ctx)
	}

	// Open-loop pacing for -rate: request k is due at start + k/rate, so a
	// slow answer does not lower the offered load (no coordinated omission
	// beyond the number of clients).
	var next atomic.Int64
	rctx, cancel := context.WithTimeout(ctx, *dur)
	defer cancel()
	results := make([][]time.Duration, *conc)
	errs := make([]map[string]int, *conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range *conc {
		errs[w] = map[string]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				t0 := time.Now()
				if *rate > 0 {
					due := start.Add(time.Duration(float64(next.Add(1)-1) / *rate * float64(time.Second)))
					if wait := time.Until(due); wait > 0 {
						select {
						case <-time.After(wait):
						case <-rctx.Done():
							return
						}
					}
					// Latency counts from when the request was due.
					t0 = due
				}
				if rctx.Err() != nil {
					return
				}
				sub, status, err := signupOnce(rctx, client, endpoint, body)
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
					if lag != nil && (i*(*conc)+w)%*sample == 0 {
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
	for w := range *conc {
		all = append(all, results[w]...)
		for k, v := range errs[w] {
			errTotal[k] += v
		}
	}
	slices.Sort(all)
	fmt.Printf("bench signup: %d clients, %s, target %s\n", *conc, elapsed.Round(time.Millisecond), *target)
	fmt.Printf("  sign-ups:  %d ok (%.0f/s)\n", len(all), float64(len(all))/elapsed.Seconds())
	fmt.Printf("  latency:   p50 %s  p90 %s  p99 %s  max %s\n", pct(all, 50), pct(all, 90), pct(all, 99), pct(all, 100))
	fmt.Printf("  errors:    %v\n", errTotal)
	if lag != nil {
		lags, missing := lag.finish(5 * time.Second)
		slices.Sort(lags)
		fmt.Printf("  projection lag (ack -> users row visible, %d samples, %d not seen in 5s): p50 %s  p99 %s  max %s\n",
			len(lags), missing, pct(lags, 50), pct(lags, 99), pct(lags, 100))
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode, err
	}
	var out struct {
		Result struct {
			AccessToken string `json:"access_token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return "", resp.StatusCode, err
	}
	return jwtSubject(out.Result.AccessToken), resp.StatusCode, nil
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
