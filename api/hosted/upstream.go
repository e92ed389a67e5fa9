package hosted

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/api/upstream"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// "Continue with <provider>" (issue 19). A flow page links to
// /flows/{flow}/upstream/{provider}, which (for the browser holding the
// flow's binding cookie) sends the browser to the provider with a fresh
// state, nonce and PKCE challenge, kept under the state's hash with the
// flow they continue, and a binding cookie of their own. The provider
// returns to /oauth2/upstream/callback (GET, or POST for form_post): the
// state is spent (single use across nodes), the binding cookie checked,
// the code exchanged with the verifier and the provider's ID token
// verified (package upstream); then the flow ends as a password flow does,
// with the method "external".

// upstreamTTL bounds the time at the provider's pages.
const upstreamTTL = 10 * time.Minute

// CallbackPath is the redirect URI to register with every provider
// (after the public URL).
const CallbackPath = "/oauth2/upstream/callback"

type upstreamLink struct{ Name, Href string }

func (s *Server) mountUpstream(r *mux.Router) {
	r.HandleFunc("/flows/{flow}/upstream/{provider}", s.upstreamStart).Methods(http.MethodGet)
	r.HandleFunc(CallbackPath, s.upstreamCallback).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/oauth2/upstream/link/{code}", s.upstreamLinkConfirm).Methods(http.MethodGet)
	r.HandleFunc("/oauth2/upstream/link/{code}", s.upstreamLinkStart).Methods(http.MethodPost)
}

// upstreamLinks are the providers a flow page offers: those of its client,
// except on a re-authentication (id_token_hint), which is by password.
func (s *Server) upstreamLinks(flowID string, f app.CodeEntry) []upstreamLink {
	if f.Subject != "" {
		return nil
	}
	var out []upstreamLink
	for _, p := range s.upstream.For(f.ClientID) {
		out = append(out, upstreamLink{Name: p.Name, Href: "/flows/" + flowID + "/upstream/" + p.ID})
	}
	return out
}

func upstreamCookie(state string) string { return "idstream_up_" + state[:12] }

func (s *Server) callbackURL() string { return s.cfg.PublicURL + CallbackPath }

// flowError shows the flow's page again with the error (the flow stays
// usable: another way in, or another try).
func (s *Server) flowError(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, err error) {
	e := s.LogError(r, err)
	if e.Field == httpx.FieldFlow {
		s.messagePage(w, e.Status, httpx.PageTitle(e), httpx.PageText(e, httpx.AudienceFlow, ""))
		return
	}
	mode := modeSignIn
	if f.UserID != "" {
		mode = modePromote
	}
	d := s.flowPage(flowID, f, mode)
	d.Error = httpx.PageText(e, httpx.AudienceFlow, "")
	s.renderPage(w, e.Status, "flow", f.RedirectURI, d)
}

// upstreamStart sends the browser to the provider.
func (s *Server) upstreamStart(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	p, err := s.upstream.Provider(mux.Vars(r)["provider"], f.ClientID)
	if err == nil && f.Subject != "" {
		err = upstream.ErrUnknownProvider
	}
	if err != nil {
		s.flowError(w, r, flowID, f, err)
		return
	}
	s.beginUpstream(w, r, p, f.ClientID, app.UpstreamState{FlowID: flowID, Provider: p.ID}, func(err error) { s.flowError(w, r, flowID, f, err) })
}

// linkCookie carries the link confirmation page's CSRF token (double
// submit): SameSite=Strict, so no cross-site request carries it.
const linkCookie = "idstream_link"

// upstreamLinkConfirm is what opening a link code (the headless API's
// POST /api/external_identities/{provider}/link) shows: which account the
// identity would be linked to, and a button. Without it, a link URL mailed
// to someone else would link that person's identity at the provider to the
// sender's account at one click (and their later "Continue with" would
// sign them in to it).
func (s *Server) upstreamLinkConfirm(w http.ResponseWriter, r *http.Request) {
	httpx.NoStore(w)
	code := mux.Vars(r)["code"]
	e, err := s.Service.LinkCode(r.Context(), code)
	if err != nil {
		s.messagePage(w, http.StatusNotFound, "This link has expired", "Go back to the application and start again.")
		return
	}
	p, err := s.upstream.Provider(e.Upstream.Provider, e.ClientID)
	u, _, uerr := s.Service.LoadUser(r.Context(), e.UserID)
	token, cerr := s.Service.NewCode()
	if err := errors.Join(err, uerr, cerr); err != nil {
		e := s.LogError(r, err)
		s.messagePage(w, e.Status, "Cannot link the account", httpx.PageText(e, httpx.AudienceFlow, ""))
		return
	}
	http.SetCookie(w, &http.Cookie{Name: linkCookie, Value: token, Path: "/oauth2/upstream/link/", HttpOnly: true,
		Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteStrictMode, MaxAge: int(flowTTL / time.Second)})
	account := s.accountName(u, e.ClientID)
	s.renderPage(w, http.StatusOK, "link", "", pageData{Title: "Link " + p.Name + "?", FlowID: code, CSRF: token,
		Submit: "Continue with " + p.Name,
		Lead: "This links your " + p.Name + " account to " + account + " on this service, so that " + p.Name +
			" signs you in to it. If that is not your account, or you did not ask for this, close this page."})
}

