package domain_test

import (
	"fmt"
	"testing"

	"github.com/idstream/idstream/domain"
)

// Rebuilding a session refreshed n times: one fold over the events (as
// loading an aggregate does) against one EvolveSession per event.
func BenchmarkFoldSessionRefreshes(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		evs := []domain.Event{domain.SessionStarted{SessionID: "s", UserID: "u"}}
		for i := range n {
			evs = append(evs, domain.SessionRefreshed{SessionID: "s", PreviousHash: fmt.Sprintf("hash-%064d", i), TokenHash: fmt.Sprintf("hash-%064d", i+1), Generation: i + 1})
		}
		b.Run(fmt.Sprintf("fold/%d", n), func(b *testing.B) {
			for b.Loop() {
				domain.FoldSession(domain.Session{}, evs...)
			}
		})
		b.Run(fmt.Sprintf("evolve-each/%d", n), func(b *testing.B) {
			for b.Loop() {
				var s domain.Session
				for _, ev := range evs {
					s = domain.EvolveSession(s, ev)
				}
			}
		})
	}
}
