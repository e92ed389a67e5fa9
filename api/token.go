package api

import (
	"errors"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/idstream/idstream/domain"
)

// parseForm reads an application/x-www-form-urlencoded body.
func parseForm(r *http.Request) (url.Values, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errFormMediaType
	}
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBodyTooLarge
		}
		return nil, badRequest("InvalidForm", "invalid_request", "the form body is malformed")
	}
	return r.PostForm, nil
}

// noStore marks an answer that carries a token, a code, a challenge or a
// session as not to be stored by any cache (RFC 6749 §5.1).
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// grantAnonymousRequest is Authgear's key-pair grant.
const grantAnonymousRequest = "urn:authgear:params:oauth:grant-type:anonymous-request"

// token is the OAuth token endpoint. Grants: refresh_token and the
// anonymous-request (key-pair) grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	form, err := parseForm(r)
	if err != nil {
		s.writeOAuthError(w, r, err)
		return
	}
	switch form.Get("grant_type") {
	case "refresh_token":
		rt := form.Get("refresh_token")
		if form.Get("client_id") == "" || rt == "" {
			s.writeOAuthError(w, r, badRequest("InvalidRequest", "invalid_request", "client_id and refresh_token are required"))
			return
		}
		iss, err := s.Service.Refresh(r.Context(), form.Get("client_id"), rt, meta(r))
		if err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, tokenResultOf(iss))
	case "authorization_code":
		iss, err := s.Service.ExchangeAuthorizationCode(r.Context(), form.Get("client_id"), form.Get("code"),
			form.Get("redirect_uri"), form.Get("code_verifier"), meta(r))
		if err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, tokenResultOf(iss))
	case grantAnonymousRequest:
		if form.Get("client_id") == "" || form.Get("jwt") == "" {
			s.writeOAuthError(w, r, badRequest("InvalidRequest", "invalid_request", "client_id and jwt are required"))
			return
		}
		iss, err := s.Service.SignInWithKey(r.Context(), form.Get("client_id"), form.Get("jwt"), meta(r))
		if err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, tokenResultOf(iss))
	case "":
		s.writeOAuthError(w, r, badRequest("InvalidRequest", "invalid_request", "grant_type is required"))
	default:
		s.writeOAuthError(w, r, badRequest("UnsupportedGrantType", "unsupported_grant_type", "this grant type is not supported"))
	}
}

type challengeRequest struct {
	Purpose string `json:"purpose"`
}

// challenge issues a single-use challenge for the key-pair protocol.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request) {
	var req challengeRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	if err := s.Service.AllowChallenge(r.Context(), s.clientIP(r)); err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	token, exp, err := s.Service.IssueChallenge(r.Context(), req.Purpose)
	if err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, map[string]any{"result": map[string]string{"token": token, "expire_at": exp.Format(time.RFC3339)}})
}

// revoke is RFC 7009 token revocation: a refresh token (or session cookie
// value) ends its session. The answer is 200 whatever the token was.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	form, err := parseForm(r)
	if err != nil {
		s.writeOAuthError(w, r, err)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		s.writeOAuthError(w, r, badRequest("InvalidRequest", "invalid_request", "token is required"))
		return
	}
	if err := s.Service.RevokeToken(r.Context(), tok, meta(r)); err != nil {
		s.writeOAuthError(w, r, err)
		return
	}
	noStore(w)
	writeJSON(w, http.StatusOK, map[string]any{})
}

// end_session ends a cookie session and returns to the app.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(s.cfg.Cookie.Name); err == nil && c.Value != "" {
		if p, err := s.Service.AuthenticateCookie(r.Context(), c.Value); err == nil {
			if err := s.Service.RevokeSession(r.Context(), p.Session.SessionID(), domain.RevokeReasonLogout, meta(r)); err != nil {
				s.writeOAuthError(w, r, err)
				return
			}
		}
	}
	s.clearSessionCookie(w)
	noStore(w)
	if target := r.URL.Query().Get("post_logout_redirect_uri"); target != "" {
		for _, cl := range s.Service.Settings().Clients {
			if cl.AllowsRedirect(target) || cl.AllowsOrigin(target) {
				http.Redirect(w, r, target, http.StatusFound)
				return
			}
		}
	}
	pageHeaders(w, "")
	_, _ = w.Write([]byte(`<!doctype html><html lang="en"><meta charset="utf-8"><title>Signed out</title><main><h1>You are signed out</h1></main></html>`))
}
