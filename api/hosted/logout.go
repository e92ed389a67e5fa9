package hosted

import (
	"crypto/subtle"
	"net/http"
	"net/url"
	"time"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
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
		s.LogError(r, err)
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
		s.confirmLogout(w, r, l, params)
		return
	}
	if cookieSession != nil {
		if err := s.Service.RevokeSession(r.Context(), cookieSession.Session.SessionID(), domain.RevokeReasonLogout, httpx.Meta(r)); err != nil {
			s.WriteOAuthError(w, r, err)
			return
		}
	}
	if err := s.endHintedSession(r, l); err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	httpx.ClearSessionCookie(w, s.cfg)
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

// logoutForm is an RP-initiated logout request carried through its
// confirmation page: the POST is read as the GET was (the hint verified
// again), so confirming ends the session the relying party named and
// returns its state.
type logoutForm struct {
	ClientID, IDTokenHint, Target, State string
}

// confirmLogout asks the person to confirm signing out.
func (s *Server) confirmLogout(w http.ResponseWriter, r *http.Request, l rpLogout, params url.Values) {
	token, err := s.Service.NewCode()
	if err != nil {
		s.flowEnded(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: logoutCookie, Value: token, Path: "/oauth2/end_session", HttpOnly: true,
		Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteStrictMode, MaxAge: int(flowTTL / time.Second)})
	form := logoutForm{IDTokenHint: params.Get("id_token_hint"), State: params.Get("state")}
	if l.client != nil {
		form.ClientID = l.client.ClientID
	}
	if target := params.Get("post_logout_redirect_uri"); s.allowsTarget(l, target) {
		form.Target = target
	} else {
		form.State = ""
	}
	d := pageData{Title: "Sign out?", CSRF: token, LoginHint: form.Target, Submit: "Sign out", Logout: form,
		Lead: "Do you want to sign out of this service? If you did not ask to, close this page."}
	s.renderPage(w, http.StatusOK, "logout", form.Target, d)
}
