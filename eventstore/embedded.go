package eventstore

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// EmbeddedConfig configures the NATS server that `idstream serve` runs in
// process when no NATS_URL is given.
type EmbeddedConfig struct {
	// StoreDir holds JetStream's files.
	StoreDir string
	// Host and Port to listen on; Port -1 picks a free one. Loopback only.
	Host string
	Port int
	// SyncAlways makes JetStream fsync before it acknowledges a write. Off,
	// the server flushes on a timer and an acknowledged write can be lost
	// when the machine (not only the process) dies.
	SyncAlways bool
	// SyncInterval is the flush interval when SyncAlways is off (default:
	// the server's two minutes).
	SyncInterval time.Duration
	// ServerName names the server in logs and cluster views.
	ServerName string
	// Logger receives the server's notices; nil keeps it quiet.
	Logger *slog.Logger
	// Cluster, when set, joins the server to a cluster over routes. Routes
	// are not authenticated, so it needs NoAuth (test clusters only).
	Cluster *ClusterConfig
	// UserNkeys are the public nkeys (U…) of the clients that may connect;
	// StartEmbedded refuses to start without one unless NoAuth is set.
	UserNkeys []string
	// NoAuth lets any client connect. Only for test servers: whoever reaches
	// the port reads the log (password hashes) and can append forged events.
	NoAuth bool
}

// ClusterConfig joins an embedded server to a NATS cluster.
type ClusterConfig struct {
	Name string
	// Port for routes from the other servers (-1: pick one).
	Port int
	// Routes are the other servers' route URLs, e.g. nats-route://127.0.0.1:6222.
	Routes []string
}

// StartEmbedded starts a JetStream-enabled NATS server in this process and
// waits until it accepts connections.
func StartEmbedded(c EmbeddedConfig) (*server.Server, error) {
	if c.StoreDir == "" {
		return nil, errors.New("eventstore: embedded NATS needs a store directory")
	}
	if len(c.UserNkeys) == 0 && !c.NoAuth {
		return nil, errors.New("eventstore: embedded NATS needs a client nkey (or NoAuth, for tests)")
	}
	if c.Cluster != nil && !c.NoAuth {
		return nil, errors.New("eventstore: a clustered embedded server does not authenticate its routes; only test clusters (NoAuth) may use one")
	}
	if c.Host == "" {
		c.Host = "127.0.0.1"
	}
	if c.ServerName == "" {
		c.ServerName = "idstream-embedded"
	}
	opts := &server.Options{
		ServerName:   c.ServerName,
		Host:         c.Host,
		Port:         c.Port,
		JetStream:    true,
		StoreDir:     c.StoreDir,
		SyncAlways:   c.SyncAlways,
		SyncInterval: c.SyncInterval,
		NoSigs:       true,
		NoLog:        c.Logger == nil,
	}
	for _, pub := range c.UserNkeys {
		if !nkeys.IsValidPublicUserKey(pub) {
			return nil, fmt.Errorf("eventstore: %q is not a public user nkey", pub)
		}
		opts.Nkeys = append(opts.Nkeys, &server.NkeyUser{Nkey: pub})
	}
	if c.Cluster != nil {
		opts.Cluster = server.ClusterOpts{Name: c.Cluster.Name, Host: c.Host, Port: c.Cluster.Port}
		for _, r := range c.Cluster.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("eventstore: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("eventstore: embedded NATS: %w", err)
	}
	if c.Logger != nil {
		ns.SetLogger(slogAdapter{c.Logger.With("component", "nats")}, false, false)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("eventstore: embedded NATS did not start within 30s")
	}
	return ns, nil
}

type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Noticef(format string, v ...any) { a.l.Info(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Warnf(format string, v ...any)   { a.l.Warn(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Fatalf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Errorf(format string, v ...any)  { a.l.Error(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Debugf(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
func (a slogAdapter) Tracef(format string, v ...any)  { a.l.Debug(fmt.Sprintf(format, v...)) }
