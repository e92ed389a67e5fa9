// Command idstream runs the identity service and its operator tools.
//
//	idstream serve            run the API, projections and (by default) embedded NATS
//	idstream migrate          apply database migrations and exit
//	idstream keys rotate      make a new access-token signing key
//	idstream bench signup     drive anonymous sign-ups against a running server
//	idstream bench soak       a long mixed workload with memory and lag figures
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/idstream/idstream/cmd/idstream/load"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/node"
	"github.com/idstream/idstream/tokens"
)

const usage = `usage: idstream <command> [flags]

commands:
  serve          run the server (API, projections; embedded NATS unless NATS_URL is set)
  migrate        apply database migrations and exit
  keys rotate    create a new access-token signing key; the old one stays in JWKS
  reap [--dry-run]  run one reaper pass now (--dry-run: list what would expire and why)
  seed guests -n N [-age 60d]  write N idle web guests (load tests of the reaper and projections)
  projections status [-json]   checkpoint, lag and failures of every projection
  events tail [--user SUB] [--type TYPE] [--since TIME] [--from-seq N] [--no-follow]
                 the log as JSON lines (credential hashes redacted)
  analytics funnel [-from D] [-to D] [-client ID] [-json]
                 the guest funnel per day and client (as GET /admin/analytics/funnel)
  users export --format ndjson|csv [--fields a,b] [--output FILE]
                 every user from the read model, with a progress bar
  bench signup   load-test anonymous sign-up against a running server (see -h)
  bench soak -duration 30m [-concurrency N] [-report-every 1m] [-pid PID]
                 mixed load (sign-up, refresh, user info, key pairs, promotion)
                 with throughput, p50/p99, errors, server RSS and projection lag
  settings show|apply  the runtime settings in the log; apply writes the
                 configuration file's settings as a new version
  portal hash-password  read a password on stdin, print its argon2id hash
                 (for portal.operators[].password_hash)

configuration: IDSTREAM_CONFIG (YAML file), IDSTREAM_ADDR, IDSTREAM_DATA_DIR,
DATABASE_URL, NATS_URL and more; see README.md.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx)
	case "migrate":
		err = migrate(ctx)
	case "keys":
		if len(os.Args) < 3 || os.Args[2] != "rotate" {
			fmt.Fprint(os.Stderr, usage)
			os.Exit(2)
		}
		err = rotateKeys(ctx)
	case "reap":
		err = reap(ctx, os.Args[2:])
	case "projections":
		err = projectionsCmd(ctx, os.Args[2:])
	case "events":
		err = eventsCmd(ctx, os.Args[2:])
	case "analytics":
		err = analyticsCmd(ctx, os.Args[2:])
	case "seed":
		err = seed(ctx, os.Args[2:])
	case "users":
		err = usersCmd(ctx, os.Args[2:])
	case "bench":
		err = load.Run(ctx, os.Args[2:])
	case "settings":
		err = settingsCmd(ctx, os.Args[2:])
	case "portal":
		err = portalCmd(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "idstream: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "idstream:", err)
		os.Exit(1)
	}
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
		// Profiling for operators, on a separate (loopback) listener.
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
func reap(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reap", flag.ContinueOnError)
	dry := fs.Bool("dry-run", false, "list what would expire and why; change nothing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := newLogger()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	n, err := node.Start(ctx, node.Options{Config: cfg, Log: log, Tool: true})
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	sum, err := n.Reaper.Tick(ctx, *dry)
	if err != nil {
		return err
	}
	verb := "expired"
	if *dry {
		verb = "would expire"
	}
	for _, v := range sum.Verdicts {
		if v.Expired {
			fmt.Printf("%s\t%s\treason=%s\tlast_activity=%s\n", verb, v.UserID, v.Reason, v.LastSeen.Format(time.RFC3339))
		} else {
			fmt.Printf("active\t%s\tnot_before=%s\n", v.UserID, v.NotBefore.Format(time.RFC3339))
		}
	}
	fmt.Printf("candidates=%d %s=%d skipped_active=%d errors=%d\n", sum.Candidates, strings.ReplaceAll(verb, " ", "_"), sum.Expired, sum.Skipped, sum.Errors)
	return nil
}

// seed writes idle web guests into the running deployment's log.
func seed(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "guests" {
		return fmt.Errorf("usage: idstream seed guests -n N [-age 1440h]")
	}
	fs := flag.NewFlagSet("seed guests", flag.ContinueOnError)
	n := fs.Int("n", 100000, "guests to create")
	age := fs.Duration("age", 60*24*time.Hour, "how long ago they signed up (and were last seen)")
	clientID := fs.String("client-id", config.DevClientID, "client_id")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log := newLogger()
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	nd, err := node.Start(ctx, node.Options{Config: cfg, Log: log, Tool: true})
	if err != nil {
		return err
	}
	defer nd.Close(context.Background())
	start := time.Now()
	last := time.Now()
	var mu sync.Mutex
	err = nd.Service.SeedWebGuests(ctx, *clientID, *n, time.Now().Add(-*age), func(done int) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) > time.Second || done == *n {
			last = time.Now()
			rate := float64(done) / time.Since(start).Seconds()
			fmt.Fprintf(os.Stderr, "\rseeded %d/%d guests (%.0f/s, %.0f events/s)", done, *n, rate, 2*rate)
		}
	})
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return err
	}
	fmt.Printf("seeded %d guests in %s\n", *n, time.Since(start).Round(time.Millisecond))
	return nil
}

func rotateKeys(ctx context.Context) error {
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
	fmt.Println("new signing key:", kid)
	return nil
}
