package main

import (
	"fmt"
	"io"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/config"
	"github.com/spf13/cobra"
)

// outboxCommand is `idstream outbox [-n N]`: the newest messages
// development mode wrote instead of sending them (codes included: that is
// what they are for, on the developer's own machine), newest first.
func outboxCommand() *cobra.Command {
	var n int
	c := &cobra.Command{
		Use:   "outbox",
		Short: "Development mode: print the newest messages (one-time codes) kept instead of sent",
		Long: `Print the newest messages that development mode (no SMTP or SMS provider
configured) wrote to <data_dir>/outbox instead of sending them, newest
first. They hold one-time codes: the outbox is for a developer's own
machine only.`,
		Example: "  idstream outbox\n  idstream outbox -n 3",
		Args:    cobra.NoArgs,
		RunE:    func(c *cobra.Command, _ []string) error { return printOutbox(c.OutOrStdout(), n) },
	}
	c.Flags().IntVarP(&n, "count", "n", 1, "how many messages, newest first")
	return c
}

func printOutbox(w io.Writer, n int) error {
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if !cfg.Dev {
		fmt.Fprintln(w, "idstream outbox: not in development mode (a configuration file is set); messages are sent, not kept. The outbox of a development run is", cfg.OutboxDir())
	}
	msgs, err := delivery.Latest(cfg.OutboxDir(), max(1, n))
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		fmt.Fprintf(w, "the development outbox (%s) is empty\n", cfg.OutboxDir())
		return nil
	}
	for i, m := range msgs {
		if i > 0 {
			fmt.Fprintln(w, "\n----------------------------------------------------------------")
		}
		fmt.Fprint(w, m)
	}
	return nil
}
