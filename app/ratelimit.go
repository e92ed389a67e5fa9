package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/idstream/idstream/domain"
)

// RateLimitedError says an attempt was refused and when to try again.
type RateLimitedError struct{ RetryAfter time.Duration }

func (e *RateLimitedError) Error() string {
	return fmt.Sprintf("too many attempts; retry in %s", e.RetryAfter.Round(time.Second))
}

// ErrRateLimited matches any *RateLimitedError with errors.Is.
var ErrRateLimited = errors.New("rate limited")

// Is implements errors.Is.
func (e *RateLimitedError) Is(target error) bool { return target == ErrRateLimited }

// Limit is a rate: Burst requests at once, refilled at Per / Burst each.
type Limit struct {
	Burst int
	Per   time.Duration
}

// Enabled reports whether the limit applies (Burst 0 turns it off).
func (l Limit) Enabled() bool { return l.Burst > 0 && l.Per > 0 }

func limitOf(r domain.RateLimitSetting) Limit { return Limit{Burst: r.Burst, Per: r.Per.Duration()} }

// AllowAnonymousSignup checks the guest sign-up rate of a client IP.
func (s *Sessions) AllowAnonymousSignup(ctx context.Context, ip string) error {
	return s.fastLimiter.Allow(ctx, "signup:ip:"+addressKey(ip), limitOf(s.Settings().RateLimits.AnonymousSignup), s.clock.Now())
}

// AllowChallenge checks the challenge rate of a client IP.
func (s *KeyPairs) AllowChallenge(ctx context.Context, ip string) error {
	return s.fastLimiter.Allow(ctx, "challenge:ip:"+addressKey(ip), limitOf(s.Settings().RateLimits.Challenge), s.clock.Now())
}

// AllowAuthorize checks the rate of hosted-page flows a client IP starts:
// each is an entry in the codes bucket for its lifetime.
func (s *Accounts) AllowAuthorize(ctx context.Context, ip string) error {
	return s.fastLimiter.Allow(ctx, "authorize:ip:"+addressKey(ip), limitOf(s.Settings().RateLimits.Authorize), s.clock.Now())
}

// AllowSilentAuthorize checks the rate of prompt=none authorizations of one
// user: each that issues a code is an entry in the codes bucket for its
// lifetime, so a user may have only as many as an address may start flows
// (a silent renewal every few minutes is far below that), however many
// sessions it holds.
func (s *Accounts) AllowSilentAuthorize(ctx context.Context, userID string) error {
	return s.fastLimiter.Allow(ctx, "authorize:user:"+userID, limitOf(s.Settings().RateLimits.Authorize), s.clock.Now())
}

// allowSessionUse checks a per-session rate (refreshes, DPoP-bound
// requests), keyed by what the request proved it holds. Those limits bound
// what one session can make the service keep (events in the log, proofs'
// jtis in the memory bucket); a session's own requests are not to fail for
// a database outage, so a limiter that cannot answer lets the request
// through (logged and counted). They need not be exact: a session's first
// request on a node reads nothing (AllowLoose), so each node may admit up
// to a burst more once, and a refresh costs no round trip.
func (c *core) allowSessionUse(ctx context.Context, kind, sessionID string, lim domain.RateLimitSetting) error {
	err := c.fastLimiter.AllowLoose(ctx, kind+":session:"+sessionID, limitOf(lim), c.clock.Now())
	if errors.Is(err, ErrLimiterUnavailable) {
		commands.WithLabelValues(kind+"_limit", "unavailable").Inc()
		c.log.Warn("the per-session rate limit could not be checked; request let through", "limit", kind, "error", err)
		return nil
	}
	if errors.Is(err, ErrRateLimited) {
		commands.WithLabelValues(kind+"_limit", "refused").Inc()
	}
	return err
}

// Limiter checks request rates per key, shared by every node (the rate
// buckets in projections): a refusal is how long to wait.
type Limiter interface {
	// Allow records one request under key if a bucket of burst, refilled
	// over per, admits it now (wait 0); else it returns how long to wait.
	Allow(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (wait time.Duration, err error)
	// Check returns what Allow would, recording nothing.
	Check(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (wait time.Duration, err error)
}

// ErrLimiterUnavailable: the rate limits could not be checked.
var ErrLimiterUnavailable = errors.New("the rate limits cannot be checked right now")

// limits applies Limits through a Limiter, as errors.
type limits struct{ port Limiter }

func (l limits) Allow(ctx context.Context, key string, lim Limit, now time.Time) error {
	if !lim.Enabled() {
		return nil
	}
	wait, err := l.port.Allow(ctx, key, lim.Burst, lim.Per, now)
	return limitedFor(wait, err)
}

func (l limits) Check(ctx context.Context, key string, lim Limit, now time.Time) error {
	if !lim.Enabled() {
		return nil
	}
	wait, err := l.port.Check(ctx, key, lim.Burst, lim.Per, now)
	return limitedFor(wait, err)
}

// LooseAllower admits without reading the shared state first, settling
// within a sync interval (a Limiter may offer it; see
// projections.SyncedRateBuckets.AllowLoose).
type LooseAllower interface {
	AllowLoose(ctx context.Context, key string, burst int, per time.Duration, now time.Time) (wait time.Duration, err error)
}

// AllowLoose is Allow through the port's AllowLoose when it has one.
func (l limits) AllowLoose(ctx context.Context, key string, lim Limit, now time.Time) error {
	la, ok := l.port.(LooseAllower)
	if !ok {
		return l.Allow(ctx, key, lim, now)
	}
	if !lim.Enabled() {
		return nil
	}
	wait, err := la.AllowLoose(ctx, key, lim.Burst, lim.Per, now)
	return limitedFor(wait, err)
}

// Refunder gives back one request Allow recorded (a Limiter may offer it).
type Refunder interface {
	Refund(ctx context.Context, key string, burst int, per time.Duration, now time.Time) error
}

// Refund gives back one request recorded under key, if the limiter can.
func (l limits) Refund(ctx context.Context, key string, lim Limit, now time.Time) {
	if r, ok := l.port.(Refunder); ok && lim.Enabled() {
		_ = r.Refund(ctx, key, lim.Burst, lim.Per, now)
	}
}

func limitedFor(wait time.Duration, err error) error {
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLimiterUnavailable, err)
	}
	if wait > 0 {
		return &RateLimitedError{RetryAfter: max(wait, time.Second)}
	}
	return nil
}
