package hosted

import (
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

//go:embed web/*.html web/*.css
var webFS embed.FS

var pageTemplates = map[string]*template.Template{
	"flow":    template.Must(template.ParseFS(webFS, "web/layout.html", "web/flow.html", "web/upstream.html")),
	"message": template.Must(template.ParseFS(webFS, "web/layout.html", "web/message.html")),
	"logout":  template.Must(template.ParseFS(webFS, "web/layout.html", "web/logout.html")),
	"link":    template.Must(template.ParseFS(webFS, "web/layout.html", "web/link.html")),
	// The settings page of external identities (settings.go, issue 19).
	"settings": template.Must(template.ParseFS(webFS, "web/layout.html", "web/settings.html")),
}

// flowTTL bounds how long a sign-up or sign-in page stays usable.
const flowTTL = 30 * time.Minute

// Page modes.
const (
	modePromote = "promote"
	modeSignIn  = "signin"
	modeSignUp  = "signup"
)

type pageData struct {
	Title, Lead, Error, Message    string
	FlowID, CSRF, Mode             string
	LoginID, LoginLabel, LoginHint string
	LoginIDError, PasswordError    string
	Submit                         string
	MinLength                      int
	// CodeSignIn: some login ID type offers sign-in by code (verify_pages.go);
	// PasswordOffered: some offers a password (without, the forms ask for
	// no password and every way in is by code). CodeSubmit names the
	// "code instead of a password" button of sign-up and promotion.
	CodeSignIn      bool
	PasswordOffered bool
	CodeSubmit      string
	// Logout is what the logout confirmation's form posts back (RP-initiated
	// logout): the request as the relying party sent it.
	Logout logoutForm
	// Upstream are the "Continue with <provider>" links (upstream.go);
	// Refs, Identities (named for people) and HasPassword the settings
	// page's (settings.go).
	Upstream    []upstreamLink
	Refs        []domain.ExternalRef
	Identities  []domain.ExternalRef
	HasPassword bool
}

// PageHeaders: hosted pages run no script, load only our stylesheet, cannot
// be framed, and are never cached. Form submissions may go to this server,
// and (as the redirect that ends a flow) to the client's redirect URI.
func PageHeaders(w http.ResponseWriter, redirectURI string) {
	formAction := "'self'"
	if u, err := url.Parse(redirectURI); err == nil && u.Scheme != "" && u.Host != "" {
		formAction += " " + u.Scheme + "://" + u.Host
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action "+formAction+
		"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Content-Type", "text/html; charset=utf-8")
}

func (s *Server) renderPage(w http.ResponseWriter, status int, name, redirectURI string, d pageData) {
	PageHeaders(w, redirectURI)
	w.WriteHeader(status)
	if err := pageTemplates[name].ExecuteTemplate(w, "layout", d); err != nil {
		s.Log.Error("render page", "page", name, "error", err)
	}
}

func (s *Server) messagePage(w http.ResponseWriter, status int, title, msg string) {
	s.renderPage(w, status, "message", "", pageData{Title: title, Message: msg})
}

func (s *Server) stylesheet(w http.ResponseWriter, _ *http.Request) {
	css, _ := webFS.ReadFile("web/idstream.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(css)
}

var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43,128}$`)

// maxState bounds an authorization request's state, which its flow keeps
// (RFC 6749 sets no limit; 2 KiB is far more than any client sends).
const maxState = 2048

// dpopThumbprint is a dpop_jkt: an RFC 7638 SHA-256 thumbprint, base64url.
var dpopThumbprint = regexp.MustCompile(`^[-A-Za-z0-9_]{43}$`)

// authorize is GET /oauth2/authorize: the authorization code flow with PKCE
// (S256 only), or response_type=none for cookie sessions. With a login_hint
// carrying a promotion code it leads to the promotion page; without, to
// sign-in for regular users. Errors go back to the redirect URI only when it
// is registered for the client; otherwise they are shown here.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	cl, ok := s.Service.Settings().Client(q.Get("client_id"))
	if !ok {
		s.messagePage(w, http.StatusBadRequest, "Unknown application", "The application that sent you here is not registered with this service.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" || !cl.AllowsRedirect(redirectURI) {
		s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The application asked to return to an address it has not registered, so you were not sent back.")
		return
	}
	state := q.Get("state")
	if len(state) > maxState {
		// Not echoed back either: the flow would keep it for its lifetime.
		s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The application sent a sign-in request this service cannot accept (its state is longer than 2,048 characters).")
		return
	}
	o, oerr, odesc := s.parseOIDC(r, q, cl.ClientID)
	fail := func(code, desc string) {
		s.respondToClient(w, r, redirectURI, o.responseMode, url.Values{"error": {code}, "error_description": {desc}}, state)
	}
	if oerr != "" {
		fail(oerr, odesc)
		return
	}
	rt := q.Get("response_type")
	switch rt {
	case "code":
		// PKCE is required of public clients; a confidential client, which
		// authenticates at the exchange, may do without (RFC 9700 §2.1.1:
		// its ID token's nonce then binds the code), but what it sends is
		// checked.
		withoutPKCE := cl.Confidential() && !q.Has("code_challenge") && !q.Has("code_challenge_method")
		if !withoutPKCE && (q.Get("code_challenge_method") != "S256" || !pkceChallenge.MatchString(q.Get("code_challenge"))) {
			fail("invalid_request", "PKCE is required: code_challenge_method=S256 and a code_challenge")
			return
		}
	case "none":
	default:
		fail("unsupported_response_type", "response_type must be code or none")
		return
	}
	jkt := q.Get("dpop_jkt")
	if jkt != "" && !dpopThumbprint.MatchString(jkt) {
		fail("invalid_request", "dpop_jkt must be a SHA-256 JWK thumbprint (43 base64url characters)")
		return
	}
	flow := app.CodeEntry{Kind: app.CodeFlow, ClientID: cl.ClientID, RedirectURI: redirectURI, ResponseType: rt, State: state,
		CodeChallenge: q.Get("code_challenge"), Scope: q.Get("scope"), Nonce: o.nonce, ResponseMode: o.responseMode, Subject: o.subject,
		ReauthSession: o.hintSession, DPoPJKT: jkt}
	if hint := q.Get("login_hint"); hint != "" && !isAnonymousHint(hint) {
		// A regular user's login ID: the sign-in form starts with it.
		if len(hint) <= 320 {
			flow.LoginHint = hint
		}
	} else if hint != "" {
		code, jwt, err := promotionHint(hint)
		if err != nil {
			fail("invalid_request", err.Error())
			return
		}
		if jwt != "" {
			// A key-pair guest proves itself with a signed promote request.
			userID, err := s.Service.VerifyPromoteRequest(r.Context(), cl.ClientID, jwt)
			if err != nil {
				fail("invalid_request", httpx.Classify(err).Message)
				return
			}
			flow.UserID = userID
		} else {
			pc, err := s.Service.ClaimPromotionCode(r.Context(), code, cl.ClientID, rt, flow.CodeChallenge, redirectURI)
			switch {
			case errors.Is(err, app.ErrPromotionCodeTaken):
				fail("invalid_request", err.Error())
				return
			case errors.Is(err, app.ErrBusy) || err != nil && httpx.Classify(err).Status >= 500:
				fail("temporarily_unavailable", "please try again in a moment")
				return
			case err != nil:
				fail("invalid_request", "the promotion code is unknown, expired, already used or issued to another application")
				return
			}
			flow.PromotionCode, flow.UserID, flow.SessionID = code, pc.UserID, pc.SessionID
		}
	}
	if o.subject != "" && flow.UserID != "" && flow.UserID != o.subject {
		fail("invalid_request", "the id_token_hint is another user's than the guest being promoted")
		return
	}
	if o.none {
		// No flow is kept, and the answer must be a redirect: not under
		// the address's flow limit, but a code (for a live cookie session)
		// is under its user's (silentAuthorize).
		s.silentAuthorize(w, r, cl, flow, o)
		return
	}
	// Every flow is an entry in the codes bucket for its lifetime (a page a
	// person reads, so a page says to wait): an address may start only so
	// many.
	if err := s.Service.AllowAuthorize(r.Context(), s.ClientIP(r)); err != nil {
		e := s.LogError(r, err)
		httpx.SetRetryAfter(w, e)
		s.messagePage(w, e.Status, httpx.PageTitle(e), httpx.PageText(e, httpx.AudienceFlow, ""))
		return
	}
	flowID, err1 := s.Service.NewCode()
	binding, err2 := s.Service.NewCode()
	csrf, err3 := s.Service.NewCode()
	if err := errors.Join(err1, err2, err3); err != nil {
		s.flowEnded(w, r, err)
		return
	}
	flow.CSRF, flow.Binding, flow.ExpiresAt = csrf, hashHex(binding), s.Service.Now().Add(flowTTL)
	if err := s.Service.PutCode(r.Context(), flowID, flow); err != nil {
		s.flowEnded(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: flowCookie(flowID), Value: binding, Path: "/flows/", HttpOnly: true,
		Secure: *s.cfg.Cookie.Secure, SameSite: http.SameSiteLaxMode, MaxAge: int(flowTTL / time.Second)})
	httpx.NoStore(w)
	http.Redirect(w, r, "/flows/"+flowID, http.StatusFound)
}

// isAnonymousHint reports whether a login_hint is Authgear's guest hint
// (see promotionHint) rather than a login ID.
func isAnonymousHint(hint string) bool {
	return strings.HasPrefix(hint, "https://authgear.com/login_hint")
}

// promotionHint reads Authgear's login hint for guests:
// https://authgear.com/login_hint?type=anonymous&promotion_code=<code>, or
// &jwt=<anonymous-request JWT with action promote> for key-pair guests.
func promotionHint(hint string) (code, jwt string, err error) {
	u, err := url.Parse(hint)
	if err != nil || u.Host != "authgear.com" || u.Path != "/login_hint" || u.Query().Get("type") != "anonymous" {
		return "", "", errors.New("login_hint is not an anonymous-user hint")
	}
	code, jwt = u.Query().Get("promotion_code"), u.Query().Get("jwt")
	if (code == "") == (jwt == "") {
		return "", "", errors.New("login_hint carries neither a promotion_code nor a jwt (or both)")
	}
	return code, jwt, nil
}

func flowCookie(flowID string) string { return "idstream_flow_" + flowID[:12] }

func hashHex(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

func (s *Server) redirectWith(w http.ResponseWriter, r *http.Request, target string, params url.Values, state string) {
	u, err := url.Parse(target)
	if err != nil {
		s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The return address is malformed.")
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	httpx.NoStore(w)
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// loadFlow finds the flow of a page and checks it belongs to this browser.
func (s *Server) loadFlow(w http.ResponseWriter, r *http.Request) (string, app.CodeEntry, bool) {
	flowID := mux.Vars(r)["flow"]
	f, err := s.Service.Flow(r.Context(), flowID)
	if err != nil {
		s.messagePage(w, http.StatusNotFound, "This page has expired", "Go back to the application and start again.")
		return "", app.CodeEntry{}, false
	}
	c, cerr := r.Cookie(flowCookie(flowID))
	if cerr != nil || subtle.ConstantTimeCompare([]byte(hashHex(c.Value)), []byte(f.Binding)) != 1 {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "This sign-in page was opened in another browser or has expired. Go back to the application and start again.")
		return "", app.CodeEntry{}, false
	}
	return flowID, f, true
}

func (s *Server) flowPage(flowID string, f app.CodeEntry, mode string) pageData {
	d := pageData{FlowID: flowID, CSRF: f.CSRF, Mode: mode, MinLength: s.cfg.Password.MinLength, CodeSignIn: s.Service.OffersCodeSignIn(),
		Upstream: s.upstreamLinks(flowID, f), CodeSubmit: "Create account with a code instead"}
	kinds := map[string]string{"email": "email address", "phone": "phone number", "username": "username"}
	var names []string
	for _, t := range s.cfg.LoginIDTypes {
		names = append(names, kinds[t])
		d.PasswordOffered = d.PasswordOffered || s.Service.OffersAuthenticator(t, domain.AuthenticatorPassword)
	}
	d.LoginLabel = "Email, phone number or username"
	if len(names) == 1 {
		d.LoginLabel = strings.ToUpper(names[0][:1]) + names[0][1:]
	}
	d.LoginHint = "Use your " + joinOr(names) + "."
	if slices.Contains(s.cfg.LoginIDTypes, "phone") {
		d.LoginHint += " Phone numbers start with + and the country code."
	}
	switch mode {
	case modePromote:
		d.Title = "Create your account"
		d.Lead = "Your activity so far will be kept: everything you did as a guest stays with your new account."
		d.Submit = "Create account"
	case modeSignUp:
		d.Title = "Create an account"
		d.Submit = "Create account"
	default:
		d.Title = "Sign in"
		d.Submit = "Sign in"
	}
	return d
}

// flowGet shows the page of a flow.
func (s *Server) flowGet(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	mode := modeSignIn
	if f.UserID != "" {
		mode = modePromote
	} else if r.URL.Query().Get("mode") == modeSignUp && f.Subject == "" {
		mode = modeSignUp
	}
	d := s.flowPage(flowID, f, mode)
	if mode == modeSignIn && !d.PasswordOffered {
		// No login ID type has a password: signing in is by code.
		httpx.NoStore(w)
		http.Redirect(w, r, "/flows/"+flowID+"/signin-code", http.StatusSeeOther)
		return
	}
	if mode == modeSignIn {
		d.LoginID = f.LoginHint
	}
	s.renderPage(w, http.StatusOK, "flow", f.RedirectURI, d)
}

// flowPost handles the form of a flow: promotion, sign-up or sign-in.
func (s *Server) flowPost(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	if err := r.ParseForm(); err != nil {
		s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The form could not be read. Go back and try again.")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf_token")), []byte(f.CSRF)) != 1 {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "The form was not sent from this page (its security token is missing or wrong). Go back and try again.")
		return
	}
	mode := r.PostForm.Get("mode")
	if f.UserID != "" {
		mode = modePromote
	} else if mode != modeSignUp || f.Subject != "" {
		// A re-authentication (id_token_hint) signs in; it makes no account.
		mode = modeSignIn
	}
	d := s.flowPage(flowID, f, mode)
	d.LoginID = r.PostForm.Get("login_id")
	pw := r.PostForm.Get("password")
	ctx := r.Context()
	fail := func(err error) {
		e := s.LogError(r, err)
		status := e.Status
		httpx.SetRetryAfter(w, e)
		switch text := httpx.PageText(e, httpx.AudienceFlow, d.LoginID); e.Field {
		case httpx.FieldFlow:
			s.messagePage(w, status, httpx.PageTitle(e), text)
			return
		case httpx.FieldLoginID:
			d.LoginIDError = text
		case httpx.FieldPassword:
			d.PasswordError = text
		default:
			d.Error = text
		}
		s.renderPage(w, status, "flow", f.RedirectURI, d)
	}
	var id loginid.ID
	var err error
	byCode := false
	if mode != modeSignIn {
		if id, err = s.Service.ParseLoginID("", d.LoginID); err != nil {
			fail(err)
			return
		}
		// "Create account with a code instead", or a login ID type that
		// offers no password: the account is passwordless. A password
		// typed for such a type (the field is there for the others) is
		// refused rather than silently dropped.
		asked := r.PostForm.Get("authenticator") == domain.AuthenticatorCode
		offersPassword := s.Service.OffersAuthenticator(string(id.Type), domain.AuthenticatorPassword)
		if !asked && !offersPassword && pw != "" {
			fail(app.ErrAuthenticatorNotOffered)
			return
		}
		byCode = asked || !offersPassword
		if byCode {
			pw = ""
		}
	}
	var userID string
	var epoch *int
	var started *app.Issued
	var promotion *app.PendingPromotion
	switch mode {
	case modePromote:
		res, err := s.Service.SubmitHostedPromotion(ctx, app.HostedPromotion{FlowID: flowID, Flow: f, LoginID: id, Password: pw, ByCode: byCode,
			HoldsGuestSession: f.ResponseType != "code" && s.holdsGuestSession(r, f), CodeRequest: s.CodeRequest(r)})
		if err != nil {
			fail(err)
			return
		}
		if res.CodeSent {
			httpx.NoStore(w)
			http.Redirect(w, r, "/flows/"+flowID+"/code", http.StatusSeeOther) // verify_pages.go
			return
		}
		userID, started, promotion = res.UserID, res.Started, res.Promotion
	case modeSignUp:
		if s.Service.SignUpNeedsCode(id, byCode) {
			s.startCodeSignUp(w, r, flowID, f, id, pw, fail) // verify_pages.go
			return
		}
		user, err := s.Service.Register(ctx, f.ClientID, id, pw, s.ClientIP(r), httpx.Meta(r))
		if err != nil {
			fail(err)
			return
		}
		userID, epoch = user.UserID(), epochOf(user)
	default:
		user, err := s.Service.SignInToFlow(ctx, f, d.LoginID, pw, s.ClientIP(r), httpx.Meta(r))
		if err != nil {
			fail(err)
			return
		}
		userID, epoch = user.UserID(), epochOf(user)
	}
	s.finishFlow(w, r, flowID, f, userID, epoch, started, promotion)
}

// epochOf is the credential epoch of a user who just signed in, for the
// authorization code the flow's end issues (app.AuthorizationRequest).
func epochOf(u domain.User) *int {
	e := u.CredentialEpoch()
	return &e
}

// holdsGuestSession reports whether the request carries the session cookie
// of the guest session the flow's promotion code was issued through.
func (s *Server) holdsGuestSession(r *http.Request, f app.CodeEntry) bool {
	c, err := r.Cookie(s.cfg.Cookie.Name)
	if err != nil || c.Value == "" || f.SessionID == "" {
		return false
	}
	p, err := s.Service.AuthenticateCookie(r.Context(), c.Value)
	return err == nil && p.Session.SessionID() == f.SessionID && p.User.UserID() == f.UserID
}

func joinOr(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// finishFlow ends a flow: an authorization code back to the app, or (cookie
// mode) a session cookie and a plain return.
func (s *Server) finishFlow(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, userID string, epoch *int, started *app.Issued, promotion *app.PendingPromotion) {
	s.finishFlowAs(w, r, flowID, f, userID, epoch, started, promotion, f.Method)
}

// finishFlowAs is finishFlow for a user who signed in by the method: the
// flow ends (app.EndFlow) and the browser goes back to the app. epoch is
// the user's credential epoch at that sign-in (nil: read when the code is
// issued).
func (s *Server) finishFlowAs(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, userID string, epoch *int, started *app.Issued, promotion *app.PendingPromotion, method string) {
	end, err := s.Service.EndFlow(r.Context(), app.EndFlow{FlowID: flowID, Flow: f, UserID: userID, Epoch: epoch, Started: started, Promotion: promotion,
		Method: method, Meta: httpx.Meta(r)})
	if err != nil {
		s.flowEnded(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: flowCookie(flowID), Value: "", Path: "/flows/", HttpOnly: true, Secure: *s.cfg.Cookie.Secure,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
	if end.Session == nil {
		s.respondToClient(w, r, f.RedirectURI, f.ResponseMode, url.Values{"code": {end.Code}}, f.State)
		return
	}
	httpx.SetSessionCookie(w, s.cfg, *end.Session)
	s.respondToClient(w, r, f.RedirectURI, f.ResponseMode, url.Values{}, f.State)
}
