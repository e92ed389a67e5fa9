package app

import (
	"cmp"
	"context"
	"errors"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/tokens"
)

// amrOf is the ID token's amr (RFC 8176) for a sign-in method of the
// user: a password ("pwd"), a one-time code ("otp", with "sms" when it came
// by text message) or a device key held by the app ("swk"); a promotion is
// the password the user set in it, or, promoted without one, the code that
// proved its login ID; a web guest proved nothing, and has none.
func amrOf(method string, u domain.User) []string {
	if method == domain.MethodPromotion {
		switch typ, _ := u.LoginID(); {
		case u.PasswordHash() != "":
			method = domain.MethodPassword
		case typ == string(loginid.Phone):
			method = domain.MethodSMSCode
		default:
			method = domain.MethodEmailCode
		}
	}
	switch method {
	case domain.MethodPassword:
		return []string{"pwd"}
	case domain.MethodEmailCode:
		return []string{"otp"}
	case domain.MethodSMSCode:
		return []string{"otp", "sms"}
	case domain.MethodAnonymousKey:
		return []string{"swk"}
	case domain.MethodExternal:
		// An upstream identity provider (issue 19): "fed", as Azure AD
		// and Authgear say of federated sign-in (not in RFC 8176).
		return []string{"fed"}
	}
	return nil
}

// fullAccessScope is the Authgear SDKs' scope for first-party apps.
const fullAccessScope = "https://authgear.com/scopes/full-access"

// UserClaims are the claims about the user that an ID token and userinfo
// carry for a session: the login ID as email, phone_number or
// preferred_username when the session was granted the scope email, phone or
// profile (or the SDKs' full-access scope); email_verified and
// phone_number_verified say whether the login ID was proved by a code, and
// is_verified whether any was (Authgear's definition).
// can_reauthenticate is true for a user with a password.
func UserClaims(u domain.User, sess domain.Session) tokens.UserClaims {
	// A user with a password can re-authenticate (the Authgear SDKs'
	// startReauthentication); a guest cannot.
	c := tokens.UserClaims{IsAnonymous: u.IsAnonymous(), IsVerified: u.IsVerified(), CanReauthenticate: !u.IsAnonymous() && u.PasswordHash() != ""}
	// Authgear's full-access scope (the SDKs' sessions) grants the
	// standard claims too.
	granted := func(scope string) bool { return sess.HasScope(scope) || sess.HasScope(fullAccessScope) }
	switch typ, value := u.LoginID(); {
	case value == "":
	case typ == string(loginid.Email) && granted("email"):
		verified := u.LoginIDVerified(typ, value)
		c.Email, c.EmailVerified = value, &verified
	case typ == string(loginid.Phone) && granted("phone"):
		verified := u.LoginIDVerified(typ, value)
		c.PhoneNumber, c.PhoneNumberVerified = value, &verified
	case typ == string(loginid.Username) && granted("profile"):
		c.PreferredUsername = value
	}
	return c
}

// idToken signs the ID token of a token response when the session was
// granted openid; "" otherwise. nonce is the authorization request's (code
// exchange only: a refreshed ID token carries none, OpenID Connect Core
// §12.2).
func (s *Sessions) idToken(ctx context.Context, lifetime time.Duration, u domain.User, sess domain.Session, accessToken, nonce string) (string, error) {
	if !sess.HasScope("openid") {
		return "", nil
	}
	now := s.clock.Now()
	return s.keys.SignIDToken(ctx, tokens.IDClaims{
		Claims: jwt.Claims{
			Subject:  u.UserID(),
			Audience: jwt.Audience{sess.ClientID()},
			IssuedAt: jwt.NewNumericDate(now),
			Expiry:   jwt.NewNumericDate(now.Add(lifetime)),
		},
		AuthTime:   jwt.NewNumericDate(sess.AuthTime()),
		Nonce:      nonce,
		SessionID:  sess.SessionID(),
		AtHash:     tokens.AtHash(accessToken),
		AMR:        amrOf(sess.Method(), u),
		AZP:        sess.ClientID(),
		UserClaims: UserClaims(u, sess),
	})
}

// liveSessionOf returns the session id when it names a live session of the
// user and client (a re-authentication's id_token_hint), else "".
func (s *Sessions) liveSessionOf(ctx context.Context, sessionID, userID, clientID string) (string, error) {
	if sessionID == "" {
		return "", nil
	}
	sess, _, err := s.LoadSession(ctx, sessionID)
	if err != nil {
		if credentialRefused(err) {
			return "", nil
		}
		return "", err
	}
	if !sess.Exists() || sess.UserID() != userID || sess.ClientID() != clientID || sess.Kind() != domain.SessionKindRefreshToken ||
		sess.Check(s.clock.Now(), time.Time{}) != nil {
		return "", nil
	}
	return sessionID, nil
}

// exchangeReauthentication spends a re-authentication's code: the session
// it names records the new authentication (session.reauthenticated.v1, at
// its version), and the answer is an access token and ID token for it,
// with no refresh token (the session keeps its own). The code is spent
// first, so it works once; presented again it revokes the session, as any
// reused code does.
func (s *Sessions) exchangeReauthentication(ctx context.Context, code string, e CodeEntry, rev uint64, meta Meta) (Issued, error) {
	e.Used, e.IssuedSession = true, e.ReauthSession
	if err := s.codes.Update(ctx, code, e, rev); err != nil {
		if errors.Is(err, ErrCodeChanged) {
			return Issued{}, ErrAuthzCodeReused
		}
		return Issued{}, err
	}
	cl, err := s.client(e.ClientID)
	if err != nil {
		return Issued{}, err
	}
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (Issued, error) {
		sess, version, err := s.LoadSession(ctx, e.ReauthSession)
		if err != nil {
			return Issued{}, err
		}
		// The user authenticated on the page, when the code was made.
		at := e.ExpiresAt.Add(-CodeTTL)
		evs, err := domain.DecideReauthenticateSession(sess, domain.ReauthenticateSession{UserID: e.UserID,
			Method: cmp.Or(e.Method, domain.MethodPassword), Now: at})
		if err != nil {
			return Issued{}, err
		}
		u, _, err := s.LoadUser(ctx, sess.UserID())
		if err != nil {
			return Issued{}, err
		}
		if err := u.CanSignIn(); err != nil {
			return Issued{}, err
		}
		// The user's log decides, not the session's own events alone: a
		// session ended by the user's event (a reset of a user with more
		// sessions than one append revokes) whose revocation is not
		// written yet, or a password reset or removed since the sign-in on
		// the page, gives nothing.
		if u.SessionEnded(sess.SessionID()) {
			return Issued{}, domain.ErrSessionRevoked
		}
		if u.CredentialEpoch() != e.Epoch {
			return Issued{}, ErrInvalidAuthzCode
		}
		if err := s.appendEvents(ctx, meta, pending{subject: s.sessionSubject(sess.SessionID()), expected: version, event: evs[0]}); err != nil {
			return Issued{}, err
		}
		commands.WithLabelValues("reauthenticate_session", "ok").Inc()
		return s.issueNonce(ctx, cl.AccessTokenLifetime.Duration(), u, domain.EvolveSession(sess, evs[0]), "", e.Nonce)
	})
}
