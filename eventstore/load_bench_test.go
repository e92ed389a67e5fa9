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
