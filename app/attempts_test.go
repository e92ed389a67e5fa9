package app_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// The ceiling on one account's failures from every address holds when the
// guesses arrive together: each attempt takes its slot before the hashing,
// so concurrent attempts cannot all pass a ceiling none has counted
// against yet. 40 /64s guess 3 times each at once (the pair limit is 3, so
// the ceiling is 30, plus the clean addresses' allowance of 3), then once
// each every 5 minutes; and a success gives its slot back.
func TestFailureCeilingHoldsUnderConcurrency(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		three := 3
		c.RateLimits.SignInPerLoginID.Burst = &three
	}})
	apitest.RegularUser(t, apitest.NewClient(t, n), "victim@example.com")
	ctx := context.Background()
	var checked atomic.Int64
	guess := func(ip string) {
		_, err := n.Service.AuthenticatePassword(ctx, "", "victim@example.com", "wrong-guess-guess", ip, app.Meta{})
		switch {
		case errors.Is(err, app.ErrInvalidCredentials):
			checked.Add(1)
		case errors.Is(err, app.ErrRateLimited):
		default:
			t.Errorf("%s: %v", ip, err)
		}
	}
	const addresses = 40
	var wg sync.WaitGroup
	for i := range addresses {
		for range 3 {
			wg.Go(func() { guess(fmt.Sprintf("2001:db8:77:%x::1", i)) })
		}
	}
	wg.Wait()
	if got := checked.Load(); got > 33 {
		t.Fatalf("%d passwords checked on one account at once; the ceiling allows 30 + 3", got)
	}
	for range 3 {
		n.Clock.Advance(5 * time.Minute)
		for i := range addresses {
			wg.Go(func() { guess(fmt.Sprintf("2001:db8:77:%x::1", i)) })
		}
		wg.Wait()
	}
	// In 15 minutes: 30, 30 refilled, and 3 + 3 clean checks.
	if got := checked.Load(); got > 66 {
		t.Fatalf("%d passwords checked on one account in 15 minutes; the ceiling bounds it at 66", got)
	}

	// A success does not count as a failure: an account whose owner signs
	// in again and again from one address stays under its ceiling.
	apitest.RegularUser(t, apitest.NewClient(t, n), "busy@example.com")
	for i := range 40 {
		if _, err := n.Service.AuthenticatePassword(ctx, "", "busy@example.com", apitest.GoodPassword, fmt.Sprintf("198.51.100.%d", i), app.Meta{}); err != nil {
			t.Fatalf("sign-in %d of the owner: %v", i, err)
		}
	}
	id, err := loginid.Parse(loginid.Email, "busy@example.com")
	if err != nil {
		t.Fatal(err)
	}
	var tat time.Time
	if err := n.Pool.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, "signin:fail:"+id.Key()).Scan(&tat); err != nil {
		t.Fatal(err)
	}
	if tat.After(n.Clock.Now()) {
		t.Fatalf("40 successes left the account's failure bucket at %v (now %v)", tat, n.Clock.Now())
	}
}

// An attempt that ends without a verdict gives its slot back: two sign-ins
// of the owner with the right password, one hashing at a time, the second
// abandoned by its client while it waits for the hashing: the account is
// left with no failure.
func TestAbandonedAttemptGivesItsSlotBack(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		three := 3
		c.RateLimits.SignInPerLoginID.Burst = &three
		c.Password.MemoryKiB = 8 * 1024
		c.Password.Iterations = 40 // a hash of some hundreds of ms
		c.Password.MaxConcurrentHashes = 1
	}})
	apitest.RegularUser(t, apitest.NewClient(t, n), "owner2@example.com")
	id, err := loginid.Parse(loginid.Email, "owner2@example.com")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	now := n.Clock.Now()
	slot := 15 * time.Minute / 30
	tat := func() time.Time {
		tat := now
		_ = n.Pool.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, "signin:fail:"+id.Key()).Scan(&tat)
		return tat
	}
	var wg sync.WaitGroup
	var first error
	wg.Go(func() {
		_, first = n.Service.AuthenticatePassword(ctx, "", "owner2@example.com", apitest.GoodPassword, "198.51.100.1", app.Meta{})
	})
	testenv.WaitFor(t, "the first attempt's slot", 10*time.Second, func() bool { return !tat().Before(now.Add(slot)) })
	abandoned, cancel := context.WithCancel(ctx)
	wg.Go(func() {
		_, _ = n.Service.AuthenticatePassword(abandoned, "", "owner2@example.com", apitest.GoodPassword, "198.51.100.2", app.Meta{})
	})
	testenv.WaitFor(t, "the second attempt's slot", 10*time.Second, func() bool { return !tat().Before(now.Add(2 * slot)) })
	cancel()
	wg.Wait()
	if first != nil {
		t.Fatalf("first sign-in: %v", first)
	}
	if got := tat(); got.After(now) {
		t.Fatalf("two sign-ins with the right password left %v of failures on the account", got.Sub(now))
	}
}

// A slot is given back only while that is exact: an attempt held in the
// hashing queue past one emission interval and then abandoned leaves its
// slot spent, so it cannot take away a failure counted since (a free
// guess above the ceiling for whoever holds requests there).
func TestLateAbandonErasesNoFailure(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		three := 3
		c.RateLimits.SignInPerLoginID.Burst = &three // a ceiling of 30 per 15 min: 30 s a slot
		c.Password.MemoryKiB = 16 * 1024
		c.Password.Iterations = 40 // a hash of about a second
		c.Password.MaxConcurrentHashes = 1
	}})
	apitest.RegularUser(t, apitest.NewClient(t, n), "victim3@example.com")
	apitest.RegularUser(t, apitest.NewClient(t, n), "someone-else@example.com")
	id, err := loginid.Parse(loginid.Email, "victim3@example.com")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	key := "signin:fail:" + id.Key()
	const slot = 30 * time.Second
	tat := func() time.Time {
		var v time.Time
		_ = n.Pool.QueryRow(ctx, `SELECT tat FROM rate_buckets WHERE key = $1`, key).Scan(&v)
		return v
	}
	start := n.Clock.Now()
	var wg sync.WaitGroup
	wg.Go(func() { // holds the only hashing slot a while
		_, _ = n.Service.AuthenticatePassword(ctx, "", "someone-else@example.com", "whatever-guess", "198.51.100.9", app.Meta{})
	})
	time.Sleep(100 * time.Millisecond)
	held, cancel := context.WithCancel(ctx)
	wg.Go(func() {
		_, _ = n.Service.AuthenticatePassword(held, "", "victim3@example.com", "wrong-guess-1", "198.51.100.1", app.Meta{})
	})
	testenv.WaitFor(t, "the held attempt's slot", 10*time.Second, func() bool { return !tat().Before(start.Add(slot)) })
	n.Clock.Advance(2 * time.Minute)
	later := n.Clock.Now()
	exact := projections.RateBuckets{Pool: n.Pool}
	for i := range 30 { // the ceiling filled by others' attempts since
		if w, err := exact.Allow(ctx, key, 30, 15*time.Minute, later); err != nil || w != 0 {
			t.Fatalf("failure %d: %v %v", i, w, err)
		}
	}
	cancel()
	wg.Wait()
	if got, want := tat(), later.Add(30*slot); got.Before(want) {
		t.Fatalf("the ceiling's bucket is at %v after 30 failures, %v short: the late abandon erased one", got.Sub(later), want.Sub(got))
	}
}
