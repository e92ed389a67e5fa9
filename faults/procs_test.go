package faults_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/idstream/idstream/testenv"
)

// builtBinary builds a Go package into a temporary directory, once per
// test binary and package.
type builtBinary struct {
	once sync.Once
	pkg  string
	path string
	err  error
}

var (
	natsServerBin = &builtBinary{pkg: "github.com/nats-io/nats-server/v2"}
	idstreamBin   = &builtBinary{pkg: "github.com/idstream/idstream/cmd/idstream"}
)

func (b *builtBinary) get(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go tool is not on PATH: cannot build " + b.pkg)
	}
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "idstream-"+filepath.Base(b.pkg)+"-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(b.pkg))
		if out, err := exec.Command("go", "build", "-o", b.path, b.pkg).CombinedOutput(); err != nil {
			b.err = fmt.Errorf("build %s: %v\n%s", b.pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// natsServerBinary is nats-server from the Go module idstream embeds (the
// same version).
func natsServerBinary(t *testing.T) string { return natsServerBin.get(t) }

// natsProc is a nats-server OS process with JetStream on a directory that
// survives restarts.
type natsProc struct {
	t       *testing.T
	bin     string
	dir     string
	port    int
	monPort int
	cmd     *exec.Cmd
}

func startNATSProc(t *testing.T) *natsProc {
	t.Helper()
	p := &natsProc{t: t, bin: natsServerBinary(t), dir: t.TempDir(), port: testenv.FreePort(t), monPort: testenv.FreePort(t)}
	conf := fmt.Sprintf("listen: 127.0.0.1:%d\nhttp: 127.0.0.1:%d\nserver_name: faults\njetstream {\n  store_dir: %q\n  sync_interval: always\n}\n",
		p.port, p.monPort, filepath.Join(p.dir, "js"))
	if err := os.WriteFile(filepath.Join(p.dir, "nats.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	p.start()
	t.Cleanup(func() { p.kill9() })
	return p
}

func (p *natsProc) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", p.port) }

func (p *natsProc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "-c", filepath.Join(p.dir, "nats.conf"))
	log, err := os.OpenFile(filepath.Join(p.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = log, log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", p.monPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			p.t.Fatal("nats-server did not become healthy")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill9 kills the process with SIGKILL: no shutdown, no flush.
func (p *natsProc) kill9() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_, _ = p.cmd.Process.Wait()
	p.cmd = nil
}
