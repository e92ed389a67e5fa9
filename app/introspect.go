package app

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/tokens"
)

// Introspection is what RFC 7662 says of a token; only Active is set for
// a token that is not.
type Introspection struct {
	Active    bool
	TokenType string // "access_token" or "refresh_token"
	Scope     string
	ClientID  string
	Subject   string
	SessionID string
	IssuedAt  time.Time
	ExpiresAt time.Time
	JWTID     string
	// DPoPJKT is the DPoP key a bound token or session is bound to (RFC
	// 9449 §6.2: the resource server then asks for a proof by it).
	DPoPJKT string
}

// Introspect tells a confidential client (a resource server) whether a
// token is live: an access token that verifies and whose session and user
// still are (any client may ask), or a refresh token, only its own
// client's. A token that does not work is inactive, not an error; only a
// service that cannot answer is.
func (s *Sessions) Introspect(ctx context.Context, callerID, token string) (Introspection, error) {
	return currentRead(ctx, s.core, func(ctx context.Context) (Introspection, error) { return s.introspect(ctx, callerID, token) })
}

func (s *Sessions) introspect(ctx context.Context, callerID, token string) (Introspection, error) {
	if strings.Count(token, ".") == 2 {
		c, err := s.keys.Verify(ctx, token)
		if err == nil {
			// A DPoP-bound token is live too: the answer names its key.
			var p Principal
			var bound string
			if p, bound, err = s.verifyAccess(ctx, token); err == nil {
				return Introspection{Active: true, TokenType: "access_token", Scope: p.Session.Scope(), ClientID: c.ClientID,
					Subject: c.Subject, SessionID: c.SessionID, IssuedAt: c.IssuedAt.Time(), ExpiresAt: c.Expiry.Time(), JWTID: c.ID,
					DPoPJKT: bound}, nil
			}
		}
		return Introspection{}, inactiveUnlessUnavailable(err)
	}
	sessionID, hash, err := tokens.ParseOpaque(token)
	if err != nil {
		return Introspection{}, nil
	}
	sess, _, err := s.LoadSession(ctx, sessionID)
	if err != nil {
		return Introspection{}, inactiveUnlessUnavailable(err)
	}
	if !sess.MatchesToken(hash) || sess.Kind() != domain.SessionKindRefreshToken || sess.ClientID() != callerID {
		return Introspection{}, nil
	}
	if err := sess.Check(s.clock.Now(), time.Time{}); err != nil {
		return Introspection{}, inactiveUnlessUnavailable(err)
	}
	if _, err := s.principal(ctx, sess); err != nil {
		return Introspection{}, inactiveUnlessUnavailable(err)
	}
	return Introspection{Active: true, TokenType: "refresh_token", Scope: sess.Scope(), ClientID: sess.ClientID(),
		Subject: sess.UserID(), SessionID: sess.SessionID(), IssuedAt: sess.StartedAt(), ExpiresAt: sess.ExpiresAt(), DPoPJKT: sess.DPoPKey()}, nil
}

// inactiveUnlessUnavailable turns a refused credential into "inactive"
// (nil) and keeps every other error.
func inactiveUnlessUnavailable(err error) error {
	if err == nil || credentialRefused(err) || errors.Is(err, domain.ErrSessionNotFound) {
		return nil
	}
	return err
}

// RevokeClientToken is RFC 7009 revocation of an opaque token (a refresh
// token or session cookie value). caller is the client the request
// authenticated as (nil: none): a confidential client's token is revoked
// only by that client, authenticated (§2.1); a public client's by whoever
// holds it. Anything else is not an error: the answer reveals nothing.
func (s *Sessions) RevokeClientToken(ctx context.Context, caller *domain.ClientSettings, token string, meta Meta) error {
	sessionID, hash, err := tokens.ParseOpaque(token)
	if err != nil {
		return nil
	}
	sess, _, err := s.LoadSession(ctx, sessionID)
	if err != nil {
		return err
	}
	if !sess.MatchesToken(hash) {
		return nil
	}
	if cl, ok := s.Settings().Client(sess.ClientID()); ok && cl.Confidential() && (caller == nil || caller.ClientID != cl.ClientID) {
		return nil
	}
	return s.RevokeSession(ctx, sessionID, domain.RevokeReasonRevoked, meta)
}
