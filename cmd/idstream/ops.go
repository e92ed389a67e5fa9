package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/node"
	"github.com/idstream/idstream/projections"
)

// toolNode connects an operator command to the running deployment.
func toolNode(ctx context.Context) (*node.Node, error) {
	cfg, err := config.Load()
	if err != nil {
		return nil, err
	}
	return node.Start(ctx, node.Options{Config: cfg, Log: newLogger(), Tool: true})
}

// projectionsUsage is the usage of `idstream projections`.
const projectionsUsage = "usage: idstream projections status [-json] | replay NAME [-restart] [-batch N]"

// projectionsCmd is `idstream projections status|replay`.
func projectionsCmd(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "replay" {
		return projectionsReplay(ctx, args[1:])
	}
	if len(args) == 0 || args[0] != "status" {
		return errors.New(projectionsUsage)
	}
	fs := flag.NewFlagSet("projections status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	sts, err := projections.Statuses(ctx, n.Pool, n.Store, time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(sts)
	}
	fmt.Printf("%-12s %-9s %12s %12s %10s %10s\n", "PROJECTION", "STATE", "POSITION", "LOG", "LAG", "LAG_S")
	for _, st := range sts {
		fmt.Printf("%-12s %-9s %12d %12d %10d %10.1f\n", st.Name, st.State, st.Position, st.LastSequence, st.LagEvents, st.LagSeconds)
		for _, f := range st.Failures {
			fmt.Printf("  failed at %d (%s %s, event %s) %s: %s\n", f.Sequence, f.EventType, f.Subject, f.EventID, f.FailedAt.Format(time.RFC3339), f.Error)
		}
	}
	return nil
}

// projectionsReplay is `idstream projections replay NAME`: rebuild one
// projection from the whole log beside the live one, then swap it in.
func projectionsReplay(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("projections replay", flag.ContinueOnError)
	restart := fs.Bool("restart", false, "drop the shadow of an interrupted replay and start from the beginning of the log")
	batch := fs.Int("batch", 10000, "events applied per transaction")
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if name == "" && fs.NArg() == 1 {
		name = fs.Arg(0)
	} else if fs.NArg() > 0 || name == "" {
		return errors.New(projectionsUsage)
	}
	var p projections.Projector
	var names []string
	for _, q := range projections.All() {
		names = append(names, q.Name())
		if q.Name() == name {
			p = q
		}
	}
	if p == nil {
		return fmt.Errorf("no projection %q; there are %s", name, strings.Join(names, ", "))
	}
	if *batch < 1 {
		return errors.New("-batch must be positive")
	}
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())

	bar := newProgress("replay "+name, 0)
	phase := ""
	var last projections.ReplayProgress
	res, err := projections.Replay(ctx, n.Pool, n.Store, p, projections.ReplayOptions{BatchSize: *batch, Restart: *restart,
		Progress: func(pr projections.ReplayProgress) {
			last = pr
			if pr.Phase != phase {
				if phase == projections.PhaseBuilding {
					bar.Finish(int64(pr.Done()))
				}
				if phase == "" && pr.From > 0 {
					fmt.Fprintf(os.Stderr, "replay %s: resuming at position %d\n", name, pr.From)
				}
				if pr.Phase != projections.PhaseBuilding && pr.Phase != projections.PhaseDone {
					fmt.Fprintf(os.Stderr, "replay %s: %s at position %d of %d\n", name, pr.Phase, pr.Position, pr.Last)
				}
				phase = pr.Phase
			}
			if pr.Phase == projections.PhaseBuilding {
				bar.SetTotal(int64(pr.Total()))
				bar.Update(int64(pr.Done()))
			}
		}})
	if err != nil {
		if phase == projections.PhaseBuilding {
			bar.Finish(int64(last.Done()))
		}
		return err
	}
	fmt.Printf("replayed %s: %d events in %.1f s, %.0f events/s; checkpoint %d; %d updates folded into inserted rows\n",
		name, res.Events(), res.Elapsed.Seconds(), res.Rate(), res.Position, res.Folded)
	return nil
}

// eventsCmd is `idstream events tail`: the log as JSON lines.
func eventsCmd(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "tail" {
		return errors.New("usage: idstream events tail [--user SUB] [--type TYPE] [--since TIME] [--from-seq N] [--no-follow]")
	}
	fs := flag.NewFlagSet("events tail", flag.ContinueOnError)
	user := fs.String("user", "", "only events about this sub (user_id, guest_id or into_user_id in the data)")
	typ := fs.String("type", "", "only this event type (e.g. user.promoted.v1)")
	since := fs.String("since", "", "start at this time (RFC 3339) instead of the beginning")
	fromSeq := fs.Uint64("from-seq", 0, "start at this stream sequence")
	noFollow := fs.Bool("no-follow", false, "stop at the end of the log instead of waiting for new events")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	// The whole stream: no filter (see eventstore.Store.AllSubjects).
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case *since != "":
		t, err := time.Parse(time.RFC3339, *since)
		if err != nil {
			return fmt.Errorf("--since: %w", err)
		}
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	case *fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, *fromSeq
	}
	last, err := n.Store.LastSequence(ctx)
	if err != nil {
		return err
	}
	cons, err := n.Store.JetStream().OrderedConsumer(ctx, n.Store.StreamName(), cfg)
	if err != nil {
		return err
	}
	it, err := cons.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	enc := json.NewEncoder(os.Stdout)
	go func() { <-ctx.Done(); it.Stop() }()
	if *noFollow && last == 0 {
		return nil
	}
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return err
		}
		rec, err := eventstore.DecodeMsg(m)
		if err != nil {
			return err
		}
		done := *noFollow && rec.Sequence >= last
		if (*typ != "" && rec.Type != *typ) || (*user != "" && !aboutUser(rec.Data, *user)) {
			if done {
				return nil
			}
			continue
		}
		if err := enc.Encode(map[string]any{"sequence": rec.Sequence, "subject": rec.Subject, "id": rec.ID, "type": rec.Type,
			"occurred_at": rec.OccurredAt, "correlation_id": rec.CorrelationID, "data": domain.RedactCredentials(rec.Data)}); err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}

func aboutUser(data json.RawMessage, sub string) bool {
	var ids struct {
		UserID     string `json:"user_id"`
		GuestID    string `json:"guest_id"`
		IntoUserID string `json:"into_user_id"`
	}
	_ = json.Unmarshal(data, &ids)
	return slices.Contains([]string{ids.UserID, ids.GuestID, ids.IntoUserID}, sub)
}
