package app

import (
	"context"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/tokens"
)

// Issued is what a client receives when a session starts or refreshes.
type Issued struct {
	UserID      string
	SessionID   string
	Kind        domain.SessionKind
	IsAnonymous bool
	// SessionToken is the refresh token (refresh_token sessions) or the
	// cookie value (cookie sessions). It is never stored or logged.
	SessionToken string
	// SessionExpiresAt is the end of the session's lifetime.
	SessionExpiresAt time.Time
	AccessToken      string
	ExpiresIn        time.Duration
	// IDToken is the OpenID Connect ID token, when the session was granted
	// the scope openid.
	IDToken string
	// AuthTime is when the user authenticated for the session.
	AuthTime time.Time
	// DPoPBound: the session is bound to a DPoP key, and the access token
	// carries its thumbprint (cnf.jkt): token_type DPoP.
	DPoPBound bool
}

// SignUpAnonymous creates a guest and its first session.
type SignUpAnonymous struct {
	ClientID       string
	Kind           domain.SessionKind
	IdempotencyKey string
	Meta           Meta
}

// ErrTokenOtherClient: an access token presented to a client application
// that it was not issued to.
var ErrTokenOtherClient = errors.New("the access token was issued to another client application")

// SignUpOrResume is what the SDK's authenticateAnonymously() asks for: a
// guest that already has a session (a bearer token in token mode, the
// cookie in cookie mode) gets it back, as Authgear does; otherwise a new
// guest, under the sign-up limit of the client's address.
type SignUpOrResume struct {
	SignUpAnonymous
	// Bearer is the request's access token (token mode), Cookie its session
	// cookie (cookie mode); empty when it has none.
	Bearer, Cookie string
	IP             string
}

// SignUpOrResume runs the command. Resumed, in token mode, carries a fresh
// access token and no refresh token; in cookie mode nothing new. A bearer
// token that does not work is an error; a cookie that does not work is
// ignored (a new guest is made); a session of a regular user is
// domain.ErrNotAnonymous.
func (s *Sessions) SignUpOrResume(ctx context.Context, c SignUpOrResume) (iss Issued, resumed bool, err error) {
	var p Principal
	switch {
	case c.Kind == domain.SessionKindRefreshToken && c.Bearer != "":
		if p, err = s.AuthenticateBearer(ctx, c.Bearer); err != nil {
			return Issued{}, false, err
		}
	case c.Kind == domain.SessionKindCookie && c.Cookie != "":
		if p, err = s.AuthenticateCookie(ctx, c.Cookie); err != nil && !credentialRefused(err) {
			return Issued{}, false, err
		}
	}
	if p.User.Exists() && err == nil {
		if !p.User.IsAnonymous() {
			return Issued{}, false, domain.ErrNotAnonymous
		}
		if c.Kind == domain.SessionKindCookie {
			return Issued{Kind: c.Kind, UserID: p.User.UserID(), SessionID: p.Session.SessionID(), IsAnonymous: true}, true, nil
		}
		if p.Session.ClientID() != c.ClientID {
			return Issued{}, false, ErrTokenOtherClient
		}
		iss, err := s.accessTokenFor(ctx, p)
		iss.SessionToken = ""
		return iss, err == nil, err
	}
	if err := s.AllowAnonymousSignup(ctx, c.IP); err != nil {
		return Issued{}, false, err
	}
	iss, err = s.SignUpAnonymous(ctx, c.SignUpAnonymous)
	return iss, false, err
}

