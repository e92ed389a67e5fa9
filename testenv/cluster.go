package testenv

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/idstream/idstream/eventstore"
)

// Cluster is a NATS cluster of embedded servers joined over loopback routes,
// each with JetStream on its own directory.
type Cluster struct {
	Servers []*server.Server
	dirs    []string
	ports   []int
	routes  []string
}

// StartCluster starts n clustered JetStream servers (fsync always) and waits
// until JetStream has a meta leader.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range n {
		c.dirs = append(c.dirs, t.TempDir())
		c.ports = append(c.ports, FreePort(t))
	}
	for _, p := range c.ports {
		c.routes = append(c.routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	c.Servers = make([]*server.Server, n)
	for i := range n {
		c.Start(t, i)
	}
	c.WaitJetStream(t)
	t.Cleanup(func() {
		for _, s := range c.Servers {
			if s != nil {
				s.Shutdown()
				s.WaitForShutdown()
			}
		}
	})
	return c
}

// Start (re)starts server i on its directory.
func (c *Cluster) Start(t testing.TB, i int) {
	t.Helper()
	s, err := eventstore.StartEmbedded(eventstore.EmbeddedConfig{
		StoreDir: filepath.Join(c.dirs[i], "js"), Port: -1, SyncAlways: true, ServerName: fmt.Sprintf("n%d", i+1),
		Cluster: &eventstore.ClusterConfig{Name: "idstream-test", Port: c.ports[i], Routes: c.routes}, NoAuth: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Servers[i] = s
}

// WaitJetStream waits until the running servers agree on a JetStream meta
// leader.
func (c *Cluster) WaitJetStream(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaders, current, online := 0, 0, 0
		running := 0
		for _, s := range c.Servers {
			if s == nil || !s.Running() {
				continue
			}
			running++
			if s.JetStreamIsLeader() {
				leaders++
				// The peers the leader would place a stream on: online,
				// with JetStream, their stats received (a stream created
				// before is refused "no suitable peers for placement").
				online = len(s.JetStreamClusterPeers())
			}
			if s.JetStreamIsCurrent() {
				current++
			}
		}
		if leaders == 1 && current == running && online >= running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("JetStream cluster not ready: %d leaders, %d of %d current, %d online at the leader", leaders, current, running, online)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop shuts server i down.
func (c *Cluster) Stop(i int) {
	c.Servers[i].Shutdown()
	c.Servers[i].WaitForShutdown()
}

// URL lists the client URLs of the servers, first the i-th, for a client
// that prefers one server but may reconnect to any.
func (c *Cluster) URL(i int) string {
	urls := []string{c.Servers[i].ClientURL()}
	for j, s := range c.Servers {
		if j != i && s != nil && s.Running() {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}
