package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/idstream/idstream/cmd/idstream/load"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/node"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/workers"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the command ran and failed
	exitUsage   = 2 // the command line is wrong: unknown command or flag, bad argument
)

// usageError is a mistake on the command line: it is printed with the
// command's usage and exits with exitUsage. Package load has its own; both
// are recognised by their UsageError method.
type usageError struct{ error }

func (usageError) UsageError() bool { return true }

func (e usageError) Unwrap() error { return e.error }

func isUsage(err error) bool {
	var u interface{ UsageError() bool }
	return errors.As(err, &u) && u.UsageError()
}

// run executes the command line args and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRoot(stdin, stdout, stderr)
	root.SetArgs(oldSpelling(root, args, stderr))
	cmd, err := root.ExecuteContextC(ctx)
	switch {
	case err == nil:
		return exitOK
	case isUsage(err):
		fmt.Fprintf(stderr, "idstream: %v\n\n%s", err, cmd.UsageString())
		return exitUsage
	default:
		fmt.Fprintln(stderr, "idstream:", err)
		return exitFailure
	}
}

// toolNode connects an operator command to the running deployment.
func toolNode(ctx context.Context) (*node.Node, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, err
	}
	return node.Start(ctx, node.Options{Config: cfg, Log: newLogger(), Tool: true})
}

// newRoot builds the command tree, reading and writing the given streams.
func newRoot(stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	// Commands in the order below (serve first), not alphabetical.
	cobra.EnableCommandSorting = false
	root := &cobra.Command{
		Use:   "idstream",
		Short: "An identity backend on NATS JetStream and PostgreSQL",
		Long: `idstream runs the identity service (idstream serve) and the tools to
operate a deployment.`,
		Args: commandArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usageError{errors.New("missing command")}
		},
		SilenceErrors: true,
		SilenceUsage:  true,
		ValidArgsFunction: func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveNoFileComp
		},
	}
	// Before InitDefaultCompletionCmd: its commands keep the writer.
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		&cobra.Command{
			Use:   "serve",
			Short: "Run the server (API, projections, workers; embedded NATS unless NATS_URL)",
			Long: `Run the server: the HTTP API, the projections and the workers. Without
NATS_URL it runs an embedded NATS server (data in IDSTREAM_DATA_DIR); without
IDSTREAM_CONFIG it runs in development mode on http://127.0.0.1:8080 against
the local PostgreSQL.`,
			Example: "  idstream serve\n  IDSTREAM_CONFIG=/etc/idstream.yaml NATS_URL=nats://nats:4222 idstream serve",
			Args:    cobra.NoArgs,
			RunE:    func(c *cobra.Command, _ []string) error { return serve(c.Context()) },
		},
		&cobra.Command{
			Use:     "migrate",
			Short:   "Apply the database migrations and exit",
			Example: "  DATABASE_URL=postgres://postgres@127.0.0.1:5432/idstream idstream migrate",
			Args:    cobra.NoArgs,
			RunE:    func(c *cobra.Command, _ []string) error { return migrate(c.Context()) },
		},
		group("keys", "Access-token signing keys", &cobra.Command{
			Use:     "rotate",
			Short:   "Make a new access-token signing key; the old one stays in JWKS",
			Example: "  idstream keys rotate",
			Args:    cobra.NoArgs,
			RunE:    func(c *cobra.Command, _ []string) error { return rotateKeys(c.Context(), c.OutOrStdout()) },
		}),
		reapCommand(),
		group("seed", "Write test data into a deployment's log", seedCommand()),
		group("projections", "The read models: their state, and rebuilding one", projectionsStatusCommand(), projectionsReplayCommand()),
		group("events", "The event log", eventsTailCommand()),
		group("users", "Users in the read model", usersExportCommand()),
		group("analytics", "What the read models say of guests", analyticsCommand()),
		group("settings", "The runtime settings in the log",
			&cobra.Command{
				Use:     "show",
				Short:   "Print the settings every node runs with (from the log), as JSON",
				Example: "  idstream settings show",
				Args:    cobra.NoArgs,
				RunE:    func(c *cobra.Command, _ []string) error { return settingsShow(c.Context(), c.OutOrStdout()) },
			},
			&cobra.Command{
				Use:   "apply",
				Short: "Write the configuration file's settings to the log as a new version",
				Long: `Write the configuration file's settings (clients, anonymous users, guest
lifetimes, rate limits, promotion policy) to the log as a change by
"config-file"; every node applies it at once.`,
				Example: "  IDSTREAM_CONFIG=/etc/idstream.yaml idstream settings apply",
				Args:    cobra.NoArgs,
				RunE:    func(c *cobra.Command, _ []string) error { return settingsApply(c.Context(), c.OutOrStdout()) },
			}),
		group("portal", "The operator portal", &cobra.Command{
			Use:   "hash-password",
			Short: "Read a password on stdin, print its argon2id hash for portal.operators",
			Long: `Read an operator password (at least 12 characters) from the first line of
standard input and print its argon2id hash, with the configuration's
password parameters, for portal.operators[].password_hash.`,
			Example: "  idstream portal hash-password < password-file",
			Args:    cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return hashPassword(c.InOrStdin(), c.OutOrStdout())
			},
		}),
		load.Command(),
		outboxCommand(),
		&cobra.Command{
			Use:     "version",
			Short:   "Print idstream's version, commit and Go version",
			Example: "  idstream version",
			Args:    cobra.NoArgs,
			Run:     func(c *cobra.Command, _ []string) { fmt.Fprint(c.OutOrStdout(), versionText()) },
		},
	)
	root.SetHelpCommand(helpCommand())
	root.InitDefaultCompletionCmd()
	walk(root, func(c *cobra.Command) {
		if c.Args != nil {
			c.Args = usageArgs(c.Args)
		}
	})
	root.SetUsageTemplate(usageTemplate(root))
	return root
}

