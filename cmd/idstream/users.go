package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/workers"
)

// usersCmd is `idstream users export`.
func usersCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "export" {
		return errors.New("usage: idstream users export --format ndjson|csv [--fields a,b] [--output FILE]")
	}
	fs := flag.NewFlagSet("users export", flag.ContinueOnError)
	format := fs.String("format", "ndjson", "ndjson or csv")
	fieldList := fs.String("fields", "", "CSV columns, comma-separated (default: all): "+strings.Join(projections.UserFields, ","))
	output := fs.String("output", "", "file to write (default: stdout)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	var fields []string
	if *fieldList != "" {
		if *format != workers.FormatCSV {
			return errors.New("--fields goes with --format csv")
		}
		fields = strings.Split(*fieldList, ",")
	}
	if _, err := workers.CheckExport(*format, fields); err != nil {
		return err
	}
	// The export reads only the read model: no NATS needed.
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	var w io.Writer = os.Stdout
	if *output != "" {
		// Written beside the target and renamed when complete, so a reader
		// never sees half a file.
		f, err := os.CreateTemp(filepath.Dir(*output), ".idstream-export-*")
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		w = f
	}
	total, err := projections.CountUsers(ctx, pool)
	if err != nil {
		return err
	}
	bar := newProgress("exporting users", total)
	start := time.Now()
	bw := bufio.NewWriterSize(w, 1<<20)
	done, err := workers.WriteUsers(ctx, pool, bw, *format, fields, bar.Update)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return err
	}
	bar.Finish(done)
	if f, ok := w.(*os.File); ok && *output != "" {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Chmod(f.Name(), 0o600); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), *output); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "exported %d users in %s (%.0f users/s)\n", done, time.Since(start).Round(time.Millisecond),
		float64(done)/time.Since(start).Seconds())
	return nil
}
