package eventstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
)

// BenchmarkCommitLayout measures the candidates of issue 22 for a sign-up's
// commit (two new subjects, about 400 bytes of event each) from 32
// concurrent callers, fsync before every acknowledgement:
//
//   - r1/batch: one file stream on one server, the two events in an atomic
//     batch (today's layout: nats-server stages each batch in a file store
//     of its own);
//   - r1/one-message: the same two events carried by one message on one
//     subject (the "one message per command" candidate: no staging, but a
//     command's events no longer each have their aggregate's subject);
//   - r3/batch: a three-server cluster, replicas 3, atomic batches (staged in
//     memory; durability from the quorum, each server still fsyncing).
//
// Its figures are in BENCHMARKS.md (issue 22, candidates).
func BenchmarkCommitLayout(b *testing.B) {
	for _, layout := range []string{"r1/batch", "r1/one-message", "r3/batch"} {
		b.Run(layout, func(b *testing.B) {
			opts := eventstore.DefaultOptions()
			var nc *nats.Conn
			if strings.HasPrefix(layout, "r3/") {
				c := testenv.StartCluster(b, 3)
				var err error
				if nc, err = nats.Connect(c.Servers[0].ClientURL()); err != nil {
					b.Fatal(err)
				}
				defer nc.Close()
				opts.Stream.Replicas = 3
			} else {
				nc = testenv.StartNATS(b).Connect(b)
			}
			s, err := eventstore.Open(context.Background(), nc, opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			one := strings.HasSuffix(layout, "/one-message")
			var n atomic.Int64
			b.SetParallelism(32 / max(1, testingProcs()))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(n.Add(1))
					u, ses := s.Subject("user", uuid.NewString()), s.Subject("session", uuid.NewString())
					var err error
					if one {
						_, err = s.Append(ctx, sized(u, 0, i, 800))
					} else {
						_, err = s.Append(ctx, sized(u, 0, i, 400), sized(ses, 0, i, 400))
					}
					if err != nil {
						panic(fmt.Sprintf("%s: %v", layout, err))
					}
				}
			})
		})
	}
}

// sized is msg with an event of about size bytes, as real events are.
func sized(subject string, expected uint64, n, size int) eventstore.Message {
	m := msg(subject, expected, n)
	m.Envelope.OccurredAt = time.Now().UTC()
	m.Envelope.Data = []byte(fmt.Sprintf(`{"n":%d,"pad":%q}`, n, strings.Repeat("x", size)))
	return m
}
