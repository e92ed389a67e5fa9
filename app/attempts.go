package app

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/domain"
)

// lockoutCeiling is how many times the per-login-ID limit an account's
// failures from every address together may reach before only addresses that
// have not failed on it may still try.
const lockoutCeiling = 10

// passwordAttempt is one password check under the sign-in limits, begun by
// beginPasswordAttempt; failed records its failure, succeeded gives back
// the failure its start reserved.
type passwordAttempt struct {
	s                 *core
	failAll, failHere string
	ceiling, mark     Limit
	// reserved: the attempt holds a slot under the account's ceiling,
	// taken at reservedAt; decided: failed or succeeded was called.
	reserved, decided bool
	reservedAt        time.Time
}

// beginPasswordAttempt applies the sign-in limits to a password check for an
// account (a login ID's key, an operator's name; empty when the login ID did
// not parse) from ip, before any hashing (an IPv6 address counts as its
// /64, which one subscriber usually holds whole):
//   - attempts per address (sign_in_per_ip);
//   - attempts per account and address (sign_in_per_login_id), so someone
//     failing on an account from their address does not lock its owner
//     out;
//   - failures per account from every address, up to lockoutCeiling times
//     that limit: past it, the account is being guessed from many
//     addresses, and only an address with no failure on it in the period
//     may still try, and those only sign_in_per_login_id times per period
//     in all, so the guesses on one account stay bounded however many
//     addresses guess, while the owner's attempt from a clean address is
//     refused only while others spend that allowance. An attempt takes
//     its slot under the ceiling before hashing, as a failure, and gives
//     it back if it succeeds: attempts that arrive together cannot all
//     pass a ceiling none of them has counted against yet.
func (s *core) beginPasswordAttempt(ctx context.Context, scope, account, ip string) (*passwordAttempt, error) {
	now := s.clock.Now()
	rl := s.Settings().RateLimits
	addr := addressKey(ip)
	if err := s.limiter.Allow(ctx, scope+":ip:"+addr, limitOf(rl.SignInPerIP), now); err != nil {
		return nil, err
	}
	perAccount := limitOf(rl.SignInPerLoginID)
	if account == "" || !perAccount.Enabled() {
		return &passwordAttempt{}, nil
	}
	if err := s.limiter.Allow(ctx, scope+":id:"+account+":ip:"+addr, perAccount, now); err != nil {
		return nil, err
	}
	a := &passwordAttempt{s: s, failAll: scope + ":fail:" + account, failHere: scope + ":fail:" + account + ":ip:" + addr,
		ceiling: Limit{Burst: perAccount.Burst * lockoutCeiling, Per: perAccount.Per}, mark: Limit{Burst: 1, Per: perAccount.Per}}
	err := s.limiter.Allow(ctx, a.failAll, a.ceiling, now)
	if err == nil {
		a.reserved, a.reservedAt = true, now
		return a, nil
	}
	if !errors.Is(err, ErrRateLimited) {
		return nil, err
	}
	if herr := s.limiter.Check(ctx, a.failHere, a.mark, now); herr != nil {
		return nil, err
	}
	if cerr := s.limiter.Allow(ctx, scope+":clean:"+account, perAccount, now); cerr != nil {
		return nil, cerr
	}
	return a, nil
}

// addressKey is the part of a client address the limits count under: an
// IPv6 address's /64, any other address whole.
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}

// failed records a failed check against the account's ceiling and marks
// the address as one that failed on it.
func (a *passwordAttempt) failed(ctx context.Context) {
	if a.s == nil {
		return
	}
	a.decided = true
	// The failure is counted under the ceiling already (the slot reserved)
	// or the ceiling was full; marked already, Allow records nothing. A
	// client that hung up does not take its failure away.
	_ = a.s.limiter.Allow(context.WithoutCancel(ctx), a.failHere, a.mark, a.s.clock.Now())
}

// succeeded gives back the slot the attempt reserved under the account's
// ceiling: a success is no failure.
func (a *passwordAttempt) succeeded(ctx context.Context) {
	if a.s == nil {
		return
	}
	a.decided = true
	a.refund(ctx)
}