// accountName says which account a link goes to, so that the person who
// opens a link mailed by someone else can tell it is not theirs: its login
// ID, or else the identities it signs in with and when it was made.
func (s *Server) accountName(u domain.User, clientID string) string {
	if typ, id := u.LoginID(); id != "" {
		// A look-alike (a Cyrillic letter for a Latin one, another
		// script's domain) is shown for what it is.
		if shown := (loginid.ID{Type: loginid.Type(typ), Value: id}).Revealing(); shown != id {
			return id + " (written " + shown + ")"
		}
		return id
	}
	var ways []string
	for _, x := range u.ExternalIdentities() {
		name := x.Provider
		if p, err := s.upstream.Provider(x.Provider, clientID); err == nil {
			name = p.Name
		}
		if x.Email != "" {
			name += " (" + x.Email + ")"
		}
		ways = append(ways, name)
	}
	made := "made on " + u.CreatedAt().UTC().Format("2 January 2006")
	if len(ways) == 0 {
		return "an account " + made
	}
	return "the account that signs in with " + strings.Join(ways, ", ") + ", " + made + ","
}

// upstreamLinkStart is the confirmation's form: with its CSRF token, the
// link code is spent and the browser goes to the provider; a regular user
// links an identity of the provider to its account.
func (s *Server) upstreamLinkStart(w http.ResponseWriter, r *http.Request) {
	httpx.NoStore(w)
	if err := r.ParseForm(); err != nil {
		s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The form could not be read.")
		return
	}
	if c, err := r.Cookie(linkCookie); err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf_token"))) != 1 {
		s.messagePage(w, http.StatusForbidden, "Cannot link the account", "The form was not sent from this page. Open the link again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: linkCookie, Value: "", Path: "/oauth2/upstream/link/", HttpOnly: true,
		Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
	e, err := s.Service.TakeLinkCode(r.Context(), mux.Vars(r)["code"])
	if err != nil {
		s.messagePage(w, http.StatusNotFound, "This link has expired", "Go back to the application and start again.")
		return
	}
	p, err := s.upstream.Provider(e.Upstream.Provider, e.ClientID)
	fail := func(err error) {
		e := s.LogError(r, err)
		s.messagePage(w, e.Status, "Cannot link the account", httpx.PageText(e, httpx.AudienceFlow, ""))
	}
	if err != nil {
		fail(err)
		return
	}
	s.beginUpstream(w, r, p, e.ClientID, *e.Upstream, fail)
}

// beginUpstream makes a state, nonce and PKCE verifier for what st
// continues, keeps them under the state, binds them to this browser and
// sends it to the provider.
func (s *Server) beginUpstream(w http.ResponseWriter, r *http.Request, p config.Provider, clientID string, st app.UpstreamState, fail func(error)) {
	// Each start is an entry in the codes bucket for its lifetime, as a
	// hosted flow is: under the same limit per address.
	if err := s.Service.AllowAuthorize(r.Context(), s.ClientIP(r)); err != nil {
		httpx.SetRetryAfter(w, httpx.Classify(err))
		fail(err)
		return
	}
	state, err1 := s.Service.NewCode()
	nonce, err2 := s.Service.NewCode()
	verifier, err3 := s.Service.NewCode()
	binding, err4 := s.Service.NewCode()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		s.flowEnded(w, r, err)
		return
	}
	target, err := s.upstream.AuthURL(r.Context(), p, upstream.Request{RedirectURI: s.callbackURL(), State: state, Nonce: nonce, Verifier: verifier})
	if err != nil {
		fail(err)
		return
	}
	st.Nonce, st.Verifier = nonce, verifier
	entry := app.CodeEntry{Kind: app.CodeUpstream, ClientID: clientID, ExpiresAt: s.Service.Now().Add(upstreamTTL), Binding: hashHex(binding), Upstream: &st}
	if err := s.Service.PutCode(r.Context(), state, entry); err != nil {
		s.flowEnded(w, r, err)
		return
	}
	// A provider that posts its answer (form_post: Apple) comes back with
	// a cross-site POST, which carries only SameSite=None cookies (those
	// need Secure, so https).
	same, secure := http.SameSiteLaxMode, *s.cfg.Cookie.Secure
	if p.ResponseMode == "form_post" {
		same, secure = http.SameSiteNoneMode, true
	}
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie(state), Value: binding, Path: CallbackPath, HttpOnly: true, Secure: secure,
		SameSite: same, MaxAge: int(upstreamTTL / time.Second)})
	httpx.NoStore(w)
	http.Redirect(w, r, target, http.StatusFound)
}

