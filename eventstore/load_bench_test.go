package eventstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/idstream/idstream/testenv"
)

// BenchmarkLoad measures loading a one-event aggregate from a stream that
// holds many other subjects.
func BenchmarkLoad(b *testing.B) {
	n := testenv.StartNATS(b)
	s := openStoreB(b, n)
	ctx := context.Background()
	const others = 20000
	for i := 0; i < others; i += 250 {
		var msgs = msgsFor(s, i, 250)
		if _, err := s.Append(ctx, msgs...); err != nil {
			b.Fatal(err)
		}
	}
	target := s.Subject("user", "target")
	if _, err := s.Append(ctx, msg(target, 0, 1)); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			recs, _, err := s.Load(ctx, target)
			if err != nil || len(recs) != 1 {
				panic(fmt.Sprint(recs, err))
			}
		}
	})
}

// BenchmarkLoadLongAggregate measures loading an aggregate with 500 events,
// each followed by 1,000 events of other subjects (a guest signing in now
// and then on a busy log), from its first event ("all") and from its
// second-to-last event, as a cached state's load does ("after").
func BenchmarkLoadLongAggregate(b *testing.B) {
	n := testenv.StartNATS(b)
	s := openStoreB(b, n)
	ctx := context.Background()
	target := s.Subject("user", "target")
	const events, between = 500, 1000
	var v, last uint64
	for i := range events {
		seqs, err := s.Append(ctx, msg(target, v, i))
		if err != nil {
			b.Fatal(err)
		}
		last, v = v, seqs[0]
		for j := 0; j < between; j += 250 {
			if _, err := s.Append(ctx, msgsFor(s, i*between+j, 250)...); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name  string
		after uint64
		want  int
	}{{"all", 0, events}, {"after", last, 1}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				recs, _, err := s.LoadAfter(ctx, target, c.after)
				if err != nil || len(recs) != c.want {
					b.Fatal(len(recs), err)
				}
			}
		})
	}
}
