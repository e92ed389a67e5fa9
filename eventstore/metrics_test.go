package eventstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
)

// appends counts idstream_eventstore_append_seconds observations by outcome.
func appends(t *testing.T) map[string]uint64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "idstream_eventstore_append_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return out
}

func delta(before, after map[string]uint64) map[string]uint64 {
	d := map[string]uint64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// The append metric says what the caller saw: an append whose caller went
// away while the log was slow to answer (a client hanging up, as every load
// generator's do at the end of a run) is "canceled", not "unavailable";
// one whose caller got an error (here its own deadline) is "unavailable".
func TestAppendMetricSaysWhatTheCallerSaw(t *testing.T) {
	n := testenv.StartNATS(t)
	opts := eventstore.DefaultOptions()
	opts.Timeout = time.Second
	s, err := eventstore.Open(context.Background(), n.Connect(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	before := appends(t)
	if _, err := s.Append(context.Background(), msg(s.Subject("user", uuid.NewString()), 0, 1)); err != nil {
		t.Fatal(err)
	}
	if d := delta(before, appends(t)); d["ok"] != 1 || len(d) != 1 {
		t.Fatalf("a committed append counted as %v, want ok 1", d)
	}

	// The log stops answering: appends wait for it.
	n.Server.Shutdown()
	n.Server.WaitForShutdown()

	before = appends(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := s.Append(ctx, msg(s.Subject("user", uuid.NewString()), 0, 2))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	if err := <-done; !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("abandoned append: %v, want ErrUnavailable", err)
	}
	if d := delta(before, appends(t)); d["canceled"] != 1 || len(d) != 1 {
		t.Fatalf("an append whose caller went away counted as %v, want canceled 1", d)
	}

	before = appends(t)
	dctx, dcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer dcancel()
	if _, err := s.Append(dctx, msg(s.Subject("user", uuid.NewString()), 0, 3)); !errors.Is(err, eventstore.ErrUnavailable) {
		t.Fatalf("append past its deadline: %v, want ErrUnavailable", err)
	}
	if d := delta(before, appends(t)); d["unavailable"] != 1 || len(d) != 1 {
		t.Fatalf("an append whose caller got an error counted as %v, want unavailable 1", d)
	}
}
