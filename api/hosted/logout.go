package hosted

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/domain"
)

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
	httpx.NoStore(w)
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
			if err := s.Service.RevokeSession(r.Context(), p.Session.SessionID(), domain.RevokeReasonLogout, httpx.Meta(r)); err != nil {
				s.WriteOAuthError(w, r, err)
				return
			}
		}
	}
	httpx.ClearSessionCookie(w, s.cfg)
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
