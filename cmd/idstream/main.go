// Command idstream runs the identity service and its operator tools:
// `idstream serve` runs the server, the other commands (`idstream <noun>
// <verb>`, listed by `idstream --help`) operate on a deployment. The
// command line is built with cobra in cli.go.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/node"
	"github.com/idstream/idstream/tokens"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func newLogger() *slog.Logger {
	level := slog.LevelInfo
	if os.Getenv("IDSTREAM_LOG_LEVEL") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

func serve(ctx context.Context) error {
	log := newLogger()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if cfg.Dev {
		log.Warn("development mode: no IDSTREAM_CONFIG file; anonymous users on, client " + config.DevClientID +
			" allows http://localhost:* and http://127.0.0.1:*, cookies without Secure")
	}
	if addr := os.Getenv("IDSTREAM_PPROF_ADDR"); addr != "" {
		// Profiling for operators, on a separate listener: loopback only,
		// since it asks for no credential and a profile costs CPU.
		if !loopbackAddr(addr) {
			return fmt.Errorf("IDSTREAM_PPROF_ADDR %q: must be a loopback address (127.0.0.1:PORT, [::1]:PORT or localhost:PORT)", addr)
		}
		go func() { log.Warn("pprof listener stopped", "error", http.ListenAndServe(addr, nil)) }()
	}
	n, err := node.Start(ctx, node.Options{Config: cfg, Log: log})
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("shutting down")
	n.Close(context.Background())
	return nil
}

// openDatabase loads the configuration and opens (and migrates) the database.
func openDatabase(ctx context.Context, log *slog.Logger) (*config.Config, *pgxpool.Pool, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, nil, err
	}
	pool, err := node.OpenDatabase(ctx, cfg.DatabaseURL, true, log)
	return cfg, pool, err
}

func migrate(ctx context.Context) error {
	log := newLogger()
	_, pool, err := openDatabase(ctx, log)
	if err != nil {
		return err
	}
	pool.Close()
	log.Info("database is up to date")
	return nil
}

// reap runs one reaper pass against the running deployment's log and
// database (NATS_URL, or the local server's embedded NATS).
func reap(ctx context.Context, out io.Writer, dry bool) error {
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	sum, err := n.Reaper.Tick(ctx, dry)
	if err != nil {
		return err
	}
	verb := "expired"
	if dry {
		verb = "would expire"
	}
	for _, v := range sum.Verdicts {
		if v.Expired {
			fmt.Fprintf(out, "%s\t%s\treason=%s\tlast_activity=%s\n", verb, v.UserID, v.Reason, v.LastSeen.Format(time.RFC3339))
		} else {
			fmt.Fprintf(out, "active\t%s\tnot_before=%s\n", v.UserID, v.NotBefore.Format(time.RFC3339))
		}
	}
	fmt.Fprintf(out, "candidates=%d %s=%d skipped_active=%d errors=%d\n", sum.Candidates, strings.ReplaceAll(verb, " ", "_"), sum.Expired, sum.Skipped, sum.Errors)
	return nil
}

// seedOptions are the flags of `idstream seed guests`.
type seedOptions struct {
	count    int
	age      time.Duration
	clientID string
}

// seedGuests writes idle web guests into the running deployment's log.
func seedGuests(ctx context.Context, out io.Writer, o seedOptions) error {
	nd, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer nd.Close(context.Background())
	start := time.Now()
	last := time.Now()
	var mu sync.Mutex
	err = nd.Service.SeedWebGuests(ctx, o.clientID, o.count, time.Now().Add(-o.age), func(done int) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) > time.Second || done == o.count {
			last = time.Now()
			rate := float64(done) / time.Since(start).Seconds()
			fmt.Fprintf(os.Stderr, "\rseeded %d/%d guests (%.0f/s, %.0f events/s)", done, o.count, rate, 2*rate)
		}
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "seeded %d guests in %s\n", o.count, time.Since(start).Round(time.Millisecond))
	return nil
}

func rotateKeys(ctx context.Context, out io.Writer) error {
	log := newLogger()
	cfg, pool, err := openDatabase(ctx, log)
	if err != nil {
		return err
	}
	defer pool.Close()
	keys, err := tokens.NewKeys(ctx, pool, clock.System{}, log, tokens.KeysConfig{
		Issuer: cfg.PublicURL, PublishRetiredFor: domain.MaxAccessTokenLifetime + time.Hour, ReloadEvery: 1,
	})
	if err != nil {
		return err
	}
	kid, err := keys.Rotate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "new signing key:", kid)
	return nil
}

// loopbackAddr reports whether a host:port listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return host == "localhost" || (ip != nil && ip.IsLoopback())
}
