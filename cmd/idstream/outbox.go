package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/config"
)

// outboxCmd is `idstream outbox [-n N]`: the newest messages development
// mode wrote instead of sending them (codes included: that is what they
// are for, on the developer's own machine), newest first.
func outboxCmd(args []string) error {
	return printOutbox(os.Stdout, args)
}

func printOutbox(w io.Writer, args []string) error {
	fs := flag.NewFlagSet("outbox", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many messages, newest first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load()
	if err != nil {
		return err
	}
	if !cfg.Dev {
		fmt.Fprintln(w, "idstream outbox: not in development mode (a configuration file is set); messages are sent, not kept. The outbox of a development run is", cfg.OutboxDir())
	}
	msgs, err := delivery.Latest(cfg.OutboxDir(), max(1, *n))
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
