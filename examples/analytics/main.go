// Command analytics shows how an app's analytics consume idstream's event
// stream: a durable JetStream consumer of its own keeps a table of identity
// links (package links), and a query joins the app's activity to it, so what
// a person did as a guest and then as a member is one history.
//
//	go run ./examples/analytics consume [-once] [-replay | -replay-from SEQ]
//	go run ./examples/analytics comment -sub SUB -body TEXT
//	go run ./examples/analytics report
//
// Every command takes -nats, -database-url, -consumer, -stream and
// -subject-prefix; see README.md.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/examples/analytics/links"
)

var (
	//go:embed app.sql
	appSchema string
	//go:embed report.sql
	reportQuery string
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: analytics consume|comment|report [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, os.Args[1], os.Args[2:], os.Stdout, log); err != nil {
		fmt.Fprintln(os.Stderr, "analytics:", err)
		os.Exit(1)
	}
}

// options are the flags every command takes.
type options struct {
	natsURL     string
	nkeySeed    string
	creds       string
	databaseURL string
	links       links.Config
}

func (o *options) register(fs *flag.FlagSet) {
	o.links = links.DefaultConfig()
	fs.StringVar(&o.natsURL, "nats", envOr("NATS_URL", "nats://127.0.0.1:4223"), "NATS server of the idstream deployment")
	fs.StringVar(&o.nkeySeed, "nkey-seed", os.Getenv("NATS_NKEY_SEED"), "nkey seed file to authenticate with (the dev server's: data/nats-user.nk)")
	fs.StringVar(&o.creds, "creds", os.Getenv("NATS_CREDS"), "NATS creds file to authenticate with (user and password go in the URL)")
	fs.StringVar(&o.databaseURL, "database-url", envOr("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/idstream?sslmode=disable"),
		"the app's PostgreSQL database (the analytics tables are created there)")
	fs.StringVar(&o.links.Consumer, "consumer", o.links.Consumer, "durable consumer name")
	fs.StringVar(&o.links.Stream, "stream", o.links.Stream, "event stream name")
	fs.StringVar(&o.links.SubjectPrefix, "subject-prefix", o.links.SubjectPrefix, "first token of the stream's subjects")
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, cmd string, args []string, out io.Writer, log *slog.Logger) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	var o options
	o.register(fs)
	switch cmd {
	case "consume":
		once := fs.Bool("once", false, "apply what the stream has now, then exit")
		replay := fs.Bool("replay", false, "rebuild the links from the start of the stream first")
		from := fs.Uint64("replay-from", 0, "rebuild the links from this stream sequence first")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *replay {
			*from = 1
		}
		return consume(ctx, o, *once, *from, out, log)
	case "comment":
		sub := fs.String("sub", "", "the author's sub")
		body := fs.String("body", "", "the comment")
		if err := fs.Parse(args); err != nil {
			return err
		}
		if *sub == "" || *body == "" {
			return errors.New("comment needs -sub and -body")
		}
		db, err := pgxpool.New(ctx, o.databaseURL)
		if err != nil {
			return err
		}
		defer db.Close()
		return addComment(ctx, db, *sub, *body, time.Now())
	case "report":
		if err := fs.Parse(args); err != nil {
			return err
		}
		db, err := pgxpool.New(ctx, o.databaseURL)
		if err != nil {
			return err
		}
		defer db.Close()
		rows, err := readReport(ctx, db)
		if err != nil {
			return err
		}
		return printReport(out, rows)
	default:
		return fmt.Errorf("unknown command %q: consume, comment or report", cmd)
	}
}

func consume(ctx context.Context, o options, once bool, replayFrom uint64, out io.Writer, log *slog.Logger) error {
	db, err := pgxpool.New(ctx, o.databaseURL)
	if err != nil {
		return err
	}
	defer db.Close()
	opts := []nats.Option{nats.Name("idstream-analytics"), nats.MaxReconnects(-1)}
	if o.nkeySeed != "" {
		opt, err := nats.NkeyOptionFromSeed(o.nkeySeed)
		if err != nil {
			return err
		}
		opts = append(opts, opt)
	}
	if o.creds != "" {
		opts = append(opts, nats.UserCredentials(o.creds))
	}
	nc, err := nats.Connect(o.natsURL, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	c, err := links.New(db, js, o.links, log)
	if err != nil {
		return err
	}
	if replayFrom > 0 {
		if err := c.Replay(ctx, replayFrom); err != nil {
			return err
		}
	}
	if !once {
		return c.Run(ctx)
	}
	st, err := c.CatchUp(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "applied=%d ignored=%d skipped=%d position=%d\n", st.Applied, st.Ignored, st.Skipped, st.Position)
	return nil
}

// addComment is the demo app writing its own activity.
func addComment(ctx context.Context, db *pgxpool.Pool, sub, body string, at time.Time) error {
	if _, err := db.Exec(ctx, appSchema); err != nil {
		return err
	}
	_, err := db.Exec(ctx, `INSERT INTO app_comments (author_sub, body, created_at) VALUES ($1, $2, $3)`, sub, body, at)
	return err
}

// reportRow is one comment in a person's history.
type reportRow struct {
	PersonID  string    `db:"person_id"`
	CreatedAt time.Time `db:"created_at"`
	CommentID int64     `db:"comment_id"`
	AuthorSub string    `db:"author_sub"`
	AuthorWas string    `db:"author_was"`
	Body      string    `db:"body"`
}

// readReport runs report.sql.
func readReport(ctx context.Context, db *pgxpool.Pool) ([]reportRow, error) {
	if _, err := db.Exec(ctx, appSchema); err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, reportQuery)
	if err != nil {
		return nil, fmt.Errorf("report (has the consumer run?): %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByName[reportRow])
}

func printReport(out io.Writer, rows []reportRow) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "PERSON\tAT\tAS\tAUTHOR SUB\tCOMMENT")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", r.PersonID, r.CreatedAt.UTC().Format(time.RFC3339), r.AuthorWas, r.AuthorSub, r.Body)
	}
	return w.Flush()
}