// helpCommand is `idstream help [command]`; an unknown topic is a usage
// error (cobra's own prints the root's help and exits 0).
func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "help [command]",
		Short:   "Help about any command",
		Example: "  idstream help projections replay",
		ValidArgsFunction: func(c *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var names []string
			for _, s := range cmd.Commands() {
				if s.IsAvailableCommand() {
					names = append(names, s.Name())
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usageError{fmt.Errorf("unknown help topic %q", strings.Join(args, " "))}
			}
			return cmd.Help()
		},
	}
}

// group is a noun with verbs: `idstream NOUN` alone or with an unknown verb
// is a usage error.
func group(use, short string, verbs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Args: commandArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var names []string
			for _, v := range c.Commands() {
				names = append(names, v.Name())
			}
			return usageError{fmt.Errorf("%q needs a command: %s", c.CommandPath(), strings.Join(names, ", "))}
		}}
	g.AddCommand(verbs...)
	return g
}

// commandArgs refuses arguments of a command that only has subcommands
// (they are unknown commands), with suggestions.
func commandArgs(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], c.CommandPath())
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return usageError{errors.New(msg)}
}

// usageArgs makes every argument error a usage error.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		err := v(c, args)
		if err != nil && !isUsage(err) {
			err = usageError{err}
		}
		return err
	}
}

func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, s := range c.Commands() {
		walk(s, f)
	}
}

func reapCommand() *cobra.Command {
	var dry bool
	c := &cobra.Command{
		Use:   "reap",
		Short: "Run one reaper pass now (--dry-run: list what would expire and why)",
		Long: `Run one pass of the guest reaper against the running deployment: retire
idle guests as the configured lifetimes say. With --dry-run it changes
nothing and lists what would expire and why, and what is active until when.`,
		Example: "  idstream reap --dry-run\n  IDSTREAM_REAPER_BATCH=100000 idstream reap",
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return reap(c.Context(), c.OutOrStdout(), dry) },
	}
	c.Flags().BoolVar(&dry, "dry-run", false, "list what would expire and why; change nothing")
	return c
}

