package domain_test

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/idstream/idstream/domain"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func given[S any](evolve func(S, domain.Event) S, evs ...domain.Event) S {
	var s S
	for _, e := range evs {
		s = evolve(s, e)
	}
	return s
}

func created() domain.AnonymousUserCreated {
	return domain.AnonymousUserCreated{UserID: "u1", ClientID: "c1", CreatedAt: t0}
}

func started(kind domain.SessionKind) domain.SessionStarted {
	return domain.SessionStarted{SessionID: "s1", UserID: "u1", ClientID: "c1", Kind: kind, Method: domain.MethodAnonymous,
		TokenHash: "h0", IdleTimeout: 3600, Lifetime: 86400, StartedAt: t0}
}

func refreshed(prev, next string, gen int, at time.Time) domain.SessionRefreshed {
	return domain.SessionRefreshed{SessionID: "s1", UserID: "u1", PreviousHash: prev, TokenHash: next, Generation: gen, RefreshedAt: at}
}

func TestCreateAnonymousUser(t *testing.T) {
	cmd := domain.CreateAnonymousUser{UserID: "u1", ClientID: "c1", Now: t0}
	tests := []struct {
		name    string
		given   []domain.Event
		cmd     domain.CreateAnonymousUser
		want    []domain.Event
		wantErr error
	}{
		{"new user", nil, cmd, []domain.Event{created()}, nil},
		{"already exists", []domain.Event{created()}, cmd, nil, domain.ErrUserExists},
		{"missing id", nil, domain.CreateAnonymousUser{ClientID: "c1", Now: t0}, nil, domain.ErrInvalidCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideCreateAnonymousUser(given(domain.EvolveUser, tc.given...), tc.cmd)
			if !errors.Is(err, tc.wantErr) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestStartSession(t *testing.T) {
	cmd := domain.StartSession{SessionID: "s1", ClientID: "c1", Kind: domain.SessionKindRefreshToken, Method: domain.MethodAnonymous,
		TokenHash: "h0", IdleTimeout: time.Hour, Lifetime: 24 * time.Hour, Now: t0}
	bad := cmd
	bad.Lifetime = time.Minute
	badKind := cmd
	badKind.Kind = "jwt"
	tests := []struct {
		name    string
		user    []domain.Event
		sess    []domain.Event
		cmd     domain.StartSession
		want    []domain.Event
		wantErr error
	}{
		{"starts", []domain.Event{created()}, nil, cmd, []domain.Event{started(domain.SessionKindRefreshToken)}, nil},
		{"no user", nil, nil, cmd, nil, domain.ErrUserNotFound},
		{"session exists", []domain.Event{created()}, []domain.Event{started(domain.SessionKindRefreshToken)}, cmd, nil, domain.ErrSessionExists},
		{"lifetime shorter than idle", []domain.Event{created()}, nil, bad, nil, domain.ErrInvalidCommand},
		{"unknown kind", []domain.Event{created()}, nil, badKind, nil, domain.ErrInvalidCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideStartSession(given(domain.EvolveUser, tc.user...), given(domain.EvolveSession, tc.sess...), tc.cmd)
			if !errors.Is(err, tc.wantErr) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRefreshSession(t *testing.T) {
	at := t0.Add(10 * time.Minute)
	cmd := func(presented string, now time.Time) domain.RefreshSession {
		return domain.RefreshSession{ClientID: "c1", PresentedHash: presented, NewHash: "hN", Now: now}
	}
	rt := started(domain.SessionKindRefreshToken)
	revokedForReuse := domain.SessionRevoked{SessionID: "s1", UserID: "u1", Reason: domain.RevokeReasonTokenReuse, RevokedAt: at}
	tests := []struct {
		name    string
		given   []domain.Event
		cmd     domain.RefreshSession
		want    []domain.Event
		wantErr error
	}{
		{"rotates current token", []domain.Event{rt}, cmd("h0", at), []domain.Event{refreshed("h0", "hN", 1, at)}, nil},
		{"rotates again", []domain.Event{rt, refreshed("h0", "h1", 1, at)}, cmd("h1", at), []domain.Event{refreshed("h1", "hN", 2, at)}, nil},
		{"reuse revokes", []domain.Event{rt, refreshed("h0", "h1", 1, at)}, cmd("h0", at), []domain.Event{revokedForReuse}, domain.ErrRefreshTokenReused},
		{"unknown token", []domain.Event{rt}, cmd("hX", at), nil, domain.ErrInvalidToken},
		{"no session", nil, cmd("h0", at), nil, domain.ErrInvalidToken},
		{"revoked", []domain.Event{rt, domain.SessionRevoked{SessionID: "s1", Reason: "logout", RevokedAt: at}}, cmd("h0", at), nil, domain.ErrSessionRevoked},
		{"idle timeout", []domain.Event{rt}, cmd("h0", t0.Add(time.Hour)), nil, domain.ErrSessionExpired},
		{"refresh extends idle", []domain.Event{rt, refreshed("h0", "h1", 1, t0.Add(50*time.Minute))}, cmd("h1", t0.Add(100*time.Minute)),
			[]domain.Event{refreshed("h1", "hN", 2, t0.Add(100*time.Minute))}, nil},
		{"lifetime", []domain.Event{rt, refreshed("h0", "h1", 1, t0.Add(23*time.Hour+30*time.Minute))}, cmd("h1", t0.Add(24*time.Hour)), nil, domain.ErrSessionExpired},
		{"cookie session cannot refresh", []domain.Event{started(domain.SessionKindCookie)}, cmd("h0", at), nil, domain.ErrUnsupportedSessionOp},
		{"other client", []domain.Event{rt}, domain.RefreshSession{ClientID: "c2", PresentedHash: "h0", NewHash: "hN", Now: at}, nil, domain.ErrInvalidToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideRefreshSession(given(domain.EvolveSession, tc.given...), tc.cmd)
			if !errors.Is(err, tc.wantErr) || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestRevokeSession(t *testing.T) {
	at := t0.Add(time.Minute)
	rt := started(domain.SessionKindRefreshToken)
	revoked := domain.SessionRevoked{SessionID: "s1", UserID: "u1", Reason: "logout", RevokedAt: at}
	tests := []struct {
		name  string
		given []domain.Event
		want  []domain.Event
	}{
		{"revokes", []domain.Event{rt}, []domain.Event{revoked}},
		{"already revoked", []domain.Event{rt, revoked}, nil},
		{"unknown", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideRevokeSession(given(domain.EvolveSession, tc.given...), domain.RevokeSession{Reason: "logout", Now: at})
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func TestSessionCheckUsesActivity(t *testing.T) {
	s := given(domain.EvolveSession, domain.Event(started(domain.SessionKindCookie)))
	late := t0.Add(90 * time.Minute)
	if err := s.Check(late, time.Time{}); !errors.Is(err, domain.ErrSessionExpired) {
		t.Fatalf("idle session: %v", err)
	}
	if err := s.Check(late, t0.Add(45*time.Minute)); err != nil {
		t.Fatalf("recent activity keeps it alive: %v", err)
	}
}

func TestDecodeEventRoundTrip(t *testing.T) {
	for _, ev := range []domain.Event{created(), started(domain.SessionKindCookie), refreshed("a", "b", 1, t0),
		domain.SessionRevoked{SessionID: "s1", UserID: "u1", Reason: "logout", RevokedAt: t0}} {
		raw, err := jsonMarshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := domain.DecodeEvent(ev.EventType(), raw)
		if err != nil || !reflect.DeepEqual(got, ev) {
			t.Fatalf("%s: got %#v, %v", ev.EventType(), got, err)
		}
	}
	if _, err := domain.DecodeEvent("user.unknown.v9", []byte(`{}`)); !errors.Is(err, domain.ErrUnknownEventType) {
		t.Fatalf("unknown type: %v", err)
	}
	if _, err := domain.DecodeEvent(domain.TypeSessionStarted, []byte(`{"kind":`)); err == nil {
		t.Fatal("truncated payload decoded")
	}
}

// States are shared (app caches them): what an accessor returns is a copy.
func TestStateAccessorsReturnCopies(t *testing.T) {
	k := domain.EvolveAnonymousKey(domain.AnonymousKey{}, domain.AnonymousKeyClaimed{KeyID: "k", UserID: "u", JWK: []byte(`{"kty":"EC"}`)})
	k.JWK()[0] = 'x'
	u := domain.EvolveUser(domain.User{}, domain.AnonymousUserCreated{UserID: "u", SessionID: "s1"})
	u = domain.EvolveUser(u, domain.AnonymousKeyRegistered{UserID: "u", KeyID: "k"})
	u.AnonymousKeyIDs()[0] = "changed"
	u.SessionIDs()[0] = "changed"
	if string(k.JWK()) != `{"kty":"EC"}` || u.AnonymousKeyIDs()[0] != "k" || u.SessionIDs()[0] != "s1" {
		t.Fatalf("a change through an accessor reached the state: %s %v %v", k.JWK(), u.AnonymousKeyIDs(), u.SessionIDs())
	}
}

// A fold copies what it writes once and then appends in place: it must equal
// evolving one event at a time, and never write into the state it started
// from, which others may hold (app caches states).
func TestFoldEqualsEvolveAndLeavesItsStartAlone(t *testing.T) {
	signIn := func(id string) domain.Event { return domain.UserSignedIn{UserID: "u", SessionID: id} }
	key := func(id string) domain.Event { return domain.AnonymousKeyRegistered{UserID: "u", KeyID: id} }
	refresh := func(n int) domain.Event {
		return domain.SessionRefreshed{SessionID: "s", PreviousHash: string(rune('a' + n)), TokenHash: string(rune('b' + n)), Generation: n}
	}
	userHistory := []domain.Event{domain.AnonymousUserCreated{UserID: "u", SessionID: "s0"}, signIn("s1"), signIn("s2"), signIn("s3"), signIn("s4"), key("k1"), key("k2"), key("k3")}
	sessionHistory := []domain.Event{domain.SessionStarted{SessionID: "s", UserID: "u", TokenHash: "a"}, refresh(0), refresh(1), refresh(2)}

	evolveUser := func(u domain.User, evs ...domain.Event) domain.User {
		for _, ev := range evs {
			u = domain.EvolveUser(u, ev)
		}
		return u
	}
	evolveSession := func(s domain.Session, evs ...domain.Event) domain.Session {
		for _, ev := range evs {
			s = domain.EvolveSession(s, ev)
		}
		return s
	}
	// The fold's own appends leave spare capacity in the start state's
	// lists: two later folds from it must not write into it.
	start := domain.FoldUser(domain.User{}, userHistory...)
	a := domain.FoldUser(start, signIn("a"), key("ka"))
	b := domain.FoldUser(start, signIn("b"), key("kc"))
	c := domain.FoldUser(start, domain.AnonymousKeyRemoved{UserID: "u", KeyID: "k1"}, key("kb"))
	if !reflect.DeepEqual(start, evolveUser(domain.User{}, userHistory...)) {
		t.Fatal("FoldUser differs from EvolveUser one event at a time, or a later fold wrote into its start")
	}
	for name, tc := range map[string]struct {
		got   domain.User
		after []domain.Event
	}{
		"a": {a, []domain.Event{signIn("a"), key("ka")}},
		"b": {b, []domain.Event{signIn("b"), key("kc")}},
		"c": {c, []domain.Event{domain.AnonymousKeyRemoved{UserID: "u", KeyID: "k1"}, key("kb")}},
	} {
		want := evolveUser(domain.User{}, append(slices.Clip(userHistory), tc.after...)...)
		if !reflect.DeepEqual(tc.got, want) {
			t.Fatalf("fold %s: %v %v, want %v %v", name, tc.got.SessionIDs(), tc.got.AnonymousKeyIDs(), want.SessionIDs(), want.AnonymousKeyIDs())
		}
	}

	ss := domain.FoldSession(domain.Session{}, sessionHistory...)
	sa := domain.FoldSession(ss, refresh(3), refresh(4))
	sb := domain.FoldSession(ss, refresh(5), domain.SessionRevoked{SessionID: "s"})
	if !reflect.DeepEqual(ss, evolveSession(domain.Session{}, sessionHistory...)) {
		t.Fatal("FoldSession differs from EvolveSession one event at a time, or a later fold wrote into its start")
	}
	if !reflect.DeepEqual(sa, evolveSession(domain.Session{}, append(slices.Clip(sessionHistory), refresh(3), refresh(4))...)) ||
		!reflect.DeepEqual(sb, evolveSession(domain.Session{}, append(slices.Clip(sessionHistory), refresh(5), domain.SessionRevoked{SessionID: "s"})...)) {
		t.Fatal("two folds from one session state differ from evolving each history")
	}
}

func TestUserListsEverySessionItStarted(t *testing.T) {
	s2 := started(domain.SessionKindRefreshToken)
	s2.SessionID, s2.Method = "s2", domain.MethodPassword
	u := given(domain.EvolveUser, domain.AnonymousUserCreated{UserID: "u1", ClientID: "c1", CreatedAt: t0, SessionID: "s1"},
		domain.UserPromoted{UserID: "u1", LoginIDType: "email", LoginID: "a@example.com", PromotedAt: t0},
		domain.SignedIn(s2))
	if got := u.SessionIDs(); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Fatalf("a regular user's sessions: %v", got)
	}
	if ev := domain.SignedIn(s2); ev.SessionID != "s2" || ev.UserID != "u1" || ev.Method != domain.MethodPassword || !ev.SignedInAt.Equal(t0) {
		t.Fatalf("SignedIn: %+v", ev)
	}
}

func TestDecideEndSessions(t *testing.T) {
	u := given(domain.EvolveUser, created())
	live := given(domain.EvolveSession, domain.Event(started(domain.SessionKindRefreshToken)))
	idle := given(domain.EvolveSession, domain.Event(started(domain.SessionKindCookie)))
	revoked := given(domain.EvolveSession, started(domain.SessionKindRefreshToken),
		domain.SessionRevoked{SessionID: "s1", UserID: "u1", Reason: domain.RevokeReasonLogout, RevokedAt: t0})
	other := started(domain.SessionKindRefreshToken)
	other.UserID = "u2"
	foreign := given(domain.EvolveSession, domain.Event(other))
	at := t0.Add(2 * time.Hour) // past the idle timeout (1 h), within the lifetime (24 h)
	tests := []struct {
		name     string
		sessions []domain.Session
		now      time.Time
		want     int
	}{
		{"live", []domain.Session{live}, t0, 1},
		{"idle past its timeout: revoked (activity may be outside the log)", []domain.Session{idle}, at, 1},
		{"past its lifetime", []domain.Session{live}, t0.Add(25 * time.Hour), 0},
		{"already revoked", []domain.Session{revoked}, t0, 0},
		{"another user's", []domain.Session{foreign}, t0, 0},
		{"unknown", []domain.Session{{}}, t0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := domain.DecideEndSessions(u, tc.sessions, domain.RevokeReasonPromoted, tc.now)
			if err != nil || len(got) != tc.want {
				t.Fatalf("got %v, %v; want %d events", got, err, tc.want)
			}
			for _, ev := range got {
				if r := ev.(domain.SessionRevoked); r.Reason != domain.RevokeReasonPromoted || r.UserID != "u1" {
					t.Fatalf("event %+v", r)
				}
			}
		})
	}
	if _, err := domain.DecideEndSessions(u, nil, "", t0); !errors.Is(err, domain.ErrInvalidCommand) {
		t.Fatalf("no reason: %v", err)
	}
}

// Issue 17: a retry of the token the latest rotation replaced, within the
// client's reuse interval, rotates again; the lost answer's token gets no
// grace; an older token, a retry after the interval, or a decision made
// again after losing a race still revokes.
func TestRefreshReuseInterval(t *testing.T) {
	s := given(domain.EvolveSession, domain.Event(started(domain.SessionKindRefreshToken)), refreshed("h0", "h1", 1, t0.Add(time.Minute)))
	at := t0.Add(time.Minute + 5*time.Second)
	cmd := func(presented string, now time.Time, retry bool) domain.RefreshSession {
		return domain.RefreshSession{ClientID: "c1", PresentedHash: presented, NewHash: "h2", Now: now, ReuseInterval: 10 * time.Second, Retry: retry}
	}
	evs, err := domain.DecideRefreshSession(s, cmd("h0", at, false))
	if err != nil || len(evs) != 1 {
		t.Fatalf("retry within the interval: %v %v", evs, err)
	}
	if r := evs[0].(domain.SessionRefreshed); r.PreviousHash != "h1" || r.TokenHash != "h2" || !r.Reissued || r.Generation != 2 {
		t.Fatalf("reissue: %+v", r)
	}
	after := domain.EvolveSession(s, evs[0])
	// The lost answer's token (h1) and the retried one (h0) are reuse now.
	for _, tok := range []string{"h1", "h0"} {
		if _, err := domain.DecideRefreshSession(after, cmd(tok, at.Add(time.Second), false)); !errors.Is(err, domain.ErrRefreshTokenReused) {
			t.Fatalf("%s after the reissue: %v", tok, err)
		}
	}
	if _, err := domain.DecideRefreshSession(s, cmd("h0", t0.Add(time.Minute+11*time.Second), false)); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("retry after the interval: %v", err)
	}
	if _, err := domain.DecideRefreshSession(s, cmd("h0", at, true)); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("a decision made again after losing a race: %v", err)
	}
	older := domain.EvolveSession(s, refreshed("h1", "h3", 2, t0.Add(time.Minute+2*time.Second)))
	if _, err := domain.DecideRefreshSession(older, cmd("h0", t0.Add(time.Minute+3*time.Second), false)); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("a token two rotations back: %v", err)
	}
	off := cmd("h0", at, false)
	off.ReuseInterval = 0
	if _, err := domain.DecideRefreshSession(s, off); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("interval off: %v", err)
	}
}

// TestReauthenticateSession: only a live session, and only by its user.
func TestReauthenticateSession(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	u := domain.FoldUser(domain.User{}, domain.AnonymousUserCreated{UserID: "u1", ClientID: "web", SessionID: "s1", CreatedAt: now})
	started, err := domain.DecideStartSession(u, domain.Session{}, domain.StartSession{SessionID: "s1", ClientID: "web", Kind: domain.SessionKindRefreshToken,
		Method: domain.MethodPassword, TokenHash: "h", IdleTimeout: time.Hour, Lifetime: 2 * time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	sess := domain.EvolveSession(domain.Session{}, started[0])
	c := domain.ReauthenticateSession{UserID: "u1", Method: domain.MethodPassword, Now: now.Add(30 * time.Minute)}
	evs, err := domain.DecideReauthenticateSession(sess, c)
	if err != nil || len(evs) != 1 || !domain.EvolveSession(sess, evs[0]).AuthTime().Equal(c.Now) || !sess.AuthTime().Equal(now) {
		t.Fatalf("live session: %v %v", evs, err)
	}
	if _, err := domain.DecideReauthenticateSession(sess, domain.ReauthenticateSession{UserID: "u2", Method: domain.MethodPassword, Now: c.Now}); !errors.Is(err, domain.ErrInvalidToken) {
		t.Fatalf("another user: %v", err)
	}
	if _, err := domain.DecideReauthenticateSession(domain.Session{}, c); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("no session: %v", err)
	}
	if _, err := domain.DecideReauthenticateSession(sess, domain.ReauthenticateSession{UserID: "u1", Method: domain.MethodPassword, Now: now.Add(3 * time.Hour)}); err == nil {
		t.Fatal("an expired session was re-authenticated")
	}
	revoked := domain.EvolveSession(sess, domain.SessionRevoked{SessionID: "s1", UserID: "u1", Reason: domain.RevokeReasonLogout, RevokedAt: now})
	if _, err := domain.DecideReauthenticateSession(revoked, c); !errors.Is(err, domain.ErrSessionRevoked) {
		t.Fatalf("a revoked session: %v", err)
	}
}

func TestRefreshBoundToDPoPKey(t *testing.T) {
	const key, other = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
	st := started(domain.SessionKindRefreshToken)
	st.DPoPJKT = key
	s := given(domain.EvolveSession, domain.Event(st), refreshed("h0", "h1", 1, t0.Add(time.Minute)))
	if s.DPoPKey() != key {
		t.Fatalf("bound key %q", s.DPoPKey())
	}
	at := t0.Add(2 * time.Minute)
	cmd := func(presented, jkt string) domain.RefreshSession {
		return domain.RefreshSession{ClientID: "c1", PresentedHash: presented, NewHash: "h2", Now: at, DPoPJKT: jkt}
	}
	for _, c := range []struct {
		name, token, jkt string
		want             error
	}{
		{"current token without a proof", "h1", "", domain.ErrDPoPProofRequired},
		{"current token with another key", "h1", other, domain.ErrDPoPKeyMismatch},
		// A stolen old token replayed without the key neither revokes nor
		// rotates: the key decides first.
		{"rotated-away token without the key", "h0", other, domain.ErrDPoPKeyMismatch},
	} {
		evs, err := domain.DecideRefreshSession(s, cmd(c.token, c.jkt))
		if !errors.Is(err, c.want) || len(evs) != 0 {
			t.Errorf("%s: %v %v, want %v and no event", c.name, evs, err, c.want)
		}
	}
	evs, err := domain.DecideRefreshSession(s, cmd("h1", key))
	if err != nil || len(evs) != 1 {
		t.Fatalf("with the bound key: %v %v", evs, err)
	}
	if _, err := domain.DecideRefreshSession(s, cmd("h0", key)); !errors.Is(err, domain.ErrRefreshTokenReused) {
		t.Fatalf("reuse with the bound key still revokes: %v", err)
	}
	// An unbound session ignores whatever key a proof had.
	unbound := given(domain.EvolveSession, domain.Event(started(domain.SessionKindRefreshToken)))
	if evs, err := domain.DecideRefreshSession(unbound, domain.RefreshSession{ClientID: "c1", PresentedHash: "h0", NewHash: "h1", Now: at, DPoPJKT: other}); err != nil || len(evs) != 1 {
		t.Fatalf("unbound session with a proof: %v %v", evs, err)
	}
	bad := domain.StartSession{SessionID: "s2", ClientID: "c1", Kind: domain.SessionKindRefreshToken, Method: domain.MethodAnonymous,
		TokenHash: "h", IdleTimeout: time.Hour, Lifetime: 2 * time.Hour, Now: t0, DPoPJKT: "not-a-thumbprint"}
	u := given(domain.EvolveUser, domain.Event(domain.AnonymousUserCreated{UserID: "u1", ClientID: "c1", CreatedAt: t0}))
	if _, err := domain.DecideStartSession(u, domain.Session{}, bad); !errors.Is(err, domain.ErrInvalidCommand) {
		t.Fatalf("a malformed thumbprint: %v", err)
	}
	bad.DPoPJKT = key
	if evs, err := domain.DecideStartSession(u, domain.Session{}, bad); err != nil || evs[0].(domain.SessionStarted).DPoPJKT != key {
		t.Fatalf("bound start: %v %v", evs, err)
	}
}
