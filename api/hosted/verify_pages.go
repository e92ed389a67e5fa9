package hosted

import (
	"crypto/subtle"
	"html/template"
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// The hosted pages of one-time codes (issue 20): "Enter the code we sent
// to …" for a promotion the project requires a code for, and the forgotten
// password pages behind "Forgot password?" on the sign-in page. They run
// no script, carry the flow's CSRF token and are bound to the browser by
// the flow's cookie, as the other hosted pages.
var codeTemplates = map[string]*template.Template{
	"code":   template.Must(template.ParseFS(webFS, "web/layout.html", "web/code.html")),
	"forgot": template.Must(template.ParseFS(webFS, "web/layout.html", "web/forgot.html")),
}

func (s *Server) codePageRoutes(r *mux.Router) {
	r.HandleFunc("/flows/{flow}/code", s.codePage).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/flows/{flow}/forgot", s.forgotPage).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/flows/{flow}/reset", s.resetPage).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/flows/{flow}/signin-code", s.codeSignInPage).Methods(http.MethodGet, http.MethodPost)
	r.HandleFunc("/flows/{flow}/signin-code/verify", s.codeSignInVerifyPage).Methods(http.MethodGet, http.MethodPost)
}

type codePageData struct {
	pageData
	Sent, Notice, Action, CodeError, ResendHint, Back, BackText string
	Minutes                                                     int
	Reset                                                       bool
}

func (s *Server) renderCodePage(w http.ResponseWriter, status int, name, redirectURI string, d any) {
	PageHeaders(w, redirectURI)
	w.WriteHeader(status)
	if err := codeTemplates[name].ExecuteTemplate(w, "layout", d); err != nil {
		s.Log.Error("render page", "page", name, "error", err)
	}
}

const resendHint = "No message? Check your spam folder, or ask for a new code: one a minute at most."

// codeForm reads a page's form and checks its CSRF token.
func (s *Server) codeForm(w http.ResponseWriter, r *http.Request, f app.CodeEntry) bool {
	if err := r.ParseForm(); err != nil {
		s.messagePage(w, http.StatusBadRequest, "Cannot continue", "The form could not be read. Go back and try again.")
		return false
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("csrf_token")), []byte(f.CSRF)) != 1 {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "The form was not sent from this page (its security token is missing or wrong). Go back and try again.")
		return false
	}
	return true
}

// codeFailed shows an error on a page inline, on its field.
func (s *Server) codeFailed(w http.ResponseWriter, r *http.Request, name, redirectURI string, d *codePageData, typed string, err error) {
	e := s.LogError(r, err)
	httpx.SetRetryAfter(w, e)
	switch text := httpx.PageText(e, httpx.AudienceFlow, typed); e.Field {
	case httpx.FieldCode:
		d.CodeError = text
	case httpx.FieldPassword:
		d.PasswordError = text
	case httpx.FieldLoginID:
		d.LoginIDError = text
	default:
		d.Error = text
	}
	s.renderCodePage(w, e.Status, name, redirectURI, d)
}

func (s *Server) codeData(flowID string, f app.CodeEntry, mode string) codePageData {
	d := codePageData{pageData: s.flowPage(flowID, f, mode), Minutes: int(s.Service.CodeLifetime() / time.Minute),
		ResendHint: resendHint, Action: "/flows/" + flowID + "/code", Back: "/flows/" + flowID}
	d.Lead, d.Submit = "", "Continue"
	noun := httpx.LoginNoun(f.CodeLoginID)
	d.BackText = "Use a different " + noun
	d.Sent = "Enter the code we sent to " + f.CodeLoginID + "."
	return d
}

// startCodePromotion is the hosted promotion when the project requires a
// code for the login ID: decided as the page's promotion is (the limits,
// policy, password hashed; a merge under the conflict policy "login" is
// carried or written as today), a code sent, and the browser sent on to
// the code page. Nothing is written before the code comes back.
func (s *Server) startCodePromotion(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, id loginid.ID, pw string, fail func(error)) {
	ctx := r.Context()
	cookieMode := f.ResponseType != "code"
	if cookieMode && !s.holdsGuestSession(r, f) {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "This sign-up link belongs to a guest of another browser. Open it from the application on your own device.")
		return
	}
	cr := s.CodeRequest(r)
	in := app.PromotionByCode{Locale: cr.Locale, DeferMerge: !cookieMode, PromoteInput: app.PromoteInput{UserID: f.UserID, OldSessionID: f.SessionID,
		LoginID: id, Password: pw, IP: cr.IP, Meta: cr.Meta}}
	if cookieMode {
		in.NewSession = &app.NewSession{ClientID: f.ClientID, Kind: domain.SessionKindCookie, Method: domain.MethodPromotion}
	}
	st, err := s.Service.StartPromotionByCode(ctx, in)
	if err != nil {
		fail(err)
		return
	}
	switch {
	case st.Merged != nil:
		s.Service.SpendPromotionCode(ctx, f.PromotionCode)
		s.finishFlow(w, r, flowID, f, st.Merged.UserID, st.Merged, nil)
		return
	case st.Merge != nil:
		s.Service.SpendPromotionCode(ctx, f.PromotionCode)
		s.finishFlow(w, r, flowID, f, st.Merge.MergeInto, nil, st.Merge)
		return
	}
	if err := s.Service.SetFlowCodeLoginID(ctx, flowID, string(id.Type), id.Value); err != nil {
		fail(err)
		return
	}
	httpx.NoStore(w)
	http.Redirect(w, r, "/flows/"+flowID+"/code", http.StatusSeeOther)
}

