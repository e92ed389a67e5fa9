package app

import (
	"context"
	"errors"
	"slices"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/loginid"
)

// DisableUser stops a user from signing in: every token of the user stops
// working at once (each use checks the user), and the sessions named (the
// user's live sessions, found by the caller in the read model) are revoked.
func (s *Service) DisableUser(ctx context.Context, userID, reason string, sessionIDs []string, meta Meta) (domain.User, error) {
	u, err := s.updateUser(ctx, userID, meta, func(u domain.User) ([]pending, error) {
		evs, err := domain.DecideDisable(u, reason, s.clock.Now())
		return s.onUser(userID, evs), err
	})
	if err != nil {
		return u, err
	}
	return u, s.revokeAll(ctx, u, sessionIDs, domain.RevokeReasonUserDisabled, meta)
}

// EnableUser lets a disabled user sign in again.
func (s *Service) EnableUser(ctx context.Context, userID string, meta Meta) (domain.User, error) {
	return s.updateUser(ctx, userID, meta, func(u domain.User) ([]pending, error) {
		evs, err := domain.DecideEnable(u, s.clock.Now())
		return s.onUser(userID, evs), err
	})
}

// DeleteUser deletes a user in one atomic append: its keys removed, its
// login ID released (so it may be claimed again), the user deleted. Its
// sessions are then revoked.
func (s *Service) DeleteUser(ctx context.Context, userID, reason string, sessionIDs []string, meta Meta) (domain.User, error) {
	before, err := s.updateUser(ctx, userID, meta, func(u domain.User) ([]pending, error) {
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
		d, err := domain.DecideDelete(u, l, reason, s.clock.Now())
		if err != nil {
			return nil, err
		}
		evs := s.onUser(userID, d.User)
		if d.Release != nil {
			evs = append(evs, pending{subject: subject, expected: lv, event: d.Release})
		}
		return evs, nil
	})
	if err != nil {
		return before, err
	}
	return before, s.revokeAll(ctx, before, sessionIDs, domain.RevokeReasonUserDeleted, meta)
}

// RevokeUserSession ends one session of a user (operator action).
func (s *Service) RevokeUserSession(ctx context.Context, userID, sessionID string, meta Meta) error {
	sess, _, err := s.LoadSession(ctx, sessionID)
	if err != nil {
		return err
	}
	if !sess.Exists() || sess.UserID() != userID {
		return domain.ErrSessionNotFound
	}
	return s.RevokeSession(ctx, sessionID, domain.RevokeReasonAdminRevoked, meta)
}

// onUser binds events for the user's subject; the expected version is filled
// in by updateUser.
func (s *Service) onUser(userID string, evs []domain.Event) []pending {
	out := make([]pending, 0, len(evs))
	for _, ev := range evs {
		out = append(out, pending{subject: s.userSubject(userID), event: ev})
	}
	return out
}

// updateUser runs an operator command on a user: load, decide, append at
// the version seen, retry on a concurrent change. The user's own events
// (those on its subject) expect the loaded version; others carry their own.
func (s *Service) updateUser(ctx context.Context, userID string, meta Meta, decide func(domain.User) ([]pending, error)) (domain.User, error) {
	for range maxAttempts {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return u, err
		}
		evs, err := decide(u)
		if err != nil || len(evs) == 0 {
			return u, err
		}
		for i := range evs {
			if evs[i].subject == s.userSubject(userID) {
				evs[i].expected = uv
				u = domain.EvolveUser(u, evs[i].event)
			}
		}
		err = s.appendEvents(ctx, meta, evs...)
		if errors.Is(err, eventstore.ErrConflict) {
			// Decide again on what the leader has (a replica may lag).
			ctx = eventstore.WithLeaderCheck(ctx)
			continue
		}
		if err != nil {
			return u, err
		}
		commands.WithLabelValues("admin_"+evs[len(evs)-1].event.EventType(), "ok").Inc()
		return u, nil
	}
	return domain.User{}, ErrBusy
}

// revokeAll revokes the named sessions and the guest sessions the user's own
// events list. A session already ended is left as it is.
func (s *Service) revokeAll(ctx context.Context, u domain.User, sessionIDs []string, reason string, meta Meta) error {
	ids := slices.Clone(sessionIDs)
	for _, id := range u.SessionIDs() {
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		sess, _, err := s.LoadSession(ctx, id)
		if err != nil {
			return err
		}
		// Idle-timed-out sessions are revoked too: a cookie session's last
		// activity is kept outside the log.
		if !sess.Exists() || sess.UserID() != u.UserID() || sess.Revoked() || !s.clock.Now().Before(sess.ExpiresAt()) {
			continue
		}
		if err := s.RevokeSession(ctx, id, reason, meta); err != nil && !errors.Is(err, domain.ErrSessionRevoked) {
			return err
		}
	}
	return nil
}
