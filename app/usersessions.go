package app

import (
	"context"
	"slices"
	"time"

	"github.com/idstream/idstream/domain"
)

// endSessions binds the revocation of every session of u that may still be
// used, for the same append as the command that ends them (a promotion, a
// merge, a disable, a delete). The sessions are those u's events list, read
// from the log at the versions seen, so a session a read model has not got
// yet is not missed, and one that changes meanwhile makes the append
// conflict. extra names sessions the user's events may not list (sessions
// started before every start was recorded on the user); each is checked to
// be u's.
func (s *Service) endSessions(ctx context.Context, u domain.User, reason string, now time.Time, extra ...string) ([]pending, error) {
	ids := u.SessionIDs()
	for _, id := range extra {
		if id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	sessions := make([]domain.Session, 0, len(ids))
	versions := make(map[string]uint64, len(ids))
	for _, id := range ids {
		sess, v, err := s.LoadSession(ctx, id)
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, sess)
		versions[id] = v
	}
	evs, err := domain.DecideEndSessions(u, sessions, reason, now)
	if err != nil {
		return nil, err
	}
	out := make([]pending, 0, len(evs))
	for _, ev := range evs {
		id := ev.(domain.SessionRevoked).SessionID
		out = append(out, pending{subject: s.sessionSubject(id), expected: versions[id], event: ev})
	}
	return out, nil
}

// startOn binds the start of st for the same append: the session's first
// event and, on the user's subject at the version uv the decision saw, the
// sign-in that lists the session among the user's. A promotion, disable,
// delete or expiry appended meanwhile makes the start conflict and be
// decided again, so no session starts unseen by them.
func (s *Service) startOn(uv uint64, st *startedSession) []pending {
	started := st.event.(domain.SessionStarted)
	return []pending{
		{subject: s.userSubject(started.UserID), expected: uv, event: domain.SignedIn(started)},
		{subject: s.sessionSubject(started.SessionID), event: st.event},
	}
}
