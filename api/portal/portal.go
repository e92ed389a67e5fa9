package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/projections"
)

// The portal is the operators' console under /portal: server-rendered
// pages, no script, a session of its own (cookie idstream_portal, Path
// /portal, a hash of it in portal_sessions), and a CSRF token bound to the
// session on every form.

const (
	portalCookie       = "idstream_portal"
	portalSignInCookie = "idstream_portal_signin"
)

//go:embed web/*.html web/*.css
var webFS embed.FS

var portalTemplates = func() map[string]*template.Template {
	out := map[string]*template.Template{}
	for _, name := range []string{"signin", "message", "anonymous", "ratelimits", "applications", "application", "secret", "users", "user", "operations", "audit", "verification", "webhooks", "providers", "funnel"} {
		out[name] = template.Must(template.New(name).Funcs(portalFuncs).ParseFS(webFS, "web/layout.html", "web/"+name+".html"))
	}
	return out
}()

var portalFuncs = template.FuncMap{
	"dur": formatSeconds,
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if v.IsZero() {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		case *time.Time:
			if v == nil {
				return "—"
			}
			return v.UTC().Format("2006-01-02 15:04:05 UTC")
		}
		return fmt.Sprint(t)
	},
	"str": func(p *string) string {
		if p == nil {
			return "—"
		}
		return *p
	},
	"pct":     func(f float64) string { return fmt.Sprintf("%.0f%%", f*100) },
	"deref":   func(p *uint64) uint64 { return *p },
	"deref64": func(p *int64) int64 { return *p },
	"pct1":    func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"secs":    formatSecondsF,
}

// portalSession is a signed-in operator.
type portalSession struct {
	Operator string
	CSRF     string
}

type portalSessionKey struct{}

func portalSessionOf(r *http.Request) portalSession {
	p, _ := r.Context().Value(portalSessionKey{}).(portalSession)
	return p
}

// portalPage is what every portal page template gets.
type portalPage struct {
	Title    string
	Section  string
	Operator string
	CSRF     string
	// Notice is a success message; Error a problem with the whole form;
	// Errors problems by field name.
	Notice string
	Error  string
	Errors map[string]string
	Data   any
	// Refresh, when set, reloads the page after that many seconds (a
	// running job's progress, without script).
	Refresh int
}

func portalHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

func (s *Server) renderPortal(w http.ResponseWriter, r *http.Request, status int, name string, p portalPage) {
	sess := portalSessionOf(r)
	p.Operator, p.CSRF = sess.Operator, sess.CSRF
	portalHeaders(w)
	w.WriteHeader(status)
	if err := portalTemplates[name].ExecuteTemplate(w, "layout", p); err != nil {
		s.Log.Error("render portal page", "page", name, "error", err)
	}
}

func (s *Server) portalMessage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	s.renderPortal(w, r, status, "message", portalPage{Title: title, Error: msg})
}

