package testenv

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/node"
)

// Node is an idstream node under test, with its fake clock and its logs.
type Node struct {
	*node.Node
	Clock *clock.Fake
	Logs  *SyncBuffer
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// NodeOptions adjust a test node.
type NodeOptions struct {
	// Configure changes the development configuration before start.
	Configure func(*config.Config)
	// Host names the server in its public URL (default 127.0.0.1).
	Host string
	// Clock shares a fake clock between nodes.
	Clock *clock.Fake
	// DatabaseURL shares a database between nodes (default: a fresh one).
	DatabaseURL string
	// NATSURL connects to a NATS server other than n (which may be nil).
	NATSURL string
	// Workers runs the background reaper (off by default, so tests that
	// drive reaper passes with the fake clock are not raced by it).
	Workers bool
	// NoProjections runs no projections: the read models stay empty, as
	// they are for a moment after any write.
	NoProjections bool
	// Delivery sends one-time codes (default: an outbox in a temporary
	// directory).
	Delivery delivery.Sender
}

// StartNode starts a node in development configuration on the given NATS
// server and a fresh database, with a fake clock.
func StartNode(t testing.TB, n *NATS, o NodeOptions) *Node {
	t.Helper()
	cfg, err := config.LoadFrom(func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if o.DatabaseURL == "" {
		o.DatabaseURL, _ = Database(t)
	}
	cfg.DatabaseURL = o.DatabaseURL
	if o.NATSURL != "" {
		cfg.NATS.URL = o.NATSURL
	} else {
		cfg.NATS.URL = n.Server.ClientURL()
	}
	// Tests sign many guests up from one address and refresh sessions in
	// loops: guest sign-up, challenge and per-session limits are off unless
	// a test sets them.
	off := 0
	cfg.RateLimits.AnonymousSignup.Burst = &off
	cfg.RateLimits.Challenge.Burst = &off
	cfg.RateLimits.Refresh.Burst = &off
	cfg.RateLimits.DPoPProofs.Burst = &off
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + host + ":" + portOf(ln.Addr())
	cfg.PublicURL = url
	if o.Configure != nil {
		o.Configure(cfg)
	}
	fake := o.Clock
	if fake == nil {
		fake = clock.NewFake(time.Now().UTC().Truncate(time.Second))
	}
	logs := &SyncBuffer{}
	log := slog.New(slog.NewJSONHandler(logWriter(logs), &slog.HandlerOptions{Level: slog.LevelDebug}))
	if o.Delivery == nil {
		o.Delivery = &delivery.Outbox{Dir: t.TempDir()}
	}
	nd, err := node.Start(context.Background(), node.Options{Config: cfg, Log: log, Clock: fake, Listener: ln, NoWorkers: !o.Workers,
		NoProjections: o.NoProjections, Delivery: o.Delivery})
	if err != nil {
		t.Fatal(err)
	}
	nd.URL = url
	t.Cleanup(func() { nd.Close(context.Background()) })
	// With a log capture on, the signing keys are secrets to look for
	// (before the node closes: keys rotated during the test count too).
	recordSigningKeys(t, nd)
	t.Cleanup(func() { recordSigningKeys(t, nd) })
	return &Node{Node: nd, Clock: fake, Logs: logs}
}

func portOf(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}
