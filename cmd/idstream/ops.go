package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
)

// projectionsStatus is `idstream projections status`.
func projectionsStatus(ctx context.Context, out io.Writer, asJSON bool) error {
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	sts, err := projections.Statuses(ctx, n.Pool, n.Store, time.Now())
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(out).Encode(sts)
	}
	fmt.Fprintf(out, "%-12s %-9s %12s %12s %10s %10s\n", "PROJECTION", "STATE", "POSITION", "LOG", "LAG", "LAG_S")
	for _, st := range sts {
		fmt.Fprintf(out, "%-12s %-9s %12d %12d %10d %10.1f\n", st.Name, st.State, st.Position, st.LastSequence, st.LagEvents, st.LagSeconds)
		for _, f := range st.Failures {
			fmt.Fprintf(out, "  failed at %d (%s %s, event %s) %s: %s\n", f.Sequence, f.EventType, f.Subject, f.EventID, f.FailedAt.Format(time.RFC3339), f.Error)
		}
	}
	return nil
}

// projectionsReplay is `idstream projections replay NAME`: rebuild one
// projection from the whole log beside the live one, then swap it in.
func projectionsReplay(ctx context.Context, out io.Writer, name string, restart bool, batch int) error {
	var p projections.Projector
	var names []string
	for _, q := range projections.All() {
		names = append(names, q.Name())
		if q.Name() == name {
			p = q
		}
	}
	if p == nil {
		return usageError{fmt.Errorf("no projection %q; there are %s", name, strings.Join(names, ", "))}
	}
	if batch < 1 {
		return usageError{errors.New("--batch must be positive")}
	}
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())

	bar := newProgress("replay "+name, 0)
	phase := ""
	var last projections.ReplayProgress
	res, err := projections.Replay(ctx, n.Pool, n.Store, p, projections.ReplayOptions{BatchSize: batch, Restart: restart,
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
	fmt.Fprintf(out, "replayed %s: %d events in %.1f s, %.0f events/s; checkpoint %d; %d updates folded into inserted rows\n",
		name, res.Events(), res.Elapsed.Seconds(), res.Rate(), res.Position, res.Folded)
	return nil
}

// tailOptions are the flags of `idstream events tail`.
type tailOptions struct {
	user, typ, since string
	fromSeq          uint64
	noFollow         bool
}

// eventsTail is `idstream events tail`: the log as JSON lines.
func eventsTail(ctx context.Context, out io.Writer, o tailOptions) error {
	var start *time.Time
	if o.since != "" {
		t, err := time.Parse(time.RFC3339, o.since)
		if err != nil {
			return usageError{fmt.Errorf("--since: %w", err)}
		}
		start = &t
	}
	n, err := toolNode(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	// The whole stream: no filter (see eventstore.Store.AllSubjects).
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case start != nil:
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, start
	case o.fromSeq > 0:
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, o.fromSeq
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
	enc := json.NewEncoder(out)
	go func() { <-ctx.Done(); it.Stop() }()
	if o.noFollow && last == 0 {
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
		done := o.noFollow && rec.Sequence >= last
		if (o.typ != "" && rec.Type != o.typ) || (o.user != "" && !aboutUser(rec.Data, o.user)) {
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
