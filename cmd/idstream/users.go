package main

import (
	"bufio"
	"context"
	"errors"
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

// exportOptions are the flags of `idstream users export`.
type exportOptions struct {
	format, fields, output string
}

// usersExport is `idstream users export`.
func usersExport(ctx context.Context, out io.Writer, o exportOptions) error {
	var fields []string
	if o.fields != "" {
		if o.format != workers.FormatCSV {
			return usageError{errors.New("--fields goes with --format csv")}
		}
		fields = strings.Split(o.fields, ",")
	}
	if _, err := workers.CheckExport(o.format, fields); err != nil {
		return usageError{err}
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
	w := out
	if o.output != "" {
		// Written beside the target and renamed when complete, so a reader
		// never sees half a file.
		f, err := os.CreateTemp(filepath.Dir(o.output), ".idstream-export-*")
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
	done, err := workers.WriteUsers(ctx, pool, bw, o.format, fields, bar.Update)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return err
	}
	bar.Finish(done)
	if f, ok := w.(*os.File); ok && o.output != "" {
		if err := f.Sync(); err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Chmod(f.Name(), 0o600); err != nil {
			return err
		}
		if err := os.Rename(f.Name(), o.output); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "exported %d users in %s (%.0f users/s)\n", done, time.Since(start).Round(time.Millisecond),
		float64(done)/time.Since(start).Seconds())
	return nil
}
