package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/password"
)

// settingsShow is `idstream settings show`: the settings every node runs
// with (from the log), as JSON.
func settingsShow(ctx context.Context, out io.Writer) error {
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.WithoutCancel(ctx))
	s, v := n.Service.SettingsVersion()
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"version": v, "settings": s})
}

// settingsApply is `idstream settings apply`: the configuration's settings
// written to the log as a change by "config-file".
func settingsApply(ctx context.Context, out io.Writer) error {
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.WithoutCancel(ctx))
	_, version := n.Service.SettingsVersion()
	v, err := n.Service.ChangeSettings(ctx, version, n.Config.Settings(), "config-file", app.Meta{Actor: "config-file"})
	var se *domain.SettingsError
	switch {
	case errors.Is(err, domain.ErrSettingsUnchanged):
		fmt.Fprintln(out, "the log already has these settings; nothing written")
		return nil
	case errors.As(err, &se):
		return fmt.Errorf("the configuration's settings are refused: %w", err)
	case err != nil:
		return err
	}
	fmt.Fprintf(out, "settings version %d written; every node applies it within a second\n", v)
	return nil
}

// hashPassword is `idstream portal hash-password`: it reads a password from
// in and prints its argon2id hash for portal.operators.
func hashPassword(in io.Reader, out io.Writer) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return errors.New("no password on standard input")
	}
	pw := strings.TrimRight(line, "\r\n")
	if len(pw) < 12 {
		return errors.New("an operator password needs at least 12 characters")
	}
	h, err := password.Hash(rand.Reader, pw, password.Params{MemoryKiB: cfg.Password.MemoryKiB, Iterations: cfg.Password.Iterations,
		Parallelism: cfg.Password.Parallelism})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, h)
	return nil
}
