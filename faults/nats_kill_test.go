package faults_test

import (
	"context"
	"testing"
	"time"

	"github.com/idstream/idstream/testenv"
)

// TestKillNATSUnderLoad kills the NATS server (a separate process) with
// SIGKILL while guests sign up, refresh and are promoted, then restarts it.
// Every acknowledged request is in the log and the read models afterwards;
// the others failed with a 503 and a reason, leaving nothing half-written.
func TestKillNATSUnderLoad(t *testing.T) {
	nats := startNATSProc(t)
	n := testenv.StartNode(t, nil, testenv.NodeOptions{NATSURL: nats.url(), Configure: cheap})
	l := newLedger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx, n.URL, 8) }()

	time.Sleep(2 * time.Second)
	before := l.ops.Load()
	nats.kill9()
	t.Logf("killed nats-server after %d operations", before)
	time.Sleep(2 * time.Second)
	nats.start()
	t.Logf("restarted nats-server")
	time.Sleep(4 * time.Second)
	cancel()
	<-done

	waitCaughtUp(t, n, 60*time.Second)
	lost := l.verify(t, n)
	l.report(t, lost)
	if lost != 0 {
		t.Fatalf("%d acknowledged operations lost", lost)
	}
	if len(l.signups) == 0 || len(l.promoted) == 0 {
		t.Fatal("the workload acknowledged nothing")
	}
}
