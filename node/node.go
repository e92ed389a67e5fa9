// Package node wires one idstream process: PostgreSQL, NATS (embedded or
// external), the event store, the token keys, the projections and the HTTP
// API. `idstream serve` and the end-to-end tests both start one.
package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/idstream/idstream/api"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/migrations"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/tokens"
	"github.com/idstream/idstream/workers"
	"github.com/idstream/idstream/workers/webhooks"
)

// Options are the parts a caller may supply; the rest comes from Config.
type Options struct {
	Config *config.Config
	Log    *slog.Logger
	// Clock and Random default to the real ones; tests fake them.
	Clock  clock.Clock
	Random io.Reader
	// Listener, if set, is used instead of listening on Config.Addr.
	Listener net.Listener
	// NoProjections leaves projections to other processes.
	NoProjections bool
	// NoWorkers leaves the reaper to other processes.
	NoWorkers bool
	// Tool connects for an operator command: no HTTP, projections or
	// workers, and NATS at NATS_URL or the local embedded server's port
	// (with the key in the data directory).
	Tool bool
	// Delivery, if set, sends one-time codes instead of what the
	// configuration names (tests: a mail server with a test certificate).
	Delivery delivery.Sender
}

// Node is a running idstream process.
type Node struct {
	Config   *config.Config
	Log      *slog.Logger
	Pool     *pgxpool.Pool
	NATS     *nats.Conn
	Embedded *server.Server
	Store    *eventstore.Store
	Service  *app.Service
	Keys     *tokens.Keys
	Runner   *projections.Runner
	Reaper   *workers.Reaper
	Exports  *workers.Exports
	// Webhooks registers endpoints and, holding its lease, delivers.
	Webhooks *webhooks.Service
	// Limiter is the node's synced rate limiter (guest sign-up, challenges).
	Limiter *projections.SyncedRateBuckets
	API     *api.Server
	URL     string
	// MetricsURL is the metrics listener's base URL when metrics_addr is
	// set, else empty.
	MetricsURL string

	httpServer    *http.Server
	metricsServer *http.Server
	cancel        context.CancelFunc
	wg            sync.WaitGroup
	closeOnce     sync.Once
}

// OpenDatabase creates the database if needed, connects, and migrates when
// migrate is true.
func OpenDatabase(ctx context.Context, dsn string, migrate bool, log *slog.Logger) (*pgxpool.Pool, error) {
	if err := migrations.EnsureDatabase(ctx, dsn); err != nil {
		return nil, err
	}
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if pcfg.MaxConns < 16 {
		pcfg.MaxConns = 16
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, err
	}
	if migrate {
		applied, err := migrations.Run(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, err
		}
		if len(applied) > 0 {
			log.Info("applied migrations", "migrations", applied)
		}
	}
	return pool, nil
}

// ConnectNATS connects to NATS_URL, or starts the embedded server, which
// accepts only the nkey kept in the data directory (made at first start).
func ConnectNATS(cfg *config.Config, log *slog.Logger) (*nats.Conn, *server.Server, error) {
	opts := natsOptions()
	if cfg.NATS.URL != "" {
		auth, err := externalAuth(cfg)
		if err != nil {
			return nil, nil, err
		}
		// The error names neither the URL nor the credentials: either may
		// hold a secret.
		nc, err := nats.Connect(cfg.NATS.URL, append(opts, auth...)...)
		if err != nil {
			return nil, nil, fmt.Errorf("connect to NATS at NATS_URL: %w", err)
		}
		return nc, nil, nil
	}
	interval, err := cfg.SyncInterval()
	if err != nil {
		return nil, nil, err
	}
	kp, err := eventstore.EnsureUserKey(cfg.NATSKeyFile())
	if err != nil {
		return nil, nil, err
	}
	pub, err := kp.PublicKey()
	if err != nil {
		return nil, nil, err
	}
	auth, err := eventstore.UserKeyOption(kp)
	if err != nil {
		return nil, nil, err
	}
	ns, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{
		StoreDir:     filepath.Join(cfg.DataDir, "nats"),
		Port:         cfg.NATS.Port,
		SyncAlways:   interval == 0,
		SyncInterval: interval,
		Logger:       log,
		UserNkeys:    []string{pub},
	})
	if err != nil {
		return nil, nil, err
	}
	log.Info("embedded NATS started", "url", ns.ClientURL(), "store_dir", filepath.Join(cfg.DataDir, "nats"), "sync", cfg.NATS.Sync,
		"key_file", cfg.NATSKeyFile())
	nc, err := nats.Connect(ns.ClientURL(), append(opts, auth)...)
	if err != nil {
		ns.Shutdown()
		return nil, nil, err
	}
	return nc, ns, nil
}