// credentialRefused reports the errors of a token or cookie that does not
// work (as opposed to a service that cannot answer).
func credentialRefused(err error) bool {
	for _, e := range []error{domain.ErrInvalidToken, domain.ErrSessionNotFound, domain.ErrSessionRevoked, domain.ErrSessionExpired,
		domain.ErrUnsupportedSessionOp, domain.ErrUserNotFound, domain.ErrUserDisabled, domain.ErrUserRetired, domain.ErrUserExpired,
		tokens.ErrInvalidAccessToken, tokens.ErrExpiredAccessToken} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// SignUpAnonymous runs the CreateAnonymous command: a new user and its first
// session, written in one atomic append.
func (s *Sessions) SignUpAnonymous(ctx context.Context, c SignUpAnonymous) (Issued, error) {
	if !s.Settings().AnonymousEnabled {
		return Issued{}, ErrAnonymousDisabled
	}
	cl, err := s.publicClient(c.ClientID)
	if err != nil {
		return Issued{}, err
	}
	now := s.clock.Now()
	userID, sessionID := uuid.NewString(), uuid.NewString()
	created, err := domain.DecideCreateAnonymousUser(domain.User{}, domain.CreateAnonymousUser{UserID: userID, ClientID: c.ClientID, SessionID: sessionID, Now: now})
	if err != nil {
		return Issued{}, err
	}
	user := domain.EvolveUser(domain.User{}, created[0])
	token, hash, err := tokens.NewOpaque(s.random, sessionID)
	if err != nil {
		return Issued{}, err
	}
	idle, life, err := lifetimes(cl, c.Kind)
	if err != nil {
		return Issued{}, err
	}
	started, err := domain.DecideStartSession(user, domain.Session{}, domain.StartSession{
		SessionID: sessionID, ClientID: c.ClientID, Kind: c.Kind, Method: domain.MethodAnonymous,
		TokenHash: hash, IdleTimeout: idle, Lifetime: life, Now: now,
	})
	if err != nil {
		return Issued{}, err
	}
	err = s.appendEvents(ctx, c.Meta,
		pending{subject: s.userSubject(userID), event: created[0], msgID: idempotencyMsgID("signup", c.ClientID, c.IdempotencyKey)},
		pending{subject: s.sessionSubject(sessionID), event: started[0]},
	)
	if errors.Is(err, eventstore.ErrDuplicate) {
		return Issued{}, ErrDuplicateRequest
	}
	if err != nil {
		return Issued{}, err
	}
	commands.WithLabelValues("create_anonymous", "ok").Inc()
	sess := domain.EvolveSession(domain.Session{}, started[0])
	return s.issue(ctx, cl.AccessTokenLifetime.Duration(), user, sess, token)
}

// issue signs an access token (and the ID token, see idToken) for a
// session and packs the answer.
func (s *Sessions) issue(ctx context.Context, atLifetime time.Duration, u domain.User, sess domain.Session, token string) (Issued, error) {
	return s.issueNonce(ctx, atLifetime, u, sess, token, "")
}

// issueNonce is issue with the authorization request's nonce.
func (s *Sessions) issueNonce(ctx context.Context, atLifetime time.Duration, u domain.User, sess domain.Session, token, nonce string) (Issued, error) {
	iss, err := s.issueAccess(ctx, atLifetime, u, sess, token)
	if err != nil || sess.Kind() != domain.SessionKindRefreshToken {
		return iss, err
	}
	if iss.IDToken, err = s.idToken(ctx, iss.ExpiresIn, u, sess, iss.AccessToken, nonce); err != nil {
		return Issued{}, err
	}
	return iss, nil
}

// issueAccess packs the answer with the access token. A cookie session
// gets no token signed at all: the cookie is its credential and no answer
// carries a token for it (the two signatures of a token-mode sign-up are
// about a fifth of its server CPU, BENCHMARKS.md).
func (s *Sessions) issueAccess(ctx context.Context, atLifetime time.Duration, u domain.User, sess domain.Session, token string) (Issued, error) {
	iss := Issued{
		UserID: u.UserID(), SessionID: sess.SessionID(), Kind: sess.Kind(), IsAnonymous: u.IsAnonymous(),
		SessionToken: token, SessionExpiresAt: sess.ExpiresAt(), AuthTime: sess.AuthTime(), DPoPBound: sess.DPoPKey() != "",
	}
	if sess.Kind() != domain.SessionKindRefreshToken {
		return iss, nil
	}
	var err error
	if iss.AccessToken, iss.ExpiresIn, err = s.accessToken(ctx, atLifetime, u, sess); err != nil {
		return Issued{}, err
	}
	return iss, nil
}

func (s *Sessions) accessToken(ctx context.Context, lifetime time.Duration, u domain.User, sess domain.Session) (string, time.Duration, error) {
	now := s.clock.Now()
	// Never outlive the session.
	if left := sess.ExpiresAt().Sub(now); left < lifetime {
		lifetime = left
	}
	var cnf *tokens.Confirmation
	if jkt := sess.DPoPKey(); jkt != "" {
		cnf = &tokens.Confirmation{JKT: jkt}
	}
	at, err := s.keys.Sign(ctx, tokens.AccessClaims{
		Claims: jwt.Claims{
			Subject:   u.UserID(),
			Audience:  jwt.Audience{sess.ClientID()},
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now),
			Expiry:    jwt.NewNumericDate(now.Add(lifetime)),
			ID:        uuid.NewString(),
		},
		ClientID:     sess.ClientID(),
		SessionID:    sess.SessionID(),
		IsAnonymous:  u.IsAnonymous(),
		Confirmation: cnf,
	})
	return at, lifetime, err
}

// Refresh rotates a refresh token and issues a new access token. A refresh
// token that was already rotated away revokes the whole session.
func (s *Sessions) Refresh(ctx context.Context, clientID, presented string, meta Meta) (Issued, error) {
	return currentRead(ctx, s.core, func(ctx context.Context) (Issued, error) { return s.refresh(ctx, clientID, presented, meta) })
}