// codePage is GET and POST /flows/{flow}/code: the code of a promotion
// (action verify) or a new one (action resend).
func (s *Server) codePage(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	if f.UserID == "" || f.CodeLoginID == "" {
		httpx.NoStore(w)
		http.Redirect(w, r, "/flows/"+flowID, http.StatusSeeOther)
		return
	}
	d := s.codeData(flowID, f, modePromote)
	d.Title = "Confirm your " + httpx.LoginNoun(f.CodeLoginID)
	d.Submit = "Create account"
	if r.Method == http.MethodGet {
		s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
		return
	}
	if !s.codeForm(w, r, f) {
		return
	}
	ctx := r.Context()
	if _, err := s.Service.PromotionCode(ctx, f.PromotionCode); f.PromotionCode != "" && err != nil {
		s.messagePage(w, http.StatusBadRequest, "This page has expired", "Your sign-up link expired or was already used. Go back to the application and start again.")
		return
	}
	id := loginid.ID{Type: loginid.Type(f.CodeLoginIDType), Value: f.CodeLoginID}
	cr := s.CodeRequest(r)
	if r.PostForm.Get("action") == "resend" {
		if _, err := s.Service.ResendPromotionCode(ctx, f.UserID, id, cr); err != nil {
			s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
			return
		}
		d.Notice = "We sent a new code to " + f.CodeLoginID + ". The one before no longer works."
		s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
		return
	}
	code := r.PostForm.Get("code")
	if f.ResponseType == "code" {
		// Checked now, written when the app exchanges the authorization
		// code with its PKCE verifier, as every hosted promotion.
		p, err := s.Service.CheckPromotionByCode(ctx, f.UserID, id, code, cr)
		if err != nil {
			s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
			return
		}
		s.Service.SpendPromotionCode(ctx, f.PromotionCode)
		s.finishFlow(w, r, flowID, f, f.UserID, nil, &p)
		return
	}
	if !s.holdsGuestSession(r, f) {
		s.messagePage(w, http.StatusForbidden, "Cannot continue", "This sign-up link belongs to a guest of another browser. Open it from the application on your own device.")
		return
	}
	iss, err := s.Service.CompletePromotionByCode(ctx, f.UserID, f.SessionID, id, code,
		&app.NewSession{ClientID: f.ClientID, Kind: domain.SessionKindCookie, Method: domain.MethodPromotion}, cr)
	if err != nil {
		s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
		return
	}
	s.Service.SpendPromotionCode(ctx, f.PromotionCode)
	s.finishFlow(w, r, flowID, f, iss.UserID, &iss, nil)
}

// forgotPage is GET and POST /flows/{flow}/forgot, behind "Forgot
// password?" on the sign-in page: the same answer whether anybody holds
// the login ID.
func (s *Server) forgotPage(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	if f.UserID != "" {
		httpx.NoStore(w)
		http.Redirect(w, r, "/flows/"+flowID, http.StatusSeeOther)
		return
	}
	d := codePageData{pageData: s.flowPage(flowID, f, modeSignIn), Action: "/flows/" + flowID + "/forgot", Back: "/flows/" + flowID,
		BackText: "Back to sign in"}
	d.Title = "Forgot your password?"
	d.Lead = "Tell us the email address or phone number you sign in with. If it belongs to an account, we send a code to it."
	if r.Method == http.MethodGet {
		s.renderCodePage(w, http.StatusOK, "forgot", f.RedirectURI, d)
		return
	}
	if !s.codeForm(w, r, f) {
		return
	}
	d.LoginID = r.PostForm.Get("login_id")
	id, err := s.Service.ParseLoginID("", d.LoginID)
	if err == nil {
		_, err = s.Service.StartPasswordReset(r.Context(), f.ClientID, id, s.CodeRequest(r))
	}
	if err == nil {
		err = s.Service.SetFlowCodeLoginID(r.Context(), flowID, string(id.Type), id.Value)
	}
	if err != nil {
		s.codeFailed(w, r, "forgot", f.RedirectURI, &d, d.LoginID, err)
		return
	}
	httpx.NoStore(w)
	http.Redirect(w, r, "/flows/"+flowID+"/reset", http.StatusSeeOther)
}

