package app

import (
	"context"
	"errors"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// DisableUser stops a user from signing in: every token of the user stops
// working at once (each use checks the user), and every session of the user
// is revoked in the same append, read from the log (sessionIDs may name
// more, e.g. from the read model, for sessions started before every start
// was recorded on the user), so enabling the user again revives none.
func (s *Admin) DisableUser(ctx context.Context, userID, reason string, sessionIDs []string, meta Meta) (domain.User, error) {
	var rest []pending
	u, err := s.updateUser(ctx, userID, meta, func(ctx context.Context, u domain.User) ([]pending, error) {
		rest = nil // of an attempt that conflicted
		now := s.clock.Now()
		evs, err := domain.DecideDisable(u, reason, now)
		if err != nil || len(evs) == 0 {
			return nil, err
		}
		var ended []pending
		ended, rest, err = s.endSessions(ctx, u, domain.RevokeReasonUserDisabled, now, sessionIDs...)
		return append(s.onUser(userID, evs), ended...), err
	})
	if err == nil {
		s.appendRevocations(ctx, rest, meta)
	}
	return u, err
}

// EnableUser lets a disabled user sign in again.
func (s *Admin) EnableUser(ctx context.Context, userID string, meta Meta) (domain.User, error) {
	return s.updateUser(ctx, userID, meta, func(_ context.Context, u domain.User) ([]pending, error) {
		evs, err := domain.DecideEnable(u, s.clock.Now())
		return s.onUser(userID, evs), err
	})
}

// DeleteUser deletes a user in one atomic append: its keys removed, its
// login ID released (so it may be claimed again), every session revoked (as
// DisableUser finds them), the user deleted.
func (s *Admin) DeleteUser(ctx context.Context, userID, reason string, sessionIDs []string, meta Meta) (domain.User, error) {
	var rest []pending
	u, err := s.updateUser(ctx, userID, meta, func(ctx context.Context, u domain.User) ([]pending, error) {
		rest = nil // of an attempt that conflicted
		var l domain.LoginID
		var lv uint64
		var subject string
		if typ, value := u.LoginID(); value != "" {
			id, err := loginid.Parse(loginid.Type(typ), value)
			if err != nil {
				return nil, err
			}
			subject = s.loginIDSubject(id)
			if l, lv, err = loadAggregate(ctx, s.store, s.aggregates, subject, each(domain.EvolveLoginID)); err != nil {
				return nil, err
			}
		}
		now := s.clock.Now()
		d, err := domain.DecideDelete(u, l, reason, now)
		if err != nil {
			return nil, err
		}
		evs := s.onUser(userID, d.User)
		if d.Release != nil {
			evs = append(evs, pending{subject: subject, expected: lv, event: d.Release})
		}
		// Its external identities are released too (issue 19).
		for _, ref := range u.ExternalIdentities() {
			x, xv, err := s.loadExternal(ctx, ref)
			if err != nil {
				return nil, err
			}
			if ev := domain.ReleaseLost(u, x, ref, now); ev != nil {
				evs = append(evs, pending{subject: s.externalSubject(ref), expected: xv, event: ev})
			}
		}
		var ended []pending
		ended, rest, err = s.endSessions(ctx, u, domain.RevokeReasonUserDeleted, now, sessionIDs...)
		return append(evs, ended...), err
	})
	if err == nil {
		s.appendRevocations(ctx, rest, meta)
	}
	return u, err
}

// Errors of the operators' commands: the user or session they name does not
// exist (a 404 of the admin API, not a failed sign-in).
var (
	ErrNoSuchUser    = errors.New("no such user")
	ErrNoSuchSession = errors.New("the user has no such session")
)

// RevokeUserSession ends one session of a user (operator action).
func (s *Admin) RevokeUserSession(ctx context.Context, userID, sessionID string, meta Meta) error {
	sess, _, err := s.LoadSession(ctx, sessionID)
	if err != nil {
		return err
	}
	if !sess.Exists() || sess.UserID() != userID {
		return ErrNoSuchSession
	}
	return s.RevokeSession(ctx, sessionID, domain.RevokeReasonAdminRevoked, meta)
}

// onUser binds events for the user's subject; the expected version is filled
// in by updateUser.
func (s *Admin) onUser(userID string, evs []domain.Event) []pending {
	out := make([]pending, 0, len(evs))
	for _, ev := range evs {
		out = append(out, pending{subject: s.userSubject(userID), event: ev})
	}
	return out
}

// updateUser runs an operator command on a user: load, decide, append at
// the version seen, retry on a concurrent change. The user's own events
// (those on its subject) expect the loaded version; others carry their own.
func (s *Admin) updateUser(ctx context.Context, userID string, meta Meta, decide func(context.Context, domain.User) ([]pending, error)) (domain.User, error) {
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (domain.User, error) {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return u, err
		}
		evs, err := decide(ctx, u)
		if errors.Is(err, domain.ErrUserNotFound) {
			return u, ErrNoSuchUser // an operator names a user
		}
		if err != nil || len(evs) == 0 {
			return u, err
		}
		for i := range evs {
			if evs[i].subject == s.userSubject(userID) {
				evs[i].expected = uv
				u = domain.EvolveUser(u, evs[i].event)
			}
		}
		if err := s.appendEvents(ctx, meta, evs...); err != nil {
			return u, err
		}
		commands.WithLabelValues("admin_"+evs[len(evs)-1].event.EventType(), "ok").Inc()
		return u, nil
	})
}
