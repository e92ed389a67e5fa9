package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/password"
)

const settingsUsage = `usage: idstream settings show | apply
  show    the settings every node runs with (from the log), as JSON
  apply   write the configuration file's settings (clients, anonymous users,
          guest lifetimes, rate limits, promotion policy) to the log as a
          change by "config-file"; every node applies it at once`

// settingsCmd is `idstream settings show|apply`.
func settingsCmd(ctx context.Context, args []string) error {
	if len(args) != 1 || (args[0] != "show" && args[0] != "apply") {
		return errors.New(settingsUsage)
	}
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.WithoutCancel(ctx))
	if args[0] == "apply" {
		_, version := n.Service.SettingsVersion()
		v, err := n.Service.ChangeSettings(ctx, version, n.Config.Settings(), "config-file", app.Meta{Actor: "config-file"})
		var se *domain.SettingsError
		switch {
		case errors.Is(err, domain.ErrSettingsUnchanged):
			fmt.Println("the log already has these settings; nothing written")
			return nil
		case errors.As(err, &se):
			return fmt.Errorf("the configuration's settings are refused: %w", err)
		case err != nil:
			return err
		}
		fmt.Printf("settings version %d written; every node applies it within a second\n", v)
		return nil
	}
	s, v := n.Service.SettingsVersion()
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"version": v, "settings": s})
}

// portalCmd is `idstream portal hash-password`: it reads a password from
// standard input and prints its argon2id hash for portal.operators.
func portalCmd(args []string) error {
	if len(args) != 1 || args[0] != "hash-password" {
		return errors.New("usage: idstream portal hash-password < password-file")
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
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
	fmt.Println(h)
	return nil
}
