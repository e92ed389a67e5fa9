// Package testenv starts the real services tests run against: an embedded
// NATS server with JetStream in a temporary directory, and a fresh PostgreSQL
// database per test.
package testenv

import (
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/idstream/idstream/eventstore"
)

// NATS is a running embedded server and its store directory.
type NATS struct {
	Server *server.Server
	Dir    string
}

// StartNATS starts an embedded JetStream server (fsync always, as in
// production) on a free loopback port; it stops when the test ends. Unlike
// serve's, it accepts clients without credentials, so tests and the
// processes they start reach it by its URL alone.
func StartNATS(t testing.TB) *NATS {
	t.Helper()
	dir := t.TempDir()
	n := &NATS{Dir: dir}
	n.Start(t)
	t.Cleanup(func() { n.Server.Shutdown(); n.Server.WaitForShutdown() })
	return n
}

// Start (re)starts the server on its directory.
func (n *NATS) Start(t testing.TB) {
	t.Helper()
	s, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{StoreDir: n.Dir, Port: -1, SyncAlways: true, NoAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	n.Server = s
}

// Restart stops the server and starts it again on the same directory.
func (n *NATS) Restart(t testing.TB) {
	t.Helper()
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
	n.Start(t)
}

// Connect opens a client connection that closes when the test ends.
func (n *NATS) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(n.Server.ClientURL(), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}
