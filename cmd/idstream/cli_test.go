package main

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/password"
)

// runCLI runs the command line in-process and returns the exit code and
// what it wrote to stdout and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut strings.Builder
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

// everyCommand is the command line as operators and scripts use it.
var everyCommand = []string{
	"serve", "migrate", "keys rotate", "reap", "seed guests", "projections status", "projections replay",
	"events tail", "users export", "analytics funnel", "settings show", "settings apply", "portal hash-password",
	"bench signup", "bench refresh", "bench mixed", "bench keypair", "bench promote", "bench soak", "outbox", "version", "completion",
}

func TestHelpListsEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runCLI(t, "", args...)
		if code != exitOK {
			t.Fatalf("%v: exit %d", args, code)
		}
		for _, c := range everyCommand {
			if !strings.Contains(out, "\n  "+c+" ") {
				t.Errorf("%v does not list %q:\n%s", args, c, out)
			}
		}
	}
	// And nothing in the tree is left out of the list.
	code, out, _ := runCLI(t, "", "--help")
	if code != exitOK {
		t.Fatal(code)
	}
	walk(newRoot(strings.NewReader(""), io.Discard, io.Discard), func(c *cobra.Command) {
		if c.HasParent() && !c.HasAvailableSubCommands() && c.Parent().Name() != "completion" && !c.Hidden {
			if path := strings.TrimPrefix(c.CommandPath(), "idstream "); !strings.Contains(out, "\n  "+path) {
				t.Errorf("--help does not list %q", path)
			}
		}
	})
}

// TestEveryCommandHasHelp asks every command of the tree for --help: it
// exits 0 without running, shows the command's usage, and every command
// that does something has examples.
func TestEveryCommandHasHelp(t *testing.T) {
	var paths [][]string
	walk(newRoot(strings.NewReader(""), io.Discard, io.Discard), func(c *cobra.Command) {
		if c.HasParent() {
			paths = append(paths, strings.Fields(strings.TrimPrefix(c.CommandPath(), "idstream ")))
		}
	})
	if len(paths) < len(everyCommand) {
		t.Fatalf("only %d commands: %v", len(paths), paths)
	}
	for _, p := range paths {
		code, out, errOut := runCLI(t, "", append(slices.Clone(p), "--help")...)
		if code != exitOK || errOut != "" {
			t.Errorf("%v --help: exit %d, stderr %q", p, code, errOut)
			continue
		}
		if !strings.Contains(out, "Usage:\n  idstream "+strings.Join(p, " ")) {
			t.Errorf("%v --help shows no usage:\n%s", p, out)
		}
		leaf := !strings.Contains(out, "Available Commands:")
		if leaf && p[0] != "completion" && p[0] != "help" && !examples(out, "idstream "+strings.Join(p, " ")) {
			t.Errorf("%v --help has no example:\n%s", p, out)
		}
	}
}

// examples says whether help has an Examples section that runs cmd.
func examples(help, cmd string) bool {
	_, ex, ok := strings.Cut(help, "\nExamples:\n")
	ex, _, _ = strings.Cut(ex, "\n\n")
	return ok && strings.Contains(ex, cmd)
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in stderr
	}{
		{[]string{}, "missing command"},
		{[]string{"nosuch"}, `unknown command "nosuch" for "idstream"`},
		{[]string{"keys"}, `"idstream keys" needs a command: rotate`},
		{[]string{"keys", "rotat"}, "did you mean rotate?"},
		{[]string{"serve", "--no-such-flag"}, "unknown flag: --no-such-flag"},
		{[]string{"serve", "extra"}, `unknown command "extra" for "idstream serve"`},
		{[]string{"bench", "signup", "-x"}, "unknown shorthand flag: 'x' in -x"},
		{[]string{"bench", "signup", "-c", "many"}, `invalid argument "many" for "-c, --concurrency" flag`},
		{[]string{"bench", "signup", "--url", "http://example.com"}, "only loopback targets are allowed"},
		{[]string{"bench", "soak", "-c", "0"}, "must be positive"},
		{[]string{"projections", "replay"}, "replay needs one projection name (users, sessions, identities, funnel)"},
		{[]string{"projections", "replay", "nosuch"}, `no projection "nosuch"; there are users, sessions, identities`},
		{[]string{"projections", "replay", "users", "--batch", "0"}, "--batch must be positive"},
		{[]string{"users", "export", "--format", "xml"}, "ndjson or csv"},
		{[]string{"users", "export", "--fields", "sub"}, "--fields goes with --format csv"},
		{[]string{"events", "tail", "--since", "yesterday"}, "--since"},
		{[]string{"seed", "guests", "-n", "0"}, "--count must be positive"},
		{[]string{"bench", "soak", "--mix", "signup=x"}, `--mix "signup=x": want op=weight`},
		{[]string{"bench", "refresh", "--sessions", "0"}, "bench refresh: --sessions must be positive"},
		{[]string{"bench", "mixed", "--mix", "keypair=1"}, `bench mixed: --mix "keypair=1": want op=weight,… with ops signup, refresh, promote`},
		{[]string{"bench", "mixed", "--mix", "signup=0"}, "bench mixed: --mix has no positive weight"},
		{[]string{"help", "nosuch"}, `unknown help topic "nosuch"`},
		{[]string{"help", "keys", "rotat"}, `unknown help topic "keys rotat"`},
	} {
		code, out, errOut := runCLI(t, "", tc.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, exitUsage, errOut)
		}
		if !strings.HasPrefix(errOut, "idstream: ") || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "\nUsage:\n") {
			t.Errorf("%v: stderr lacks %q and the usage:\n%s", tc.args, tc.want, errOut)
		}
		if out != "" {
			t.Errorf("%v: stdout %q", tc.args, out)
		}
	}
}