// abandon gives back the slot of an attempt that ended without a verdict
// (the log or the hashing unavailable, the client gone before its password
// was checked); deferred after beginPasswordAttempt.
func (a *passwordAttempt) abandon(ctx context.Context) {
	if a.s == nil || a.decided {
		return
	}
	a.refund(ctx)
}

// refund gives the reserved slot back while that is exact: within one
// emission interval of the reservation the bucket cannot have drained past
// it, later a refund could take away a failure recorded since (a request
// held in the hashing queue and then abandoned would be a free guess), so
// the slot stays spent.
func (a *passwordAttempt) refund(ctx context.Context) {
	if !a.reserved {
		return
	}
	a.reserved = false
	now := a.s.clock.Now()
	if now.Sub(a.reservedAt) >= a.ceiling.Per/time.Duration(a.ceiling.Burst) {
		return
	}
	a.s.limiter.Refund(context.WithoutCancel(ctx), a.failAll, a.ceiling, now)
}

// allowAccountCreation applies the limits of sign-up and promotion (each
// bears a password and claims a login ID) before any hashing: attempts per
// address (sign_in_per_ip) and, for a promotion, per guest
// (sign_in_per_login_id); and the "taken" answers one login ID has given
// (sign_in_per_login_id, recorded by takenAnswered), so a taken login ID
// cannot be probed without bound while nobody can block a free one (an
// attempt on a free login ID never counts against it).
func (s *core) allowAccountCreation(ctx context.Context, ip, loginIDKey, guestID string) error {
	now := s.clock.Now()
	rl := s.Settings().RateLimits
	if err := s.limiter.Allow(ctx, "create:ip:"+addressKey(ip), limitOf(rl.SignInPerIP), now); err != nil {
		return err
	}
	if guestID != "" {
		if err := s.limiter.Allow(ctx, "create:guest:"+guestID, limitOf(rl.SignInPerLoginID), now); err != nil {
			return err
		}
	}
	return s.limiter.Check(ctx, "create:taken:"+loginIDKey, limitOf(rl.SignInPerLoginID), now)
}

// takenAnswered records that a sign-up or promotion was told the login ID
// is taken.
func (s *core) takenAnswered(ctx context.Context, loginIDKey string, err error) {
	if errors.Is(err, domain.ErrLoginIDTaken) {
		_ = s.limiter.Allow(ctx, "create:taken:"+loginIDKey, limitOf(s.Settings().RateLimits.SignInPerLoginID), s.clock.Now())
	}
}

// movingAverage is a moving average of durations, with the moving average
// of how much the pauses made to it overslept (a pad asks that much less).
type movingAverage struct{ ns, over atomic.Int64 }

func (m *movingAverage) observe(d time.Duration) { ewma(&m.ns, d) }

func (m *movingAverage) value() time.Duration { return time.Duration(m.ns.Load()) }

func ewma(v *atomic.Int64, d time.Duration) {
	old := v.Load()
	v.Store(old + (int64(d)-old)/8)
}

// commandTimer times an account-creating command (promotion, sign-up)
// from its start: done observes a success (limits, hashing, decision,
// append, tokens) into the command's moving average, and pad makes a
// "login ID taken" answer last as long as a success lately does, so its
// timing does not tell a taken login ID from a free one more than the
// answer itself does.
type commandTimer struct {
	avg   *movingAverage
	start time.Time
}

func timeCommand(avg *movingAverage) commandTimer { return commandTimer{avg: avg, start: time.Now()} }

func (t commandTimer) done(err error) {
	if err == nil {
		t.avg.observe(time.Since(t.start))
	}
}

// pad sleeps a "taken" answer up to the recent successes' duration, less
// what such pauses lately overslept (a wake-up on a busy machine comes
// late: without this a taken login ID answered measurably slower than a
// free one, BENCHMARKS.md).
func (t commandTimer) pad(ctx context.Context, err error) {
	if !errors.Is(err, domain.ErrLoginIDTaken) {
		return
	}
	want := t.avg.value() - time.Since(t.start) - time.Duration(t.avg.over.Load())
	if want <= 0 {
		return
	}
	before := time.Now()
	clock.Sleep(ctx, want)
	if ctx.Err() == nil {
		ewma(&t.avg.over, time.Since(before)-want)
	}
}