func (s *Sessions) refresh(ctx context.Context, clientID, presented string, meta Meta) (Issued, error) {
	cl, err := s.client(clientID)
	if err != nil {
		return Issued{}, err
	}
	sessionID, presentedHash, err := tokens.ParseOpaque(presented)
	if err != nil {
		return Issued{}, domain.ErrInvalidToken
	}
	attempt, counted := 0, false
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (Issued, error) {
		attempt++
		sess, version, err := s.LoadSession(ctx, sessionID)
		if err != nil {
			return Issued{}, err
		}
		token, hash, err := tokens.NewOpaque(s.random, sessionID)
		if err != nil {
			return Issued{}, err
		}
		evs, decided := domain.DecideRefreshSession(sess, domain.RefreshSession{
			ClientID: clientID, PresentedHash: presentedHash, NewHash: hash, Now: s.clock.Now(),
			ReuseInterval: cl.RefreshTokenReuseInterval.Duration(), Retry: attempt > 1, DPoPJKT: meta.DPoPJKT,
		})
		if decided == nil && len(evs) > 0 {
			// A rotation the user has refused already (disabled, or the
			// session ended by a user event whose revocations are still
			// being written) is answered without writing it.
			if err := s.ownerRefuses(ctx, sess); err != nil {
				return Issued{}, err
			}
			// A rotation is an event in the log for good: one session makes
			// at most rate_limits.refresh of them (counted once a request,
			// whatever its attempts). The token checked out, so nobody
			// without it can spend a session's budget; a reuse, which
			// revokes, is never held back.
			if !counted {
				if err := s.allowSessionUse(ctx, "refresh", sessionID, s.Settings().RateLimits.Refresh); err != nil {
					return Issued{}, err
				}
				counted = true
			}
		}
		if len(evs) > 0 {
			// A conflict: someone else rotated or revoked first, and the
			// next attempt decides on what they wrote (a racing second use
			// is then reuse).
			if err := s.appendEvents(ctx, meta, pending{subject: s.sessionSubject(sessionID), expected: version, event: evs[0]}); err != nil {
				return Issued{}, err
			}
		}
		if decided != nil {
			if errors.Is(decided, domain.ErrRefreshTokenReused) {
				s.log.Warn("refresh token reuse detected; session revoked", "session_id", sessionID, "correlation_id", meta.CorrelationID)
			}
			commands.WithLabelValues("refresh_session", "rejected").Inc()
			return Issued{}, decided
		}
		// Read again after the rotation is written: a disable committed
		// since the first read must be seen.
		u, _, err := s.LoadUser(ctx, sess.UserID())
		if err == nil && errors.Is(u.CanSignIn(), domain.ErrUserNotFound) && s.replicated() {
			// The rotation is written, so this refresh must not end in a
			// miss that Refresh repeats (the repeat would see the token
			// rotated away and revoke the session as reused): a replica
			// that has not got the guest yet answered, ask the leader.
			u, _, err = s.LoadUser(eventstore.WithLeaderCheck(ctx), sess.UserID())
		}
		if err != nil {
			return Issued{}, err
		}
		if err := u.CanSignIn(); err != nil {
			return Issued{}, err
		}
		if u.SessionEnded(sessionID) {
			return Issued{}, domain.ErrSessionRevoked
		}
		commands.WithLabelValues("refresh_session", "ok").Inc()
		return s.issue(ctx, cl.AccessTokenLifetime.Duration(), u, domain.EvolveSession(sess, evs[0]), token)
	})
}

// RevokeSession ends a session (logout, revocation).
func (s *Sessions) RevokeSession(ctx context.Context, sessionID, reason string, meta Meta) error {
	_, err := retryDecision(ctx, retryOptions{}, func(ctx context.Context) (struct{}, error) {
		sess, version, err := s.LoadSession(ctx, sessionID)
		if err != nil {
			return struct{}{}, err
		}
		evs, err := domain.DecideRevokeSession(sess, domain.RevokeSession{Reason: reason, Now: s.clock.Now()})
		if err != nil || len(evs) == 0 {
			return struct{}{}, err
		}
		err = s.appendEvents(ctx, meta, pending{subject: s.sessionSubject(sessionID), expected: version, event: evs[0]})
		if err == nil {
			commands.WithLabelValues("revoke_session", "ok").Inc()
		}
		return struct{}{}, err
	})
	return err
}

// Principal is who a request acts for.
type Principal struct {
	User    domain.User
	Session domain.Session
	// AccessExpiresAt is when the access token that authenticated the
	// request expires (zero for a cookie).
	AccessExpiresAt time.Time
}

// activityResolution bounds how often a cookie session's activity is
// recorded: at most once a minute, so idle timeouts are precise to a minute.
const activityResolution = time.Minute

