package node_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/node"
	"github.com/idstream/idstream/testenv"
)

// The tests name the key file and set credentials through the environment,
// as an operator would.

func devConfig(t *testing.T, env map[string]string) *config.Config {
	t.Helper()
	cfg, err := config.LoadFrom(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// serveNATS starts the embedded server the way `idstream serve` does.
func serveNATS(t *testing.T, cfg *config.Config) (*nats.Conn, *server.Server) {
	t.Helper()
	nc, ns, err := node.ConnectNATS(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if ns == nil {
		t.Fatal("no embedded server")
	}
	t.Cleanup(func() { stopNATS(nc, ns) })
	return nc, ns
}

func stopNATS(nc *nats.Conn, ns *server.Server) {
	nc.Close()
	ns.Shutdown()
	ns.WaitForShutdown()
}

func keyFile(cfg *config.Config) string { return filepath.Join(cfg.DataDir, "nats-user.nk") }

func embeddedEnv(t *testing.T, port int) map[string]string {
	return map[string]string{"IDSTREAM_DATA_DIR": filepath.Join(t.TempDir(), "data"), "IDSTREAM_NATS_PORT": strconv.Itoa(port)}
}

func TestEmbeddedNATSRefusesClientsWithoutKey(t *testing.T) {
	cfg := devConfig(t, embeddedEnv(t, -1))
	_, ns := serveNATS(t, cfg)
	if nc, err := nats.Connect(ns.ClientURL()); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connection without credentials: want an authorization violation, got %v", err)
	}
	other, _ := nkeys.CreateUser()
	pub, _ := other.PublicKey()
	if _, err := nats.Connect(ns.ClientURL(), nats.Nkey(pub, other.Sign)); !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connection with another nkey: want an authorization violation, got %v", err)
	}
	// The key file is an ordinary nkey seed file: any NATS client can use it.
	opt, err := nats.NkeyOptionFromSeed(keyFile(cfg))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL(), opt)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatalf("JetStream with the key: %v", err)
	}
}

func TestEmbeddedNATSKeyFileIsPrivateAndReused(t *testing.T) {
	cfg := devConfig(t, embeddedEnv(t, -1))
	nc, ns := serveNATS(t, cfg)
	fi, err := os.Stat(keyFile(cfg))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	before, _ := os.ReadFile(keyFile(cfg))
	stopNATS(nc, ns)

	_, ns = serveNATS(t, cfg)
	after, _ := os.ReadFile(keyFile(cfg))
	if string(before) != string(after) {
		t.Fatal("the key changed across a restart")
	}
	opt, err := nats.NkeyOptionFromSeed(keyFile(cfg))
	if err != nil {
		t.Fatal(err)
	}
	c, err := nats.Connect(ns.ClientURL(), opt)
	if err != nil {
		t.Fatalf("the key after a restart: %v", err)
	}
	c.Close()
}

func TestEmbeddedNATSRefusesLooseKeyFile(t *testing.T) {
	cfg := devConfig(t, embeddedEnv(t, -1))
	nc, ns := serveNATS(t, cfg)
	stopNATS(nc, ns)
	if err := os.Chmod(keyFile(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	nc, ns, err := node.ConnectNATS(cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		stopNATS(nc, ns)
		t.Fatal("started with a world-readable key file")
	}
	if !strings.Contains(err.Error(), "0644") || !strings.Contains(err.Error(), "0600") {
		t.Fatalf("error does not say what is wrong: %v", err)
	}
}

// An operator command (projections replay, reap, …) reaches the running
// server's embedded NATS with the key in the shared data directory; from
// another directory it cannot.
func TestOperatorCommandConnectsWithKeyFile(t *testing.T) {
	env := embeddedEnv(t, testenv.FreePort(t))
	env["DATABASE_URL"], _ = testenv.Database(t)
	serveNATS(t, devConfig(t, env))

	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	tool, err := node.Start(ctx, node.Options{Config: devConfig(t, env), Log: log, Tool: true})
	if err != nil {
		t.Fatalf("operator command with the key file: %v", err)
	}
	if _, err := tool.Store.LastSequence(ctx); err != nil {
		t.Fatal(err)
	}
	tool.Close(ctx)

	// Another data directory (no key) on the same port.
	env["IDSTREAM_DATA_DIR"] = filepath.Join(t.TempDir(), "data")
	if tool, err := node.Start(ctx, node.Options{Config: devConfig(t, env), Log: log, Tool: true}); err == nil {
		tool.Close(ctx)
		t.Fatal("operator command connected without the key file")
	} else if !strings.Contains(err.Error(), "nats-user.nk") {
		t.Fatalf("error does not name the key file: %v", err)
	}
}
