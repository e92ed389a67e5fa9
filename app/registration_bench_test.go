package app_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// BenchmarkRegistrationByCodeTakenVsFree alternates passwordless sign-ups
// by code to a free email address (limits, decision, the code written and
// delivered to the outbox) and to a taken one (refused as LoginIDTaken),
// each from an address of its own, and reports the ratio of their mean
// durations (taken/free): about 1 when a taken login ID is answered no
// sooner than a code sent. A measurement for BENCHMARKS.md, not an
// assertion.
func BenchmarkRegistrationByCodeTakenVsFree(b *testing.B) {
	e := startCommands(b, emailAndCodes)
	svc, ctx := e.n.Service, context.Background()
	flow := func(i int, what string) string {
		id := fmt.Sprintf("%s-%d", what, i)
		f := app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ExpiresAt: e.n.Clock.Now().Add(30 * time.Minute)}
		if err := svc.PutCode(ctx, id, f); err != nil {
			b.Fatal(err)
		}
		return id
	}
	ip := func(i, k int) string { return fmt.Sprintf("10.%d.%d.%d", k, i/250, i%250+1) }
	var free, taken time.Duration
	// Warm the moving average with a few successes first, as a running
	// server has.
	for i := range 8 {
		id, _ := loginid.Parse(loginid.Email, fmt.Sprintf("warm-%d@example.com", i))
		if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: flow(i, "warm"), LoginID: id, IP: ip(i, 3)}); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		owned, _ := loginid.Parse(loginid.Email, fmt.Sprintf("owned-%d@example.com", i))
		if _, err := svc.Register(ctx, "idstream-dev", owned, "correct horse battery staple", ip(i, 2), app.Meta{}); err != nil {
			b.Fatal(err)
		}
		fresh, _ := loginid.Parse(loginid.Email, fmt.Sprintf("fresh-%d@example.com", i))
		ff, tf := flow(i, "free"), flow(i, "taken")
		b.StartTimer()
		start := time.Now()
		if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: ff, LoginID: fresh, IP: ip(i, 0)}); err != nil {
			b.Fatal(err)
		}
		free += time.Since(start)
		start = time.Now()
		if _, err := svc.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: "idstream-dev", Flow: tf, LoginID: owned, IP: ip(i, 1)}); !errors.Is(err, domain.ErrLoginIDTaken) {
			b.Fatalf("taken: %v", err)
		}
		taken += time.Since(start)
	}
	b.ReportMetric(float64(free.Microseconds())/float64(b.N), "free-µs/op")
	b.ReportMetric(float64(taken.Microseconds())/float64(b.N), "taken-µs/op")
	b.ReportMetric(float64(taken)/float64(free), "taken/free")
}