// AuthenticateCookie checks a session cookie and records activity.
func (s *Sessions) AuthenticateCookie(ctx context.Context, token string) (Principal, error) {
	return currentRead(ctx, s.core, func(ctx context.Context) (Principal, error) { return s.authenticateCookie(ctx, token) })
}

func (s *Sessions) authenticateCookie(ctx context.Context, token string) (Principal, error) {
	sessionID, hash, err := tokens.ParseOpaque(token)
	if err != nil {
		return Principal{}, domain.ErrInvalidToken
	}
	sess, _, err := s.LoadSession(ctx, sessionID)
	if err != nil {
		return Principal{}, err
	}
	if !sess.MatchesToken(hash) || sess.Kind() != domain.SessionKindCookie {
		return Principal{}, domain.ErrInvalidToken
	}
	last, err := s.activity.Last(ctx, sessionID)
	if err != nil {
		return Principal{}, err
	}
	now := s.clock.Now()
	if err := sess.Check(now, last); err != nil {
		return Principal{}, err
	}
	if now.Sub(maxTime(last, sess.LastActiveAt())) >= activityResolution {
		if err := s.activity.Touch(ctx, sessionID, now); err != nil {
			s.log.Warn("recording session activity failed", "session_id", sessionID, "error", err)
		}
	}
	return s.principal(ctx, sess)
}

// AuthenticateBearer checks an access token and that its session and user
// are still live (a revoked session's access tokens stop at once).
func (s *Sessions) AuthenticateBearer(ctx context.Context, raw string) (Principal, error) {
	return currentRead(ctx, s.core, func(ctx context.Context) (Principal, error) { return s.authenticateBearer(ctx, raw) })
}

func (s *Sessions) authenticateBearer(ctx context.Context, raw string) (Principal, error) {
	p, bound, err := s.verifyAccess(ctx, raw)
	if err == nil && bound != "" {
		// A bound token is only worth something with its key's proof:
		// AuthenticateAccess.
		return Principal{}, domain.ErrDPoPProofRequired
	}
	return p, err
}

// authenticateBearerBound checks an access token as authenticateBearer does
// and returns the DPoP key it is bound to ("" for a bearer token).
func (s *Sessions) authenticateBearerBound(ctx context.Context, raw string) (Principal, string, error) {
	p, bound, err := s.verifyAccess(ctx, raw)
	if err != nil && staleMiss(err) && s.replicated() {
		return s.verifyAccess(eventstore.WithLeaderCheck(ctx), raw)
	}
	return p, bound, err
}

func (s *Sessions) verifyAccess(ctx context.Context, raw string) (Principal, string, error) {
	claims, err := s.keys.Verify(ctx, raw)
	if err != nil {
		return Principal{}, "", err
	}
	sess, _, err := s.LoadSession(ctx, claims.SessionID)
	if err != nil {
		return Principal{}, "", err
	}
	if sess.UserID() != claims.Subject || claims.BoundKey() != sess.DPoPKey() {
		return Principal{}, "", domain.ErrInvalidToken
	}
	if err := sess.Check(s.clock.Now(), time.Time{}); err != nil {
		return Principal{}, "", err
	}
	p, err := s.principal(ctx, sess)
	if claims.Expiry != nil {
		p.AccessExpiresAt = claims.Expiry.Time()
	}
	return p, claims.BoundKey(), err
}

func (s *Sessions) principal(ctx context.Context, sess domain.Session) (Principal, error) {
	u, _, err := s.LoadUser(ctx, sess.UserID())
	if err != nil {
		return Principal{}, err
	}
	if err := u.CanSignIn(); err != nil {
		return Principal{}, err
	}
	if u.SessionEnded(sess.SessionID()) {
		return Principal{}, domain.ErrSessionRevoked
	}
	return Principal{User: u, Session: sess}, nil
}

// accessTokenFor issues a new access token for a live session (a guest
// calling anonymous sign-up again with its token), expiring no later than
// the token that authenticated the request.
func (s *Sessions) accessTokenFor(ctx context.Context, p Principal) (Issued, error) {
	cl, err := s.client(p.Session.ClientID())
	if err != nil {
		return Issued{}, err
	}
	lifetime := cl.AccessTokenLifetime.Duration()
	if !p.AccessExpiresAt.IsZero() {
		// Never past the token presented: otherwise each token would buy
		// the next, and a stolen one would outlive its expiry by as long
		// as the session lives, with no refresh token ever shown.
		lifetime = min(lifetime, p.AccessExpiresAt.Sub(s.clock.Now()))
		if lifetime <= 0 {
			return Issued{}, tokens.ErrExpiredAccessToken
		}
	}
	return s.issue(ctx, lifetime, p.User, p.Session, "")
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