// Router serves /portal.
func (s *Server) Router() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/portal/static/portal.css", s.portalStylesheet).Methods(http.MethodGet)
	r.HandleFunc("/portal/signin", s.portalSignInPage).Methods(http.MethodGet)
	r.HandleFunc("/portal/signin", s.portalSignIn).Methods(http.MethodPost)
	r.HandleFunc("/portal/signout", s.portalAuth(s.portalSignOut)).Methods(http.MethodPost)
	r.HandleFunc("/portal", s.portalAuth(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/portal/authentication/anonymous-users", http.StatusSeeOther)
	})).Methods(http.MethodGet)
	r.HandleFunc("/portal/authentication/anonymous-users", s.portalAuth(s.portalAnonymous)).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/portal/authentication/rate-limits", s.portalAuth(s.portalRateLimits)).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/portal/authentication/verification", s.portalAuth(s.portalVerification)).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/portal/applications", s.portalAuth(s.portalApplications)).Methods(http.MethodGet)
	r.HandleFunc("/portal/applications/new", s.portalAuth(s.portalApplication)).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/portal/applications/{client_id}", s.portalAuth(s.portalApplication)).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/portal/applications/{client_id}/secrets", s.portalAuth(s.portalRotateSecret)).Methods(http.MethodPost)
	r.HandleFunc("/portal/applications/{client_id}/secrets/{sid}/revoke", s.portalAuth(s.portalRevokeSecret)).Methods(http.MethodPost)
	r.HandleFunc("/portal/users", s.portalAuth(s.portalUsers)).Methods(http.MethodGet)
	r.HandleFunc("/portal/users/{id}", s.portalAuth(s.portalUser)).Methods(http.MethodGet)
	r.HandleFunc("/portal/users/{id}/sessions/{sid}/revoke", s.portalAuth(s.portalRevokeSession)).Methods(http.MethodPost)
	r.HandleFunc("/portal/operations", s.portalAuth(s.portalOperations)).Methods(http.MethodGet)
	r.HandleFunc("/portal/operations/exports", s.portalAuth(s.portalStartExport)).Methods(http.MethodPost)
	r.HandleFunc("/portal/analytics/funnel", s.portalAuth(s.portalFunnel)).Methods(http.MethodGet)
	r.HandleFunc("/portal/exports/{id}/download", s.portalAuth(s.portalDownloadExport)).Methods(http.MethodGet)
	r.HandleFunc("/portal/audit", s.portalAuth(s.portalAudit)).Methods(http.MethodGet)
	s.mountProviders(r)
	r.HandleFunc("/portal/webhooks", s.portalAuth(s.portalWebhooks)).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/portal/webhooks/{id}", s.portalAuth(s.portalWebhook)).Methods(http.MethodGet)
	r.HandleFunc("/portal/webhooks/{id}/state", s.portalAuth(s.portalWebhookState)).Methods(http.MethodPost)
	r.HandleFunc("/portal/webhooks/{id}/dead_letters/replay", s.portalAuth(s.portalWebhookReplay)).Methods(http.MethodPost)
	r.HandleFunc("/portal/webhooks/{id}/dead_letters/{dl}/replay", s.portalAuth(s.portalWebhookReplay)).Methods(http.MethodPost)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.portalMessage(w, r, http.StatusNotFound, "Page not found", "There is no portal page at this address.")
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.portalMessage(w, r, http.StatusMethodNotAllowed, "Not allowed", "This page does not accept that kind of request.")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !s.Service.PortalEnabled() {
			s.portalMessage(w, req, http.StatusNotFound, "The portal is off",
				"No operator is configured. Set IDSTREAM_PORTAL_PASSWORD (and optionally IDSTREAM_PORTAL_USERNAME), or portal.operators in the configuration file, and restart.")
			return
		}
		r.ServeHTTP(w, req)
	})
}

func (s *Server) portalStylesheet(w http.ResponseWriter, _ *http.Request) {
	css, _ := webFS.ReadFile("web/portal.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(css)
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokenHash(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

func equalSecret(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func (s *Server) portalCookieSecure() bool { return *s.cfg.Cookie.Secure }

func (s *Server) setPortalCookie(w http.ResponseWriter, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/portal", MaxAge: maxAge, HttpOnly: true,
		Secure: s.portalCookieSecure(), SameSite: http.SameSiteStrictMode})
}

// portalAuth lets signed-in operators through, and checks the CSRF token of
// every POST; others go to the sign-in page.
func (s *Server) portalAuth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess, ok := s.lookupPortalSession(r)
		if !ok {
			next := "/portal"
			if r.Method == http.MethodGet {
				next = r.URL.RequestURI()
			}
			http.Redirect(w, r, "/portal/signin?next="+url.QueryEscape(next), http.StatusSeeOther)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), portalSessionKey{}, sess))
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
			if err := r.ParseForm(); err != nil {
				s.portalMessage(w, r, http.StatusBadRequest, "Cannot read the form", "The form could not be read; go back and try again.")
				return
			}
			if !equalSecret(r.PostForm.Get("csrf_token"), sess.CSRF) {
				s.portalMessage(w, r, http.StatusForbidden, "Form expired",
					"This form was not sent from your current portal session. Go back, reload the page and try again.")
				return
			}
		}
		h(w, r)
	}
}

func (s *Server) lookupPortalSession(r *http.Request) (portalSession, bool) {
	c, err := r.Cookie(portalCookie)
	if err != nil || c.Value == "" || len(c.Value) > 100 {
		return portalSession{}, false
	}
	var p portalSession
	var credential []byte
	p.Operator, p.CSRF, credential, err = s.PortalSessions.Find(r.Context(), tokenHash(c.Value), s.Service.Now())
	if err != nil {
		if !errors.Is(err, projections.ErrNoPortalSession) {
			s.Log.Warn("portal session lookup failed", "error", err)
		}
		return portalSession{}, false
	}
	// The operator must still be configured, with the credential the
	// session began under: removing an operator or changing its password
	// (and restarting) ends its sessions.
	if now, ok := s.Service.OperatorCredential(p.Operator); !ok || subtle.ConstantTimeCompare(now, credential) != 1 {
		_ = s.PortalSessions.Delete(r.Context(), tokenHash(c.Value))
		s.Log.Info("portal session of a removed or changed operator ended", "operator", p.Operator)
		return portalSession{}, false
	}
	return p, true
}

