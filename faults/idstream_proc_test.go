package faults_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/idstream/idstream/testenv"
)

// idstreamBinary is cmd/idstream built from this tree.
func idstreamBinary(t *testing.T) string { return idstreamBin.get(t) }

// idstreamProc is `idstream serve` as an OS process, on an external NATS
// server and a given database.
type idstreamProc struct {
	t    *testing.T
	bin  string
	dir  string
	addr string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
}

func newIdstreamProc(t *testing.T, natsURL, databaseURL string) *idstreamProc {
	t.Helper()
	p := &idstreamProc{t: t, bin: idstreamBinary(t), dir: t.TempDir(), addr: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	// The process's configuration is this test's, whatever the environment
	// running the tests says.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDSTREAM_") && !strings.HasPrefix(kv, "DATABASE_URL=") && !strings.HasPrefix(kv, "NATS_URL=") {
			p.env = append(p.env, kv)
		}
	}
	p.env = append(p.env, "NATS_URL="+natsURL, "DATABASE_URL="+databaseURL, "IDSTREAM_ADDR="+p.addr,
		"IDSTREAM_DATA_DIR="+filepath.Join(p.dir, "data"))
	t.Cleanup(p.kill9)
	return p
}

// start starts the process and waits until it answers /healthz.
func (p *idstreamProc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "serve")
	p.cmd.Env = p.env
	p.done = startLogged(p.t, p.cmd, filepath.Join(p.dir, "idstream.log"), 0o600)
	done := p.done
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			p.t.Fatalf("idstream exited at start:\n%s", p.logs())
		default:
		}
		resp, err := hc.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("idstream did not answer /healthz:\n%s", p.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill9 kills the process with SIGKILL: no shutdown, no flush.
func (p *idstreamProc) kill9() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.cmd = nil
}

// logs returns the end of the process's log.
func (p *idstreamProc) logs() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "idstream.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// startLogged starts cmd with its output appended to logPath; the channel
// closes when the process has exited.
func startLogged(t testing.TB, cmd *exec.Cmd, logPath string, perm os.FileMode) chan struct{} {
	t.Helper()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, perm)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return done
}
