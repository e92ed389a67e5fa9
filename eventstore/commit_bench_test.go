package eventstore_test

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"

	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
)

// BenchmarkCommit measures appends from 32 concurrent callers (as 32 HTTP
// connections do), fsync before every acknowledgement: one-message commands
// (a refresh: the next event of the caller's own subject), two-message
// commands (a sign-up: two new subjects), and a mix, each with one-message
// appends grouped into the atomic batches ("grouped") or published on their
// own beside them ("direct").
func BenchmarkCommit(b *testing.B) {
	for _, direct := range []bool{false, true} {
		for _, shape := range []string{"refresh", "signup", "mixed"} {
			name := map[bool]string{false: "grouped", true: "direct"}[direct]
			b.Run(name+"/"+shape, func(b *testing.B) {
				n := testenv.StartNATS(b)
				opts := eventstore.DefaultOptions()
				opts.DirectSingles = direct
				s, err := eventstore.Open(context.Background(), n.Connect(b), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				var worker atomic.Int64
				b.SetParallelism(32 / max(1, testingProcs()))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					w := worker.Add(1)
					own := s.Subject("session", fmt.Sprintf("w%d-%s", w, uuid.NewString()))
					var v uint64
					i := 0
					for pb.Next() {
						i++
						one := shape == "refresh" || (shape == "mixed" && i%2 == 0)
						if one {
							seqs, err := s.Append(ctx, msg(own, v, i))
							if err != nil {
								panic(err)
							}
							v = seqs[0]
							continue
						}
						u, ses := s.Subject("user", uuid.NewString()), s.Subject("session", uuid.NewString())
						if _, err := s.Append(ctx, msg(u, 0, i), msg(ses, 0, i)); err != nil {
							panic(err)
						}
					}
				})
			})
		}
	}
}

func testingProcs() int { return runtime.GOMAXPROCS(0) }
