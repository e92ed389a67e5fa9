package workers_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/idstream/idstream/testenv"
)

// TestReaperLeaseAcrossProcesses runs two `idstream serve` processes on one
// NATS server and one database: one holds the reaper lease; kill -9 it and
// the other takes the lease over.
func TestReaperLeaseAcrossProcesses(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "idstream")
	build := exec.Command("go", "build", "-o", bin, "./cmd/idstream")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ns := testenv.StartNATS(t)
	dbURL, pool := testenv.Database(t)
	start := func(name string) *exec.Cmd {
		cmd := exec.Command(bin, "serve")
		cmd.Env = append(os.Environ(), "IDSTREAM_ADDR=127.0.0.1:0", "NATS_URL="+ns.Server.ClientURL(),
			"DATABASE_URL="+dbURL+"&application_name="+name, "IDSTREAM_DATA_DIR="+t.TempDir())
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	procs := map[string]*exec.Cmd{"node_a": start("node_a"), "node_b": start("node_b")}
	holder := func() []string {
		rows, err := pool.Query(context.Background(), `SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			WHERE l.locktype = 'advisory' AND l.objid = 7230020 AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			names = append(names, n)
		}
		return names
	}
	waitOne := func(not string) string {
		deadline := time.Now().Add(30 * time.Second)
		for {
			h := holder()
			if len(h) == 1 && h[0] != not {
				return h[0]
			}
			if len(h) > 1 {
				t.Fatalf("two reapers hold the lease: %v", h)
			}
			if time.Now().After(deadline) {
				t.Fatalf("lease holders: %v", h)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	first := waitOne("")
	if err := procs[first].Process.Kill(); err != nil { // SIGKILL: no graceful release
		t.Fatal(err)
	}
	_ = procs[first].Wait()
	second := waitOne(first)
	t.Logf("lease moved from %s to %s after kill -9", first, second)
}