func TestCompletion(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "__start_idstream", "zsh": "#compdef idstream", "fish": "complete -c idstream", "powershell": "Register-ArgumentCompleter",
	} {
		code, out, errOut := runCLI(t, "", "completion", shell)
		if code != exitOK || !strings.Contains(out, marker) {
			t.Errorf("completion %s: exit %d, stderr %q, no %q in %d bytes", shell, code, errOut, marker, len(out))
		}
	}
	// The scripts call back into the binary; what it proposes:
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", ""}, []string{"serve", "projections", "bench", "completion"}},
		{[]string{"__complete", "projections", ""}, []string{"status", "replay"}},
		{[]string{"__complete", "projections", "replay", ""}, []string{"users", "sessions", "identities"}},
		{[]string{"__complete", "users", "export", "--format", ""}, []string{"ndjson", "csv"}},
		{[]string{"__complete", "bench", "keypair", "--dev"}, []string{"--devices"}},
		{[]string{"__complete", "bench", ""}, []string{"signup", "refresh", "mixed", "keypair", "promote", "soak"}},
		{[]string{"__complete", "bench", "refresh", "--sess"}, []string{"--sessions"}},
	} {
		code, out, _ := runCLI(t, "", tc.args...)
		if code != exitOK {
			t.Errorf("%v: exit %d", tc.args, code)
		}
		var got []string
		for _, line := range strings.Split(out, "\n") {
			if line != "" && !strings.HasPrefix(line, ":") {
				got = append(got, strings.SplitN(line, "\t", 2)[0])
			}
		}
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("%v proposes %v, not %q", tc.args, got, w)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "", "version")
	if code != exitOK || !strings.HasPrefix(out, "idstream ") || !strings.Contains(out, " go1.") {
		t.Fatalf("exit %d: %q", code, out)
	}
}

func TestHashPassword(t *testing.T) {
	t.Setenv("IDSTREAM_CONFIG", "")
	cfg, err := config.Load()
	if err != nil {
		t.Fatal(err)
	}
	const pw = "a long operator password"
	code, out, errOut := runCLI(t, pw+"\n", "portal", "hash-password")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	hash := strings.TrimSpace(out)
	if strings.Contains(out, pw) || strings.Contains(errOut, pw) {
		t.Fatal("the password was printed")
	}
	want := password.Params{MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations, Parallelism: cfg.Password.Parallelism}
	if ok, rehash, err := password.Verify(hash, pw, want); err != nil || !ok || rehash {
		t.Fatalf("%q does not verify (ok %v, rehash %v, %v)", hash, ok, rehash, err)
	}
	if ok, _, _ := password.Verify(hash, pw+"!", want); ok {
		t.Fatal("another password verifies")
	}
	// Too short, or nothing on stdin: a failure (exit 1), not a usage error.
	for _, in := range []string{"short\n", ""} {
		if code, out, errOut := runCLI(t, in, "portal", "hash-password"); code != exitFailure || out != "" || !strings.HasPrefix(errOut, "idstream: ") {
			t.Errorf("stdin %q: exit %d, stdout %q, stderr %q", in, code, out, errOut)
		}
	}
}

// TestOldSpelling: the single-dash long flags of the previous release
// still work, with a warning, and values are left alone.
func TestOldSpelling(t *testing.T) {
	var warn strings.Builder
	got := oldSpelling(newRoot(strings.NewReader(""), io.Discard, io.Discard), []string{"bench", "soak", "-url", "http://127.0.0.1:1", "-lag-sample=5", "-c", "4",
		"--mix", "-signup=1", "-pid", "7", "-d", "1s", "--", "-keep"}, &warn)
	want := []string{"bench", "soak", "--url", "http://127.0.0.1:1", "--lag-sample=5", "-c", "4",
		"--mix", "-signup=1", "--pid", "7", "-d", "1s", "--", "-keep"}
	if !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	for _, f := range []string{"-url", "-lag-sample", "-pid"} {
		if !strings.Contains(warn.String(), f+" is the old spelling of -"+f) {
			t.Errorf("no warning for %s: %q", f, warn.String())
		}
	}
	if strings.Count(warn.String(), "\n") != 3 {
		t.Errorf("warnings: %q", warn.String())
	}
	// Through the whole command line: -batch reaches the flag.
	code, _, errOut := runCLI(t, "", "projections", "replay", "-batch", "0", "users")
	if code != exitUsage || !strings.Contains(errOut, "--batch must be positive") || !strings.Contains(errOut, "-batch is the old spelling") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