// connectLocal connects an operator command to the embedded server of the
// `serve` that runs on the same data directory, with the key it made.
func connectLocal(cfg *config.Config) (*nats.Conn, error) {
	kp, err := eventstore.LoadUserKey(cfg.NATSKeyFile())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no NATS key at %s: start `idstream serve` on this data directory (IDSTREAM_DATA_DIR) first, or set NATS_URL", cfg.NATSKeyFile())
	}
	if err != nil {
		return nil, err
	}
	auth, err := eventstore.UserKeyOption(kp)
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("nats://127.0.0.1:%d", cfg.NATS.Port)
	nc, err := nats.Connect(url, append(natsOptions(), auth)...)
	if err != nil {
		return nil, fmt.Errorf("connect to the embedded NATS at %s: %w", url, err)
	}
	return nc, nil
}

func natsOptions() []nats.Option {
	return []nats.Option{nats.Name("idstream"), nats.MaxReconnects(-1), nats.ReconnectWait(250 * time.Millisecond)}
}

// externalAuth turns the configured NATS_URL credentials into options.
func externalAuth(cfg *config.Config) ([]nats.Option, error) {
	c := cfg.NATS
	switch {
	case c.Creds != "":
		return []nats.Option{nats.UserCredentials(c.Creds)}, nil
	case c.NkeySeed != "":
		o, err := nats.NkeyOptionFromSeed(c.NkeySeed)
		if err != nil {
			// The error names neither the path nor what it holds (nats.go's
			// names the path): an operator who put the seed itself in
			// NATS_NKEY_SEED would see it printed.
			why := "the file it names holds no nkey seed"
			if errors.Is(err, fs.ErrNotExist) {
				why = "it names no file (it is the path of a file holding the seed)"
			}
			return nil, errors.New("nats.nkey_seed (NATS_NKEY_SEED): " + why)
		}
		return []nats.Option{o}, nil
	case c.User != "":
		return []nats.Option{nats.UserInfo(c.User, c.Password)}, nil
	case c.Token != "":
		return []nats.Option{nats.Token(c.Token)}, nil
	}
	return nil, nil
}

