package sdk

import (
	"crypto/subtle"
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
			form.Get("redirect_uri"), form.Get("code_verifier"), form.Get("x_device_info"), meta(r))
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
		iss, err := s.Service.SignInWithKey(r.Context(), form.Get("client_id"), form.Get("jwt"), form.Get("x_device_info"), meta(r))
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

// logoutCookie carries the confirmation page's CSRF token (double submit):
// SameSite=Strict, so no cross-site request carries it.
const logoutCookie = "idstream_logout"

// endSession is RP-initiated logout (GET and POST /oauth2/end_session): it
// ends the cookie session and returns to a registered
// post_logout_redirect_uri. A navigation from this site or typed by the
// person (Sec-Fetch-Site same-origin, same-site or none: the Authgear SDK's
// logout in cookie mode, whose app shares the site with its cookie) signs
// out at once. Anything else, a cross-site navigation included, may be a
// forged logout (CSRF): it gets a confirmation page whose form posts back
// with a token that only this page knows.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	target := r.URL.Query().Get("post_logout_redirect_uri")
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The form could not be read.")
			return
		}
		target = r.PostForm.Get("post_logout_redirect_uri")
		c, err := r.Cookie(logoutCookie)
		if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf_token"))) != 1 {
			s.messagePage(w, http.StatusForbidden, "Cannot sign out", "The sign-out form was not sent from this page. Go back and try again.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: logoutCookie, Value: "", Path: "/oauth2/end_session", HttpOnly: true,
			Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	} else if site := r.Header.Get("Sec-Fetch-Site"); site != "same-origin" && site != "same-site" && site != "none" {
		s.confirmLogout(w, target)
		return
	}
	if c, err := r.Cookie(s.cfg.Cookie.Name); err == nil && c.Value != "" {
		if p, err := s.Service.AuthenticateCookie(r.Context(), c.Value); err == nil {
			if err := s.Service.RevokeSession(r.Context(), p.Session.SessionID(), domain.RevokeReasonLogout, meta(r)); err != nil {
				s.writeOAuthError(w, r, err)
				return
			}
		}
	}
	s.clearSessionCookie(w)
	if s.registeredLogoutTarget(target) {
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	s.messagePage(w, http.StatusOK, "You are signed out", "You can close this page.")
}

// registeredLogoutTarget reports whether some client registered the URI (as
// a redirect URI or an origin).
func (s *Server) registeredLogoutTarget(target string) bool {
	if target == "" {
		return false
	}
	for _, cl := range s.Service.Settings().Clients {
		if cl.AllowsRedirect(target) || cl.AllowsOrigin(target) {
			return true
		}
	}
	return false
}

// confirmLogout asks the person to confirm signing out.
func (s *Server) confirmLogout(w http.ResponseWriter, target string) {
	token, err := s.Service.NewCode()
	if err != nil {
		s.messagePage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: logoutCookie, Value: token, Path: "/oauth2/end_session", HttpOnly: true,
		Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteStrictMode, MaxAge: int(flowTTL / time.Second)})
	if !s.registeredLogoutTarget(target) {
		target = ""
	}
	s.renderPage(w, http.StatusOK, "logout", target, pageData{Title: "Sign out?", CSRF: token, LoginHint: target, Submit: "Sign out",
		Lead: "Do you want to sign out of this service? If you did not ask to, close this page."})
}
