package hosted

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/idstream/idstream/api/httpx"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/tokens"
)

// rpLogout is what an RP-initiated logout request (OpenID Connect
// RP-Initiated Logout 1.0) says: the client it is for (the id_token_hint's
// audience, or client_id) and, with a valid hint, the user and session the
// ID token was issued for.
type rpLogout struct {
	client *domain.ClientSettings
	hint   *tokens.IDClaims
}

// readLogout reads id_token_hint and client_id.
func (s *Server) readLogout(r *http.Request, v url.Values) (rpLogout, error) {
	var out rpLogout
	clientID := v.Get("client_id")
	if raw := v.Get("id_token_hint"); raw != "" {
		c, err := s.Service.Keys().VerifyIDTokenHint(r.Context(), raw, idTokenHintMaxAge)
		switch {
		case errors.Is(err, tokens.ErrInvalidIDToken):
			// A hint that cannot be checked (too old, signed by a key no
			// longer published) is no hint: the person is asked.
			s.Log.InfoContext(r.Context(), "logout: id_token_hint not usable", "request_id", httpx.RequestID(r.Context()))
		case err != nil:
			return out, err
		case clientID != "" && clientID != c.Audience[0]:
			return out, httpx.ErrLogoutClient
		default:
			out.hint, clientID = &c, c.Audience[0]
		}
	}
	if clientID != "" {
		cl, ok := s.Service.Settings().Client(clientID)
		if !ok {
			return out, httpx.ErrLogoutClient
		}
		out.client = &cl
	}
	return out, nil
}

// allowsTarget reports whether the logout may return to target: for a
// known client one of its post_logout_redirect_uris (or, as the Authgear
// SDKs expect, its redirect URIs and origins); without one, any client's
// (registeredLogoutTarget).
func (s *Server) allowsTarget(l rpLogout, target string) bool {
	if l.client == nil {
		return s.registeredLogoutTarget(target)
	}
	return target != "" && (l.client.AllowsPostLogoutRedirect(target) || l.client.AllowsRedirect(target) || l.client.AllowsOrigin(target))
}

// endHintedSession ends the session an id_token_hint names (a relying
// party's refresh-token session) when it is still the hint's user's.
func (s *Server) endHintedSession(r *http.Request, l rpLogout) error {
	if l.hint == nil || l.hint.SessionID == "" {
		return nil
	}
	sess, _, err := s.Service.LoadSession(r.Context(), l.hint.SessionID)
	if err != nil || !sess.Exists() || sess.UserID() != l.hint.Subject || sess.Revoked() {
		if err != nil && httpx.Classify(err).Status >= 500 {
			return err
		}
		return nil
	}
	return s.Service.RevokeSession(r.Context(), sess.SessionID(), domain.RevokeReasonLogout, httpx.Meta(r))
}

// withState adds RP-initiated logout's state to the return address.
func withState(target, state string) string {
	if state == "" {
		return target
	}
	u, err := url.Parse(target)
	if err != nil {
		return target
	}
	q := u.Query()
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String()
}
