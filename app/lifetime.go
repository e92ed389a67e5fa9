package app

import (
	"context"
	"time"

	"github.com/idstream/idstream/domain"
)

// ExpiryOutcome says what ExpireAnonymousUser did or would do.
type ExpiryOutcome struct {
	Expired   bool
	Reason    string
	LastSeen  time.Time
	NotBefore time.Time
}

// LifetimeRules are the guest lifetime rules of the current settings.
func (s *Lifetime) LifetimeRules() domain.LifetimeRules {
	return s.Settings().LifetimeRules()
}

// ExpireAnonymousUser runs the ExpireAnonymousUser command: it decides on
// the guest's latest events (and its sessions' activity) and appends the
// expiry at the version it saw, so a guest promoted or signed in a moment ago
// is not expired. With dryRun it decides and writes nothing. A user that is
// still active yields domain.ErrStillActive with NotBefore set.
func (s *Lifetime) ExpireAnonymousUser(ctx context.Context, userID string, dryRun bool, meta Meta) (ExpiryOutcome, error) {
	rules := s.LifetimeRules()
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (ExpiryOutcome, error) {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return ExpiryOutcome{}, err
		}
		sessions := make([]domain.SessionActivity, 0, len(u.SessionIDs()))
		versions := map[string]uint64{}
		for _, id := range u.SessionIDs() {
			sess, v, err := s.LoadSession(ctx, id)
			if err != nil {
				return ExpiryOutcome{}, err
			}
			var act time.Time
			if sess.Kind() == domain.SessionKindCookie {
				if act, err = s.activity.Last(ctx, id); err != nil {
					return ExpiryOutcome{}, err
				}
			}
			sessions = append(sessions, domain.SessionActivity{Session: sess, Activity: act})
			versions[id] = v
		}
		now := s.clock.Now()
		x, err := domain.DecideExpire(u, sessions, rules, now)
		if err != nil {
			return ExpiryOutcome{NotBefore: x.NotBefore}, err
		}
		if len(x.Events) == 0 {
			return ExpiryOutcome{}, nil
		}
		e := x.Events[0].(domain.AnonymousUserExpired)
		out := ExpiryOutcome{Expired: true, Reason: e.Reason, LastSeen: e.LastActivityAt}
		if dryRun {
			return out, nil
		}
		evs := []pending{{subject: s.userSubject(userID), expected: uv, event: e}}
		for _, id := range x.Revoke {
			evs = append(evs, pending{subject: s.sessionSubject(id), expected: versions[id],
				event: domain.SessionRevoked{SessionID: id, UserID: userID, Reason: domain.RevokeReasonUserExpired, RevokedAt: now.UTC()}})
		}
		if err := s.appendEvents(ctx, meta, evs...); err != nil {
			return ExpiryOutcome{}, err
		}
		commands.WithLabelValues("expire_anonymous_user", "ok").Inc()
		return out, nil
	})
}
