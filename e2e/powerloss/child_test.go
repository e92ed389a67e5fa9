// Package powerloss cuts the power under a running idstream node: its
// embedded NATS server keeps JetStream's files on a lazyfs mount, which
// forgets whatever was not fsynced when the power goes. The node runs in a
// child process (this test binary again), killed at the cut.
package powerloss

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/node"
	"github.com/idstream/idstream/testenv"
)

// childEnv marks the test binary started as the node under test.
const childEnv = "IDSTREAM_POWERLOSS_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		runChild()
		return
	}
	os.Exit(m.Run())
}

// runChild serves a node configured from the environment (DATABASE_URL,
// IDSTREAM_DATA_DIR, IDSTREAM_NATS_PORT, IDSTREAM_NATS_SYNC) until it is
// killed; it prints "READY <url>" once it serves.
func runChild() {
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	cfg, err := config.LoadFrom(os.Getenv)
	if err != nil {
		fail(err)
	}
	testenv.CheapHashes(cfg)
	off := 0
	cfg.RateLimits.AnonymousSignup.Burst = &off
	cfg.RateLimits.Challenge.Burst = &off
	cfg.RateLimits.SignInPerIP.Burst = &off
	cfg.RateLimits.SignInPerLoginID.Burst = &off
	cfg.RateLimits.Refresh.Burst = &off
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err)
	}
	cfg.PublicURL = "http://" + ln.Addr().String()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if _, err := node.Start(context.Background(), node.Options{Config: cfg, Log: log, Listener: ln, NoWorkers: true}); err != nil {
		fail(err)
	}
	fmt.Println("READY", cfg.PublicURL)
	select {}
}
