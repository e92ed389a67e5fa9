package api

import (
	"crypto/subtle"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/idstream/idstream/app"
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

// token is the OAuth token endpoint. Grants: authorization_code,
// refresh_token (both authenticate the client by its
// token_endpoint_auth_method) and the anonymous-request (key-pair) grant.
// A session granted openid gets an ID token with each answer.
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
		if rt == "" {
			s.writeOAuthError(w, r, badRequest("InvalidRequest", "invalid_request", "client_id and refresh_token are required"))
			return
		}
		cl, err := s.authenticateClient(r, form)
		if err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
		iss, err := s.Service.Refresh(r.Context(), cl.ClientID, rt, meta(r))
		if err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, tokenResultOf(iss))
	case "authorization_code":
		cl, err := s.authenticateClient(r, form)
		if err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
		iss, err := s.Service.ExchangeAuthorizationCode(r.Context(), cl.ClientID, form.Get("code"),
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
// value) ends its session; a confidential client's only when the request
// authenticated as that client. The answer is 200 whatever the token was.
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
	// A confidential client authenticates (RFC 7009 §2.1); a public one
	// need not.
	var caller *domain.ClientSettings
	if _, _, basic := r.BasicAuth(); basic || form.Get("client_secret") != "" {
		cl, err := s.authenticateClient(r, form)
		if err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
		caller = &cl
	}
	if err := s.Service.RevokeClientToken(r.Context(), caller, tok, meta(r)); err != nil {
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
	params := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The form could not be read.")
			return
		}
		params = r.PostForm
	}
	target := params.Get("post_logout_redirect_uri")
	l, err := s.readLogout(r, params)
	if err != nil {
		s.logError(r, err)
		s.messagePage(w, http.StatusBadRequest, "Cannot sign out", "The application sent a sign-out request this service cannot check. Go back to the application and try again.")
		return
	}
	var cookieSession *app.Principal
	if c, err := r.Cookie(s.cfg.Cookie.Name); err == nil && c.Value != "" {
		if p, err := s.Service.AuthenticateCookie(r.Context(), c.Value); err == nil {
			cookieSession = &p
		}
	}
	// A valid id_token_hint of the browser's own user (or of no browser
	// session) is the relying party asking: no confirmation is needed.
	hinted := l.hint != nil && (cookieSession == nil || cookieSession.User.UserID() == l.hint.Subject)
	if r.Method == http.MethodPost {
		c, err := r.Cookie(logoutCookie)
		if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf_token"))) != 1 {
			s.messagePage(w, http.StatusForbidden, "Cannot sign out", "The sign-out form was not sent from this page. Go back and try again.")
			return
		}
		http.SetCookie(w, &http.Cookie{Name: logoutCookie, Value: "", Path: "/oauth2/end_session", HttpOnly: true,
			Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	} else if site := r.Header.Get("Sec-Fetch-Site"); !hinted && site != "same-origin" && site != "same-site" && site != "none" {
		s.confirmLogout(w, l, target)
		return
	}
	if cookieSession != nil {
		if err := s.Service.RevokeSession(r.Context(), cookieSession.Session.SessionID(), domain.RevokeReasonLogout, meta(r)); err != nil {
			s.writeOAuthError(w, r, err)
			return
		}
	}
	if err := s.endHintedSession(r, l); err != nil {
		s.writeOAuthError(w, r, err)
		return
	}
	s.clearSessionCookie(w)
	if s.allowsTarget(l, target) {
		http.Redirect(w, r, withState(target, params.Get("state")), http.StatusFound)
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
		if cl.AllowsRedirect(target) || cl.AllowsOrigin(target) || cl.AllowsPostLogoutRedirect(target) {
			return true
		}
	}
	return false
}

// confirmLogout asks the person to confirm signing out.
func (s *Server) confirmLogout(w http.ResponseWriter, l rpLogout, target string) {
	token, err := s.Service.NewCode()
	if err != nil {
		s.messagePage(w, http.StatusInternalServerError, "Something went wrong", "Please try again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: logoutCookie, Value: token, Path: "/oauth2/end_session", HttpOnly: true,
		Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteStrictMode, MaxAge: int(flowTTL / time.Second)})
	if !s.allowsTarget(l, target) {
		target = ""
	}
	d := pageData{Title: "Sign out?", CSRF: token, LoginHint: target, Submit: "Sign out",
		Lead: "Do you want to sign out of this service? If you did not ask to, close this page."}
	if l.client != nil {
		d.ClientID = l.client.ClientID
	}
	s.renderPage(w, http.StatusOK, "logout", target, d)
}