// resetPage is GET and POST /flows/{flow}/reset: the code and the new
// password; afterwards the sign-in page, every session of the account
// ended.
func (s *Server) resetPage(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	if f.UserID != "" || f.CodeLoginID == "" {
		httpx.NoStore(w)
		http.Redirect(w, r, "/flows/"+flowID+"/forgot", http.StatusSeeOther)
		return
	}
	d := s.codeData(flowID, f, modeSignIn)
	d.Title, d.Submit, d.Reset = "Choose a new password", "Change password", true
	d.Action, d.Back = "/flows/"+flowID+"/reset", "/flows/"+flowID+"/forgot"
	d.Sent = "If " + f.CodeLoginID + " belongs to an account, we sent a code to it. Enter it with your new password."
	if r.Method == http.MethodGet {
		s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
		return
	}
	if !s.codeForm(w, r, f) {
		return
	}
	ctx := r.Context()
	id := loginid.ID{Type: loginid.Type(f.CodeLoginIDType), Value: f.CodeLoginID}
	cr := s.CodeRequest(r)
	if r.PostForm.Get("action") == "resend" {
		if _, err := s.Service.StartPasswordReset(ctx, f.ClientID, id, cr); err != nil {
			s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
			return
		}
		d.Notice = "If " + f.CodeLoginID + " belongs to an account, we sent a new code. The one before no longer works."
		s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
		return
	}
	if err := s.Service.CompletePasswordReset(ctx, f.ClientID, id, r.PostForm.Get("code"), r.PostForm.Get("new_password"), cr); err != nil {
		s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
		return
	}
	done := s.flowPage(flowID, f, modeSignIn)
	done.Lead = "Your password was changed, and every device signed in to the account was signed out. Sign in with the new password."
	done.LoginID = f.CodeLoginID
	s.renderPage(w, http.StatusOK, "flow", f.RedirectURI, done)
}

// codeSignInPage is GET and POST /flows/{flow}/signin-code, behind "Sign in
// with a code instead" on the sign-in page (when a login ID type offers
// codes): the same answer whether anybody holds the login ID.
func (s *Server) codeSignInPage(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	if f.UserID != "" {
		httpx.NoStore(w)
		http.Redirect(w, r, "/flows/"+flowID, http.StatusSeeOther)
		return
	}
	d := codePageData{pageData: s.flowPage(flowID, f, modeSignIn), Action: "/flows/" + flowID + "/signin-code", Back: "/flows/" + flowID,
		BackText: "Sign in with a password instead"}
	d.Title = "Sign in with a code"
	d.Lead = "Tell us the email address or phone number you sign in with. If it belongs to an account, we send a code to it."
	if r.Method == http.MethodGet {
		s.renderCodePage(w, http.StatusOK, "forgot", f.RedirectURI, d)
		return
	}
	if !s.codeForm(w, r, f) {
		return
	}
	d.LoginID = r.PostForm.Get("login_id")
	id, err := s.Service.ParseLoginID("", d.LoginID)
	if err == nil {
		_, err = s.Service.StartCodeSignIn(r.Context(), f.ClientID, id, s.CodeRequest(r))
	}
	if err == nil {
		err = s.Service.SetFlowCodeLoginID(r.Context(), flowID, string(id.Type), id.Value)
	}
	if err != nil {
		s.codeFailed(w, r, "forgot", f.RedirectURI, &d, d.LoginID, err)
		return
	}
	httpx.NoStore(w)
	http.Redirect(w, r, "/flows/"+flowID+"/signin-code/verify", http.StatusSeeOther)
}

// codeSignInVerifyPage is GET and POST /flows/{flow}/signin-code/verify:
// the code, then back to the app as a password sign-in returns (an
// authorization code, or the session cookie), the session's method the
// code's (email_code, sms_code).
func (s *Server) codeSignInVerifyPage(w http.ResponseWriter, r *http.Request) {
	flowID, f, ok := s.loadFlow(w, r)
	if !ok {
		return
	}
	if f.UserID != "" || f.CodeLoginID == "" {
		httpx.NoStore(w)
		http.Redirect(w, r, "/flows/"+flowID+"/signin-code", http.StatusSeeOther)
		return
	}
	d := s.codeData(flowID, f, modeSignIn)
	d.Title, d.Submit = "Sign in with a code", "Sign in"
	d.Action, d.Back = "/flows/"+flowID+"/signin-code/verify", "/flows/"+flowID+"/signin-code"
	d.Sent = "If " + f.CodeLoginID + " belongs to an account, we sent a code to it."
	if r.Method == http.MethodGet {
		s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
		return
	}
	if !s.codeForm(w, r, f) {
		return
	}
	ctx := r.Context()
	id := loginid.ID{Type: loginid.Type(f.CodeLoginIDType), Value: f.CodeLoginID}
	cr := s.CodeRequest(r)
	if r.PostForm.Get("action") == "resend" {
		if _, err := s.Service.StartCodeSignIn(ctx, f.ClientID, id, cr); err != nil {
			s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
			return
		}
		d.Notice = "If " + f.CodeLoginID + " belongs to an account, we sent a new code. The one before no longer works."
		s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
		return
	}
	u, err := s.Service.CheckCodeSignIn(ctx, f.ClientID, id, r.PostForm.Get("code"), cr)
	if err != nil {
		s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
		return
	}
	f.Method, _ = domain.CodeMethod(f.CodeLoginIDType)
	s.finishFlow(w, r, flowID, f, u.UserID(), nil, nil)
}