func seedCommand() *cobra.Command {
	var o seedOptions
	c := &cobra.Command{
		Use:   "guests",
		Short: "Write N idle web guests into the log (load tests of the reaper, projections)",
		Long: `Write idle web guests through the sign-up deciders, in large atomic appends,
into the running deployment's log (load tests of the reaper and the
projections).`,
		Example: "  idstream seed guests -n 1000000\n  idstream seed guests -n 500000 --age 1m",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if o.count < 1 {
				return usageError{errors.New("--count must be positive")}
			}
			return seedGuests(c.Context(), c.OutOrStdout(), o)
		},
	}
	c.Flags().IntVarP(&o.count, "count", "n", 100000, "guests to create")
	c.Flags().DurationVar(&o.age, "age", 60*24*time.Hour, "how long ago they signed up (and were last seen)")
	c.Flags().StringVar(&o.clientID, "client-id", config.DevClientID, "client_id")
	return c
}

func projectionsStatusCommand() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:     "status",
		Short:   "Checkpoint, lag, state and failures of every projection",
		Example: "  idstream projections status\n  idstream projections status --json",
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return projectionsStatus(c.Context(), c.OutOrStdout(), asJSON)
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func projectionNames() []string {
	var names []string
	for _, p := range projections.All() {
		names = append(names, p.Name())
	}
	return names
}

func projectionsReplayCommand() *cobra.Command {
	var restart bool
	var batch int
	c := &cobra.Command{
		Use:   "replay NAME",
		Short: "Rebuild one projection (" + strings.Join(projectionNames(), ", ") + ") from the log, then swap it in",
		Long: `Rebuild one projection from the start of the log into a shadow schema
replay_<NAME> beside the live one, with a progress line, then swap the
rebuilt tables in atomically under the projection's checkpoint lock; the
live projection serves until the swap. An interrupted replay resumes where
it stopped (--restart starts over).`,
		Example: "  idstream projections replay users\n  idstream projections replay sessions --restart --batch 5000",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageError{fmt.Errorf("replay needs one projection name (%s), got %d arguments", strings.Join(projectionNames(), ", "), len(args))}
			}
			return nil
		},
		ValidArgsFunction: func(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return projectionNames(), cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			return projectionsReplay(c.Context(), c.OutOrStdout(), args[0], restart, batch)
		},
	}
	c.Flags().BoolVar(&restart, "restart", false, "drop the shadow of an interrupted replay and start from the beginning of the log")
	c.Flags().IntVar(&batch, "batch", 10000, "events applied per transaction")
	return c
}

