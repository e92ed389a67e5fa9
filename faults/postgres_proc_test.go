package faults_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/migrations"

	"github.com/idstream/idstream/testenv"
)

// pgProc is a private PostgreSQL server, an OS process this test may stop,
// crash and restart without touching the shared server other tests use.
type pgProc struct {
	t    *testing.T
	bin  string // directory of initdb and postgres
	base string // 0777 directory under /tmp: data directory, socket, log
	port int
	cred *syscall.Credential // the postgres user's, when running as root
	cmd  *exec.Cmd
	done chan struct{}
}

// postgresBin finds the directory of initdb and postgres: the newest under
// /usr/lib/postgresql, else PATH.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	initdb, err1 := exec.LookPath("initdb")
	postgres, err2 := exec.LookPath("postgres")
	if err1 == nil && err2 == nil && filepath.Dir(initdb) == filepath.Dir(postgres) {
		return filepath.Dir(initdb), nil
	}
	return "", errors.New("no initdb and postgres under /usr/lib/postgresql/*/bin or on PATH")
}

func isExec(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// startPostgresProc initialises a data directory and starts PostgreSQL on a
// free loopback port (fsync off: a crash of the process, not of the
// machine, loses nothing). It is stopped (immediate shutdown, then SIGKILL)
// when the test ends.
func startPostgresProc(t *testing.T) *pgProc {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Skip("PostgreSQL binaries needed for a private server: " + err.Error())
	}
	p := &pgProc{t: t, bin: bin, port: testenv.FreePort(t)}
	if os.Geteuid() == 0 {
		// initdb and postgres refuse to run as root.
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no postgres user to run a private PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// Under /tmp, not TMPDIR: the postgres user must reach it.
	if p.base, err = os.MkdirTemp("/tmp", "idstream-pg-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(p.base) })
	if err := os.Chmod(p.base, 0o777); err != nil {
		t.Fatal(err)
	}
	if p.cred != nil {
		if err := os.Chown(p.base, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", p.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	initdb.Env = p.env()
	initdb.Dir = p.base
	initdb.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	initdb.Stdin = nil
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(p.stopForGood)
	p.start()
	return p
}

func (p *pgProc) dataDir() string { return filepath.Join(p.base, "data") }

func (p *pgProc) env() []string {
	return []string{"PATH=" + p.bin + ":/usr/bin:/bin", "LC_ALL=C", "TZ=UTC", "HOME=" + p.base}
}

// AdminURL is the server's postgres database.
func (p *pgProc) adminURL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", p.port)
}

// start starts the server on its data directory and port and waits until it
// accepts connections; after a crash it retries while the old server's
// processes are still on their way out.
func (p *pgProc) start() {
	p.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for attempt := 1; ; attempt++ {
		err := p.try(deadline)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("private PostgreSQL did not start (attempt %d): %v\n%s", attempt, err, p.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (p *pgProc) try(deadline time.Time) error {
	p.cmd = exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.dataDir(), "-p", strconv.Itoa(p.port), "-k", p.base,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=100", "-c", "shared_buffers=32MB", "-c", "timezone=UTC")
	p.cmd.Env = p.env()
	p.cmd.Dir = p.base
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred}
	p.done = startLogged(p.t, p.cmd, filepath.Join(p.base, "postgres.log"), 0o666)
	done := p.done
	for {
		select {
		case <-done:
			p.cmd = nil
			return errors.New("postgres exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, p.adminURL())
		if err == nil {
			err = conn.Ping(ctx)
			_ = conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			p.signal(syscall.SIGKILL)
			return fmt.Errorf("not accepting connections: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signal sends sig to the postmaster and waits (at most 30 s) until it has
// exited.
func (p *pgProc) signal(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.cmd = nil
}

// crash kills the postmaster with SIGKILL; its backends notice and exit.
func (p *pgProc) crash() { p.signal(syscall.SIGKILL) }

// fastStop is PostgreSQL's fast shutdown: clients are disconnected, open
// transactions roll back.
func (p *pgProc) fastStop() { p.signal(syscall.SIGINT) }

func (p *pgProc) stopForGood() {
	p.signal(syscall.SIGQUIT) // immediate shutdown: the postmaster stops its children
}

func (p *pgProc) logs() string {
	b, _ := os.ReadFile(filepath.Join(p.base, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// database creates a fresh, migrated database on the private server and
// returns its URL and a pool (closed when the test ends).
func (p *pgProc) database(t *testing.T) (string, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	name := "idstream_f_" + strings.ReplaceAll(uuid.NewString()[:13], "-", "")
	admin, err := pgx.Connect(ctx, p.adminURL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	_ = admin.Close(ctx)
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.port, name)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Run(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return url, pool
}
