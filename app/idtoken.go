package app

import (
	"context"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/tokens"
)

// amrOf is the ID token's amr (RFC 8176) for a sign-in method: a password
// ("pwd", promotion included: the user set one in the flow) or a device key
// held by the app ("swk"); a web guest proved nothing, and has none.
func amrOf(method string) []string {
	switch method {
	case domain.MethodPassword, domain.MethodPromotion:
		return []string{"pwd"}
	case domain.MethodAnonymousKey:
		return []string{"swk"}
	}
	return nil
}

// UserClaims are the claims about the user that an ID token and userinfo
// carry for a session: the login ID as email, phone_number or
// preferred_username when the session was granted the scope email, phone or
// profile. Nothing is verified yet (no verification flow exists, issue 20),
// so email_verified, phone_number_verified and is_verified are false.
func UserClaims(u domain.User, sess domain.Session) tokens.UserClaims {
	c := tokens.UserClaims{IsAnonymous: u.IsAnonymous()}
	no := false
	switch typ, value := u.LoginID(); {
	case value == "":
	case typ == string(loginid.Email) && sess.HasScope("email"):
		c.Email, c.EmailVerified = value, &no
	case typ == string(loginid.Phone) && sess.HasScope("phone"):
		c.PhoneNumber, c.PhoneNumberVerified = value, &no
	case typ == string(loginid.Username) && sess.HasScope("profile"):
		c.PreferredUsername = value
	}
	return c
}

// idToken signs the ID token of a token response when the session was
// granted openid; "" otherwise. nonce is the authorization request's (code
// exchange only: a refreshed ID token carries none, OpenID Connect Core
// §12.2).
func (s *Service) idToken(ctx context.Context, lifetime time.Duration, u domain.User, sess domain.Session, accessToken, nonce string) (string, error) {
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
		AMR:        amrOf(sess.Method()),
		AZP:        sess.ClientID(),
		UserClaims: UserClaims(u, sess),
	})
}
