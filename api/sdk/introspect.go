package sdk

import (
	"net/http"

	"github.com/idstream/idstream/api/httpx"

	"github.com/idstream/idstream/app"
)

// introspect is RFC 7662 token introspection (POST /oauth2/introspect),
// for resource servers: the caller authenticates as a confidential client
// (client_secret_basic or client_secret_post, its own method); a public
// client gets invalid_client. The answer is {"active": false} for any
// token that does not work, with nothing more.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	httpx.NoStore(w)
	form, err := httpx.ParseForm(r)
	if err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	cl, err := s.authenticateClient(r, form)
	if err == nil && !cl.Confidential() {
		err = app.ErrInvalidClient
	}
	if err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		s.WriteOAuthError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "token is required"))
		return
	}
	in, err := s.Service.Introspect(r.Context(), cl.ClientID, tok)
	if err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	if !in.Active {
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	out := map[string]any{
		"active": true, "token_type": in.TokenType, "scope": in.Scope, "client_id": in.ClientID, "sub": in.Subject,
		"sid": in.SessionID, "iat": in.IssuedAt.Unix(), "exp": in.ExpiresAt.Unix(), "iss": s.cfg.PublicURL, "aud": in.ClientID,
	}
	if in.DPoPJKT != "" {
		out["cnf"] = map[string]string{"jkt": in.DPoPJKT}
	}
	if in.JWTID != "" {
		out["jti"] = in.JWTID
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