func eventsTailCommand() *cobra.Command {
	var o tailOptions
	c := &cobra.Command{
		Use:   "tail",
		Short: "The log as JSON lines (credential hashes redacted), following new events",
		Example: `  idstream events tail --no-follow
  idstream events tail --user 0b0e7c52-3f0e-4a55-9d3b-2f6f1d1c9e11 --type user.promoted.v1
  idstream events tail --since 2026-12-01T00:00:00Z`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error { return eventsTail(c.Context(), c.OutOrStdout(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.user, "user", "", "only events about this sub (user_id, guest_id or into_user_id in the data)")
	f.StringVar(&o.typ, "type", "", "only this event type (e.g. user.promoted.v1)")
	f.StringVar(&o.since, "since", "", "start at this time (RFC 3339) instead of the beginning")
	f.Uint64Var(&o.fromSeq, "from-seq", 0, "start at this stream sequence")
	f.BoolVar(&o.noFollow, "no-follow", false, "stop at the end of the log instead of waiting for new events")
	return c
}

func usersExportCommand() *cobra.Command {
	var o exportOptions
	c := &cobra.Command{
		Use:   "export",
		Short: "Every user from the read model as NDJSON or CSV, with a progress bar",
		Long: `Write every user from the read model, as the export API writes it, with a
progress bar on stderr. With --output the file appears (mode 0600) only when
complete. The export reads PostgreSQL only (DATABASE_URL); no NATS needed.`,
		Example: "  idstream users export --format csv --output users.csv\n  idstream users export --format csv --fields sub,login_id > ids.csv",
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return usersExport(c.Context(), c.OutOrStdout(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.format, "format", workers.FormatNDJSON, "ndjson or csv")
	f.StringVar(&o.fields, "fields", "", "CSV columns, comma-separated (default: all): "+strings.Join(projections.UserFields, ","))
	f.StringVar(&o.output, "output", "", "file to write (default: stdout)")
	_ = c.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{workers.FormatNDJSON, workers.FormatCSV}, cobra.ShellCompDirectiveNoFileComp))
	_ = c.RegisterFlagCompletionFunc("fields", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return projections.UserFields, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	})
	return c
}

// versionText is what `idstream version` prints: the module version, the
// commit it was built from (when the build knows it) and the Go version.
func versionText() string {
	version, commit, modified := "(devel)", "unknown", false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if modified {
		commit += "+modified"
	}
	return fmt.Sprintf("idstream %s commit %s %s %s/%s\n", version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// usageTemplate is cobra's usage for every command but the root, whose
// usage lists every command of the tree (`noun verb`), not only the nouns.
func usageTemplate(root *cobra.Command) string {
	var b strings.Builder
	var rows [][2]string
	walk(root, func(c *cobra.Command) {
		if c == root || c.Hidden || (c.HasAvailableSubCommands() && c.Name() != "completion") {
			return
		}
		if c.HasParent() && c.Parent().Name() == "completion" {
			return
		}
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if _, rest, ok := strings.Cut(c.Use, " "); ok {
			path += " " + rest
		}
		short := c.Short
		switch c.Name() {
		case "completion":
			path += " bash|zsh|fish|powershell"
			short = "Print a shell completion script (see `idstream completion bash --help`)"
		case "help":
			path = "help [command]"
		}
		rows = append(rows, [2]string{path, short})
	})
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, r[0], r[1])
	}
	table := strings.ReplaceAll(b.String(), "{{", "{{`{{`}}")
	return `{{if .HasParent}}` + (&cobra.Command{}).UsageTemplate() + `{{else}}Usage:
  idstream <command> [flags]

Commands:
` + table + `
Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}

Configuration: IDSTREAM_CONFIG (a YAML file), IDSTREAM_ADDR, IDSTREAM_DATA_DIR,
DATABASE_URL, NATS_URL and more; see README.md.

Use "idstream <command> --help" for a command's flags and examples.
Exit status: 0 done, 1 the command failed, 2 a usage error.
{{end}}`
}

// oldSpelling rewrites the single-dash long flags of earlier releases
// (-url, -json, -lag-sample, …) to the GNU spelling (--url) with a warning
// on stderr. It goes away in the next release.
func oldSpelling(root *cobra.Command, args []string, stderr io.Writer) []string {
	c, _, err := root.Find(args)
	if err != nil {
		return args
	}
	lookup := func(name string) *pflag.Flag {
		if f := c.Flags().Lookup(name); f != nil {
			return f
		}
		return c.InheritedFlags().Lookup(name)
	}
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			out = append(out, args[i:]...)
			break
		}
		var f *pflag.Flag
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch {
		case strings.HasPrefix(a, "--"):
			f = lookup(name)
		case strings.HasPrefix(a, "-") && len(name) > 1:
			if f = lookup(name); f != nil {
				fmt.Fprintf(stderr, "idstream: warning: -%s is the old spelling of --%s; it will stop working in the next release\n", name, name)
				a = "-" + a
			}
		case strings.HasPrefix(a, "-") && len(name) == 1:
			f = c.Flags().ShorthandLookup(name)
		}
		out = append(out, a)
		// The value of a flag that takes one is not a flag.
		if f != nil && !hasValue && f.NoOptDefVal == "" && i+1 < len(args) {
			i++
			out = append(out, args[i])
		}
	}
	return out
}
