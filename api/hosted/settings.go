package hosted

import (
	"crypto/subtle"
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
)

// The settings page of a signed-in regular user (cookie session): its
// external identities, a "Remove" for each (never the last way in) and a
// "Link <provider>" for each provider its application offers (issue 19).
// Forms carry a token that must match a cookie of this page (double
// submit), on top of the session cookie's SameSite=Lax; linking is a
// navigation, refused when it comes from another site.

const settingsCSRFCookie = "idstream_settings_csrf"

// settingsNotices are what ?done= may show (never text from the URL).
var settingsNotices = map[string]string{"removed": "Removed.", "linked": "Linked: you can sign in with it now."}

func (s *Server) mountSettings(r *mux.Router) {
	r.HandleFunc("/settings/identities", s.settingsPage).Methods(http.MethodGet)
	r.HandleFunc("/settings/identities/unlink", s.settingsUnlink).Methods(http.MethodPost)
	r.HandleFunc("/settings/identities/link/{provider}", s.settingsLink).Methods(http.MethodGet)
}

// settingsUser is the regular user of the request's session cookie.
func (s *Server) settingsUser(w http.ResponseWriter, r *http.Request) (app.Principal, bool) {
	c, err := r.Cookie(s.cfg.Cookie.Name)
	var p app.Principal
	if err == nil && c.Value != "" {
		p, err = s.Service.AuthenticateCookie(r.Context(), c.Value)
	}
	if err != nil || c.Value == "" {
		s.messagePage(w, http.StatusUnauthorized, "Sign in first", "Sign in to the application, then open your account settings again.")
		return app.Principal{}, false
	}
	if p.User.IsAnonymous() {
		s.messagePage(w, http.StatusForbidden, "Create your account first", "Guests link an account by creating theirs: use “Create account” in the application.")
		return app.Principal{}, false
	}
	return p, true
}

func (s *Server) settingsPage(w http.ResponseWriter, r *http.Request) {
	p, ok := s.settingsUser(w, r)
	if !ok {
		return
	}
	s.renderSettings(w, r, p, http.StatusOK, "", settingsNotices[r.URL.Query().Get("done")])
}

func (s *Server) renderSettings(w http.ResponseWriter, r *http.Request, p app.Principal, status int, errText, notice string) {
	csrf, err := s.Service.NewCode()
	if err != nil {
		s.flowEnded(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: settingsCSRFCookie, Value: csrf, Path: "/settings/", HttpOnly: true, Secure: *s.cfg.Cookie.Secure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(time.Hour / time.Second)})
	d := pageData{Title: "Your sign-in methods", CSRF: csrf, Error: errText, Message: notice, Identities: p.User.ExternalIdentities()}
	d.HasPassword = p.User.PasswordHash() != ""
	for _, pr := range s.upstream.For(p.Session.ClientID()) {
		d.Upstream = append(d.Upstream, upstreamLink{Name: pr.Name, Href: "/settings/identities/link/" + pr.ID})
	}
	for i, x := range d.Identities {
		if pr, ok := s.cfg.Provider(x.Provider); ok {
			d.Identities[i].Provider = pr.Name + " (" + pr.ID + ")"
		}
		d.Identities[i].Subject = x.Subject
	}
	d.Refs = p.User.ExternalIdentities()
	s.renderPage(w, status, "settings", "", d)
}

func (s *Server) settingsUnlink(w http.ResponseWriter, r *http.Request) {
	p, ok := s.settingsUser(w, r)
	if !ok {
		return
	}
	c, cerr := r.Cookie(settingsCSRFCookie)
	if err := r.ParseForm(); err != nil || cerr != nil || subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf_token")), []byte(c.Value)) != 1 {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "The form was not sent from this page (its security token is missing or wrong). Go back and try again.")
		return
	}
	ref := domain.ExternalRef{Provider: r.PostForm.Get("provider"), Subject: r.PostForm.Get("subject")}
	if err := s.Service.UnlinkExternal(r.Context(), p.User.UserID(), ref, httpx.Meta(r)); err != nil {
		e := s.LogError(r, err)
		s.renderSettings(w, r, p, e.Status, httpx.PageText(e, httpx.AudienceFlow, ""), "")
		return
	}
	httpx.NoStore(w)
	http.Redirect(w, r, "/settings/identities?done=removed", http.StatusSeeOther)
}

func (s *Server) settingsLink(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "Open your account settings from the application to link an account.")
		return
	}
	p, ok := s.settingsUser(w, r)
	if !ok {
		return
	}
	pr, err := s.upstream.Provider(mux.Vars(r)["provider"], p.Session.ClientID())
	fail := func(err error) {
		e := s.LogError(r, err)
		s.renderSettings(w, r, p, e.Status, httpx.PageText(e, httpx.AudienceFlow, ""), "")
	}
	if err != nil {
		fail(err)
		return
	}
	s.beginUpstream(w, r, pr, p.Session.ClientID(), app.UpstreamState{Provider: pr.ID, LinkUser: p.User.UserID(), LinkEpoch: p.User.CredentialEpoch(), Return: "/settings/identities?done=linked"}, fail)
}