type signInData struct {
	Username, Next, SignInCSRF string
}

func safeNext(next string) string {
	if !strings.HasPrefix(next, "/portal") || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/portal"
	}
	return next
}

func (s *Server) portalSignInPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.lookupPortalSession(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.renderSignIn(w, r, http.StatusOK, signInData{Next: safeNext(r.URL.Query().Get("next"))}, "")
}

func (s *Server) renderSignIn(w http.ResponseWriter, r *http.Request, status int, d signInData, problem string) {
	d.SignInCSRF = randomToken()
	s.setPortalCookie(w, portalSignInCookie, d.SignInCSRF, 1800)
	s.renderPortal(w, r, status, "signin", portalPage{Title: "Sign in to the idstream portal", Error: problem, Data: d})
}

func (s *Server) portalSignIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, s.MaxBodyBytes)
	if err := r.ParseForm(); err != nil {
		s.portalMessage(w, r, http.StatusBadRequest, "Cannot read the form", "The form could not be read; go back and try again.")
		return
	}
	d := signInData{Username: strings.TrimSpace(r.PostForm.Get("username")), Next: safeNext(r.PostForm.Get("next"))}
	c, err := r.Cookie(portalSignInCookie)
	if err != nil || !equalSecret(r.PostForm.Get("csrf_token"), c.Value) {
		s.renderSignIn(w, r, http.StatusForbidden, d, "This sign-in form has expired. Please try again.")
		return
	}
	pw := r.PostForm.Get("password")
	if d.Username == "" || pw == "" {
		s.renderSignIn(w, r, http.StatusBadRequest, d, "Enter your username and password.")
		return
	}
	if err := s.Service.AuthenticateOperator(r.Context(), d.Username, pw, s.ClientIP(r)); err != nil {
		s.Log.Info("portal sign-in refused", "ip", s.ClientIP(r))
		e := s.LogError(r, err)
		httpx.SetRetryAfter(w, e)
		status := e.Status
		if status >= 500 {
			status = http.StatusServiceUnavailable
		}
		s.renderSignIn(w, r, status, d, httpx.PageText(e, httpx.AudiencePortal, d.Username))
		return
	}
	token, csrf := randomToken(), randomToken()
	now := s.Service.Now()
	life := s.cfg.Portal.SessionLifetime.D()
	credential, _ := s.Service.OperatorCredential(d.Username)
	if err := s.PortalSessions.Create(r.Context(), tokenHash(token), d.Username, csrf, credential, now, now.Add(life)); err != nil {
		s.Log.Error("portal session not stored", "error", err)
		s.renderSignIn(w, r, http.StatusServiceUnavailable, d, "Signing in is not possible right now. Try again in a moment.")
		return
	}
	s.Log.Info("portal sign-in", "operator", d.Username)
	s.setPortalCookie(w, portalSignInCookie, "", -1)
	s.setPortalCookie(w, portalCookie, token, int(life.Seconds()))
	http.Redirect(w, r, d.Next, http.StatusSeeOther)
}

func (s *Server) portalSignOut(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(portalCookie); err == nil {
		_ = s.PortalSessions.Delete(r.Context(), tokenHash(c.Value))
	}
	s.setPortalCookie(w, portalCookie, "", -1)
	http.Redirect(w, r, "/portal/signin", http.StatusSeeOther)
}

// operatorMeta names the operator in the envelope of what they cause.
func operatorMeta(r *http.Request) app.Meta {
	return app.Meta{CorrelationID: httpx.RequestID(r.Context()), Actor: "portal:" + portalSessionOf(r).Operator}
}

// formatSeconds writes a duration the way the forms read it: 90d, 24h, 30m,
// 45s.
func formatSeconds(s domain.Seconds) string {
	switch {
	case s == 0:
		return "0"
	case s%86400 == 0:
		return fmt.Sprintf("%dd", s/86400)
	case s%3600 == 0:
		return fmt.Sprintf("%dh", s/3600)
	case s%60 == 0:
		return fmt.Sprintf("%dm", s/60)
	}
	return fmt.Sprintf("%ds", s)
}

// parseSeconds reads "90d", "24h", "1h30m", "45s" or "0".
func parseSeconds(v string) (domain.Seconds, error) {
	v = strings.TrimSpace(v)
	if v == "0" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(v, "d"); ok {
		var n int64
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || fmt.Sprint(n) != days || n < 0 || n > 100000 {
			return 0, errors.New("use a duration such as 30m, 24h or 90d")
		}
		return domain.Seconds(n * 86400), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || d%time.Second != 0 {
		return 0, errors.New("use a duration such as 30m, 24h or 90d")
	}
	return domain.SecondsOf(d), nil
}