// upstreamCallback is where the provider sends the browser back.
func (s *Server) upstreamCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The answer could not be read. Go back to the application and start again.")
			return
		}
		// A provider's answer posted cross-site (form_post: Apple) carries
		// only SameSite=None cookies: not the guest's session cookie a
		// cookie-mode promotion needs. The same answer comes back as a
		// top-level GET, which carries Lax cookies too; nothing is spent
		// before it.
		back := url.Values{}
		for _, k := range []string{"state", "code", "error", "error_description"} {
			if v := r.PostForm.Get(k); v != "" && len(v) <= 4096 {
				back.Set(k, v)
			}
		}
		httpx.NoStore(w)
		http.Redirect(w, r, CallbackPath+"?"+back.Encode(), http.StatusSeeOther)
		return
	}
	state := q.Get("state")
	if len(state) < 12 {
		s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The answer from the identity provider is incomplete. Go back to the application and start again.")
		return
	}
	c, cerr := r.Cookie(upstreamCookie(state))
	if cerr != nil {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "This sign-in was started in another browser or has expired. Go back to the application and start again.")
		return
	}
	ctx := r.Context()
	e, err := s.Service.TakeUpstreamState(ctx, state)
	if err != nil || subtle.ConstantTimeCompare([]byte(hashHex(c.Value)), []byte(e.Binding)) != 1 {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "This sign-in was started in another browser, has expired or was already used. Go back to the application and start again.")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: upstreamCookie(state), Value: "", Path: CallbackPath, HttpOnly: true, Secure: c.Secure, MaxAge: -1})
	up := e.Upstream
	if up.LinkUser != "" {
		s.upstreamLinkDone(w, r, e, state, q)
		return
	}
	flowID := up.FlowID
	f, err := s.Service.Flow(ctx, flowID)
	if err != nil || f.ClientID != e.ClientID {
		s.messagePage(w, http.StatusNotFound, "This page has expired", "Go back to the application and start again.")
		return
	}
	if q.Get("error") != "" {
		s.flowError(w, r, flowID, f, upstream.ErrDenied)
		return
	}
	p, err := s.upstream.Provider(up.Provider, f.ClientID)
	if err != nil {
		s.flowError(w, r, flowID, f, err)
		return
	}
	id, err := s.upstream.Complete(ctx, p, upstream.Request{RedirectURI: s.callbackURL(), State: state, Nonce: up.Nonce, Verifier: up.Verifier}, q.Get("code"))
	if err != nil {
		s.Log.InfoContext(ctx, "upstream sign-in refused", "request_id", httpx.RequestID(ctx), "provider", p.ID, "error", err)
		s.flowError(w, r, flowID, f, err)
		return
	}
	ref := domain.ExternalRef{Provider: id.Provider, Subject: id.Subject, Email: id.Email}
	meta := httpx.Meta(r)
	if f.UserID == "" {
		u, err := s.Service.SignInExternal(ctx, f.ClientID, ref, s.ClientIP(r), meta)
		if err != nil {
			s.flowError(w, r, flowID, f, err)
			return
		}
		s.finishFlowAs(w, r, flowID, f, u.UserID(), epochOf(u), nil, nil, domain.MethodExternal)
		return
	}
	// A guest's promotion, with the same rules as by password.
	res, err := s.Service.SubmitHostedPromotion(ctx, app.HostedPromotion{FlowID: flowID, Flow: f, External: &ref,
		HoldsGuestSession: f.ResponseType != "code" && s.holdsGuestSession(r, f), CodeRequest: app.CodeRequest{IP: s.ClientIP(r), Meta: meta}})
	if err != nil {
		s.flowError(w, r, flowID, f, err)
		return
	}
	s.finishFlowAs(w, r, flowID, f, res.UserID, nil, res.Started, res.Promotion, domain.MethodExternal)
}

// upstreamLinkDone ends a link: the identity is added to the user.
func (s *Server) upstreamLinkDone(w http.ResponseWriter, r *http.Request, e app.CodeEntry, state string, q url.Values) {
	ctx := r.Context()
	up := e.Upstream
	fail := func(err error) {
		x := s.LogError(r, err)
		s.messagePage(w, x.Status, "Cannot link the account", httpx.PageText(x, httpx.AudienceFlow, ""))
	}
	if q.Get("error") != "" {
		fail(upstream.ErrDenied)
		return
	}
	p, err := s.upstream.Provider(up.Provider, e.ClientID)
	if err != nil {
		fail(err)
		return
	}
	id, err := s.upstream.Complete(ctx, p, upstream.Request{RedirectURI: s.callbackURL(), State: state, Nonce: up.Nonce, Verifier: up.Verifier}, q.Get("code"))
	if err == nil {
		err = s.Service.LinkExternal(ctx, up.LinkUser, up.LinkEpoch, domain.ExternalRef{Provider: id.Provider, Subject: id.Subject, Email: id.Email}, httpx.Meta(r))
	}
	if err != nil {
		s.Log.InfoContext(ctx, "upstream link refused", "request_id", httpx.RequestID(ctx), "provider", p.ID, "error", err)
		fail(err)
		return
	}
	if up.Return == "/settings/identities?done=linked" {
		httpx.NoStore(w)
		http.Redirect(w, r, up.Return, http.StatusSeeOther)
		return
	}
	s.messagePage(w, http.StatusOK, "Account linked", "You can now sign in with "+p.Name+". Go back to the application.")
}
