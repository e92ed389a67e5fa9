package app

import (
	"context"
	"slices"
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
//
// sessionIDs are the user's sessions as the read model lists them: a guest
// created before its first session was recorded on the user (events
// without session_id) lists none on its subject, so these are loaded from
// the log too (the session's own events decide, and only sessions of this
// user count), as disable and delete do.
func (s *Lifetime) ExpireAnonymousUser(ctx context.Context, userID string, sessionIDs []string, dryRun bool, meta Meta) (ExpiryOutcome, error) {
	rules := s.LifetimeRules()
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (ExpiryOutcome, error) {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return ExpiryOutcome{}, err
		}
		own := u.SessionIDs()
		ids := slices.Clone(own)
		for _, id := range sessionIDs {
			if id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		sessions := make([]domain.SessionActivity, 0, len(ids))
		versions := map[string]uint64{}
		for _, id := range ids {
			sess, v, err := s.LoadSession(ctx, id)
			if err != nil {
				return ExpiryOutcome{}, err
			}
			if !slices.Contains(own, id) && (!sess.Exists() || sess.UserID() != userID) {
				continue // the read model's, and not this user's
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
