package app

import (
	"context"
	"slices"
	"time"

	"github.com/idstream/idstream/domain"
)

// inlineRevocations bounds how many session revocations go into a command's
// own append (an atomic batch holds at most 500 messages by default); the
// rest follow in appends of their own (appendRevocations).
const inlineRevocations = 200

// endSessions binds the revocation of every session of u that may still be
// used: those u's events list since its last promotion or disable, read
// from the log at the versions seen (a session a read model has not got
// yet is not missed), and extra, sessions the user's events may not list
// (started before every start was recorded on the user), each checked to
// be u's. The command's own event is what ends them (User.SessionEnded);
// the revocations tell each session's subject, and the read models, why:
// the first inlineRevocations go into the command's append (inline), the
// rest after it (rest, for appendRevocations).
func (s *Sessions) endSessions(ctx context.Context, u domain.User, reason string, now time.Time, extra ...string) (inline, rest []pending, err error) {
	ids := u.LiveSessionIDs()
	for _, id := range extra {
		if id != "" && !slices.Contains(ids, id) && !u.SessionEnded(id) {
			ids = append(ids, id)
		}
	}
	sessions := make([]domain.Session, 0, len(ids))
	versions := make(map[string]uint64, len(ids))
	for _, id := range ids {
		sess, v, err := s.LoadSession(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		sessions = append(sessions, sess)
		versions[id] = v
	}
	evs, err := domain.DecideEndSessions(u, sessions, reason, now)
	if err != nil {
		return nil, nil, err
	}
	out := make([]pending, 0, len(evs))
	for _, ev := range evs {
		id := ev.(domain.SessionRevoked).SessionID
		out = append(out, pending{subject: s.sessionSubject(id), expected: versions[id], event: ev})
	}
	if len(out) > inlineRevocations {
		return out[:inlineRevocations], out[inlineRevocations:], nil
	}
	return out, nil, nil
}

// appendRevocations writes the revocations endSessions left out of a
// command's append, in appends of inlineRevocations; a session that changed
// meanwhile is revoked on its own. The sessions are ended already (the
// command's event says so), so a failure here is logged, not returned.
func (s *Sessions) appendRevocations(ctx context.Context, rest []pending, meta Meta) {
	for len(rest) > 0 {
		n := min(len(rest), inlineRevocations)
		chunk := rest[:n]
		rest = rest[n:]
		if err := s.appendEvents(ctx, meta, chunk...); err == nil {
			continue
		}
		for _, p := range chunk {
			r := p.event.(domain.SessionRevoked)
			if err := s.RevokeSession(ctx, r.SessionID, r.Reason, meta); err != nil {
				s.log.Warn("revoking an ended session failed; it stays ended by its user's event", "session_id", r.SessionID, "error", err)
			}
		}
	}
}

// startOn binds the start of st for the same append: the session's first
// event and, on the user's subject at the version uv the decision saw, the
// sign-in that lists the session among the user's. A promotion, disable,
// delete or expiry appended meanwhile makes the start conflict and be
// decided again, so no session starts unseen by them.
func (s *Sessions) startOn(uv uint64, st *startedSession) []pending {
	started := st.event.(domain.SessionStarted)
	return []pending{
		{subject: s.userSubject(started.UserID), expected: uv, event: domain.SignedIn(started)},
		{subject: s.sessionSubject(started.SessionID), event: st.event},
	}
}