// Start starts a node and returns once it serves HTTP.
func Start(ctx context.Context, o Options) (_ *Node, err error) {
	if o.Config == nil || o.Log == nil {
		return nil, errors.New("node: config and logger are required")
	}
	if o.Clock == nil {
		o.Clock = clock.System{}
	}
	if o.Random == nil {
		o.Random = rand.Reader
	}
	cfg := o.Config
	n := &Node{Config: cfg, Log: o.Log}
	defer func() {
		if err != nil {
			n.Close(context.Background())
		}
	}()
	ln := o.Listener
	if ln == nil && !o.Tool {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, err
		}
	}
	if ln != nil {
		n.URL = "http://" + ln.Addr().String()
		if cfg.PublicURL == "http://"+cfg.Addr && cfg.Addr != ln.Addr().String() {
			cfg.PublicURL = n.URL
		}
	}
	if n.Pool, err = OpenDatabase(ctx, cfg.DatabaseURL, *cfg.MigrateOnStart, o.Log); err != nil {
		return nil, err
	}
	if o.Tool && cfg.NATS.URL == "" {
		// The server's embedded NATS owns the data directory; talk to it.
		if n.NATS, err = connectLocal(cfg); err != nil {
			return nil, err
		}
	} else if n.NATS, n.Embedded, err = ConnectNATS(cfg, o.Log); err != nil {
		return nil, err
	}
	sopts := eventstore.DefaultOptions()
	sopts.Stream.Replicas = cfg.NATS.Replicas
	if cfg.NATS.AppendCommitters > 0 {
		sopts.Committers = cfg.NATS.AppendCommitters
	}
	if cfg.NATS.AppendMaxBatch > 0 {
		sopts.MaxBatch = cfg.NATS.AppendMaxBatch
	}
	if n.Store, err = eventstore.Open(ctx, n.NATS, sopts); err != nil {
		return nil, err
	}
	if n.Keys, err = tokens.NewKeys(ctx, n.Pool, o.Clock, o.Log, tokens.KeysConfig{
		Issuer: cfg.PublicURL, PublishRetiredFor: domain.MaxAccessTokenLifetime + time.Hour, ReloadEvery: time.Minute,
	}); err != nil {
		return nil, err
	}
	// Settings may change idle timeouts at run time: activity is kept for
	// the longest one they allow.
	activity, err := eventstore.OpenLastSeen(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_session_activity",
		Description: "last activity of cookie sessions, at most one write per session per minute", TTL: domain.MaxIdleTimeout,
		Replicas: cfg.NATS.Replicas})
	if err != nil {
		return nil, err
	}
	codes, err := eventstore.OpenSecretValues(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_codes",
		Description: "challenges, promotion codes, authorization codes and hosted-page flows, by hash", TTL: time.Hour,
		Replicas: cfg.NATS.Replicas, MaxValueSize: 64 << 10})
	if err != nil {
		return nil, err
	}
	// A proof is accepted for DPoPMaxAge after its iat and DPoPFutureSkew
	// before: its jti is remembered a minute longer than both.
	proofIDs, err := eventstore.OpenSecretValues(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_dpop_jti",
		Description: "jti of DPoP proofs seen, by hash, so each proof is used once", TTL: tokens.DPoPMaxAge + tokens.DPoPFutureSkew + time.Minute,
		Replicas: cfg.NATS.Replicas})
	if err != nil {
		return nil, err
	}
	n.Limiter = projections.NewSyncedRateBuckets(n.Pool, 50*time.Millisecond)
	sender := o.Delivery
	if sender == nil && !o.Tool {
		if sender, err = deliveryFor(cfg, o.Log); err != nil {
			return nil, err
		}
	}
	if n.Service, err = app.NewService(app.Deps{Store: n.Store, Keys: n.Keys, Config: cfg, Clock: o.Clock, Random: o.Random,
		Activity: activity, Codes: codes, Secrets: projections.ClientSecrets{Pool: n.Pool}, ProofIDs: proofIDs, Limiter: projections.RateBuckets{Pool: n.Pool}, FastLimiter: n.Limiter, Log: o.Log,
		Delivery: sender}); err != nil {
		return nil, err
	}
	// The log's settings, written from the configuration by the first node.
	if err := n.Service.InitSettings(ctx); err != nil {
		return nil, err
	}
	if n.Reaper, err = workers.NewReaper(n.Pool, n.Service.Lifetime, o.Clock, o.Log, workers.ReaperConfig{
		Interval: cfg.Guests.ReaperInterval.D(), Batch: cfg.Guests.ReaperBatch, Workers: cfg.Guests.ReaperWorkers,
		LeasePoll: 2 * time.Second}); err != nil {
		return nil, err
	}
	if n.Exports, err = workers.NewExports(ctx, n.Pool, n.Store.JetStream(), o.Clock, o.Log, workers.ExportConfig{
		Retention: 24 * time.Hour, Poll: time.Second, Replicas: cfg.NATS.Replicas}); err != nil {
		return nil, err
	}
	if n.Webhooks, err = startWebhooks(ctx, n, o); err != nil {
		return nil, err
	}
	if o.Tool {
		return n, nil
	}
	if n.Runner, err = projections.NewRunner(n.Pool, n.Store, o.Log, projections.DefaultConfig(), projections.All()...); err != nil {
		return nil, err
	}
	natsState := func() (bool, string) {
		st := n.NATS.Status()
		return st == nats.CONNECTED, st.String()
	}
	if n.API, err = api.NewServer(api.Deps{Service: n.Service, Reads: projections.Reads{Pool: n.Pool},
		PortalSessions: projections.PortalSessions{Pool: n.Pool}, NATSState: natsState, Log: o.Log, Store: n.Store,
		Exports: n.Exports, Reaper: n.Reaper, Webhooks: n.Webhooks}); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	if !o.NoProjections {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.Runner.Run(rctx) }()
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.Limiter.Run(rctx, o.Clock) }()
	n.wg.Add(1)
	go func() { defer n.wg.Done(); n.Service.WatchSettings(rctx, n.Store) }()
	if !o.NoWorkers {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.Reaper.Run(rctx) }()
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.Exports.Run(rctx) }()
	}
	if !cfg.Webhooks.Disabled {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.Webhooks.Run(rctx) }()
	}
	n.httpServer = &http.Server{
		Handler:           n.API,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn),
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.httpServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.Log.Error("HTTP server stopped", "error", err)
		}
	}()
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		n.MetricsURL = "http://" + mln.Addr().String()
		n.metricsServer = &http.Server{Handler: n.API.MetricsHandler(), ReadHeaderTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(o.Log.Handler(), slog.LevelWarn)}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			if err := n.metricsServer.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				o.Log.Error("metrics server stopped", "error", err)
			}
		}()
		o.Log.Info("metrics served on their own listener", "addr", mln.Addr().String())
	} else if !cfg.Dev && cfg.MetricsToken == "" {
		o.Log.Warn("/metrics refuses every request: set IDSTREAM_METRICS_TOKEN (bearer) or IDSTREAM_METRICS_ADDR (a listener of its own)")
	}
	o.Log.Info("idstream serving", "addr", ln.Addr().String(), "public_url", cfg.PublicURL)
	return n, nil
}

// Close stops the node: HTTP first (draining requests), then projections,
// then the log and the databases.
func (n *Node) Close(ctx context.Context) {
	n.closeOnce.Do(func() {
		if n.httpServer != nil {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_ = n.httpServer.Shutdown(sctx)
			cancel()
		}
		if n.metricsServer != nil {
			_ = n.metricsServer.Close()
		}
		if n.cancel != nil {
			n.cancel()
		}
		n.wg.Wait()
		if n.Store != nil {
			n.Store.Close()
		}
		if n.NATS != nil {
			_ = n.NATS.Drain()
			n.NATS.Close()
		}
		if n.Embedded != nil {
			n.Embedded.Shutdown()
			n.Embedded.WaitForShutdown()
		}
		if n.Pool != nil {
			n.Pool.Close()
		}
	})
}
