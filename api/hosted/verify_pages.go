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
	for path, h := range map[string]http.HandlerFunc{
		"/code":               s.codeStep(s.promotionCode()),
		"/signup-code":        s.codeStep(s.signUpCode()),
		"/forgot":             s.loginIDStep(s.forgotStep()),
		"/reset":              s.codeStep(s.resetCode()),
		"/signin-code":        s.loginIDStep(s.codeSignInStep()),
		"/signin-code/verify": s.codeStep(s.codeSignInCode()),
	} {
		r.HandleFunc("/flows/{flow}"+path, h).Methods(http.MethodGet, http.MethodPost)
	}
}

type codePageData struct {
	pageData
	// NoResend hides "Send a new code": the code was right and spent, but
	// what it completes cannot be written (the login ID was claimed
	// meanwhile); the way on is another login ID.
	NoResend bool
	// SignUpLink: the sign-in-code page of a project without passwords,
	// which stands in for the sign-in page, links sign-up.
	SignUpLink                                                  string
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
	case httpx.FieldFlow:
		s.messagePage(w, e.Status, httpx.PageTitle(e), text)
		return
	case httpx.FieldCode:
		d.CodeError = text
	case httpx.FieldPassword:
		d.PasswordError = text
	case httpx.FieldLoginID:
		if name == "code" {
			// The code page has no login ID field (a login ID claimed
			// since the code was sent): the page's own error, and no new
			// code (the spent one is gone; "Use a different …" is the way).
			d.Error, d.NoResend = text, true
			break
		}
		d.LoginIDError = text
	default:
		d.Error = text
	}
	s.renderCodePage(w, e.Status, name, redirectURI, d)
}

// flowEnded shows the message page of an error that ends a flow.
func (s *Server) flowEnded(w http.ResponseWriter, r *http.Request, err error) {
	e := s.LogError(r, err)
	s.messagePage(w, e.Status, httpx.PageTitle(e), httpx.PageText(e, httpx.AudienceFlow, ""))
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

// startCodeSignUp is the hosted sign-up completed by a code: passwordless,
// or with a password when the project requires verification. Decided as
// Register decides (limits, policy, the login ID free), a code sent bound
// to this flow, the browser sent on to the code page; nothing is written
// before the code comes back.
func (s *Server) startCodeSignUp(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, id loginid.ID, pw string, fail func(error)) {
	ctx := r.Context()
	cr := s.CodeRequest(r)
	if _, err := s.Service.StartRegistrationByCode(ctx, app.RegistrationByCode{ClientID: f.ClientID, Flow: flowID, LoginID: id, Password: pw,
		IP: cr.IP, Locale: cr.Locale, Meta: cr.Meta}); err != nil {
		fail(err)
		return
	}
	httpx.NoStore(w)
	http.Redirect(w, r, "/flows/"+flowID+"/signup-code", http.StatusSeeOther)
}

// A code page is one step of a flow: "Enter the code we sent to …" with
// "Send a new code", then what the code completes. codeStep serves its GET
// and POST; a codePage says what differs.
type codePage struct {
	// ready: the flow is at this step; otherwise the browser goes to away.
	ready func(f app.CodeEntry) bool
	away  string
	// page fills the page's words.
	page func(flowID string, f app.CodeEntry) codePageData
	// guard, when set, may end the request before the form is acted on.
	guard func(w http.ResponseWriter, r *http.Request, f app.CodeEntry) bool
	// resend sends a new code; resent is the notice afterwards.
	resend func(r *http.Request, flowID string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest) error
	resent func(f app.CodeEntry) string
	// verify acts on the code (and ends the request).
	verify func(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest, d *codePageData)
}

func (s *Server) codeStep(c codePage) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		flowID, f, ok := s.loadFlow(w, r)
		if !ok {
			return
		}
		if f.CodeLoginID == "" || !c.ready(f) {
			httpx.NoStore(w)
			http.Redirect(w, r, "/flows/"+flowID+c.away, http.StatusSeeOther)
			return
		}
		d := c.page(flowID, f)
		if r.Method == http.MethodGet {
			s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
			return
		}
		if !s.codeForm(w, r, f) || (c.guard != nil && !c.guard(w, r, f)) {
			return
		}
		id := loginid.ID{Type: loginid.Type(f.CodeLoginIDType), Value: f.CodeLoginID}
		cr := s.CodeRequest(r)
		if r.PostForm.Get("action") == "resend" {
			if err := c.resend(r, flowID, f, id, cr); err != nil {
				s.codeFailed(w, r, "code", f.RedirectURI, &d, f.CodeLoginID, err)
				return
			}
			d.Notice = c.resent(f)
			s.renderCodePage(w, http.StatusOK, "code", f.RedirectURI, d)
			return
		}
		c.verify(w, r, flowID, f, id, cr, &d)
	}
}

// newCodeSent and maybeCodeSent are the notices after a resend: to a login
// ID the flow is making an account of, and to one that may be nobody's.
func newCodeSent(f app.CodeEntry) string {
	return "We sent a new code to " + f.CodeLoginID + ". The one before no longer works."
}

func maybeCodeSent(f app.CodeEntry) string {
	return "If " + f.CodeLoginID + " belongs to an account, we sent a new code. The one before no longer works."
}

// promotionCode is /flows/{flow}/code: the code of a promotion (the
// project requires it, or the guest chose a code instead of a password).
func (s *Server) promotionCode() codePage {
	return codePage{
		ready: func(f app.CodeEntry) bool { return f.UserID != "" },
		page: func(flowID string, f app.CodeEntry) codePageData {
			d := s.codeData(flowID, f, modePromote)
			d.Title, d.Submit = "Confirm your "+httpx.LoginNoun(f.CodeLoginID), "Create account"
			return d
		},
		guard: func(w http.ResponseWriter, r *http.Request, f app.CodeEntry) bool {
			// A spent sign-up link sends no more codes.
			if err := s.Service.SignUpLinkGood(r.Context(), f); err != nil {
				s.flowEnded(w, r, err)
				return false
			}
			return true
		},
		resend: func(r *http.Request, _ string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest) error {
			_, err := s.Service.ResendPromotionCode(r.Context(), f.UserID, id, cr)
			return err
		},
		resent: newCodeSent,
		verify: func(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, _ loginid.ID, cr app.CodeRequest, d *codePageData) {
			res, err := s.Service.ContinueHostedPromotion(r.Context(), app.HostedPromotionCode{Flow: f, Code: r.PostForm.Get("code"),
				HoldsGuestSession: f.ResponseType != "code" && s.holdsGuestSession(r, f), CodeRequest: cr})
			if err != nil {
				s.codeFailed(w, r, "code", f.RedirectURI, d, f.CodeLoginID, err)
				return
			}
			s.finishFlow(w, r, flowID, f, res.UserID, nil, res.Started, res.Promotion)
		},
	}
}

// signUpCode is /flows/{flow}/signup-code: the code of a sign-up; the right
// one writes the account, its login ID verified, and the flow ends as a
// sign-up with a password does.
func (s *Server) signUpCode() codePage {
	return codePage{
		ready: func(f app.CodeEntry) bool { return f.UserID == "" && f.Subject == "" },
		away:  "?mode=signup",
		page: func(flowID string, f app.CodeEntry) codePageData {
			d := s.codeData(flowID, f, modeSignUp)
			d.Title, d.Submit = "Confirm your "+httpx.LoginNoun(f.CodeLoginID), "Create account"
			d.Action, d.Back = "/flows/"+flowID+"/signup-code", "/flows/"+flowID+"?mode=signup"
			return d
		},
		resend: func(r *http.Request, flowID string, _ app.CodeEntry, id loginid.ID, cr app.CodeRequest) error {
			_, err := s.Service.ResendRegistrationCode(r.Context(), flowID, id, cr)
			return err
		},
		resent: newCodeSent,
		verify: func(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest, d *codePageData) {
			u, err := s.Service.CompleteRegistrationByCode(r.Context(), flowID, id, r.PostForm.Get("code"), cr)
			if err != nil {
				s.codeFailed(w, r, "code", f.RedirectURI, d, f.CodeLoginID, err)
				return
			}
			if u.PasswordHash() == "" {
				// A passwordless account signed in by the code it just proved.
				f.Method, _ = domain.CodeMethod(f.CodeLoginIDType)
			}
			s.finishFlow(w, r, flowID, f, u.UserID(), epochOf(u), nil, nil)
		},
	}
}

// resetCode is /flows/{flow}/reset: the code and the new password;
// afterwards the sign-in page, every session of the account ended.
func (s *Server) resetCode() codePage {
	return codePage{
		ready: func(f app.CodeEntry) bool { return f.UserID == "" },
		away:  "/forgot",
		page: func(flowID string, f app.CodeEntry) codePageData {
			d := s.codeData(flowID, f, modeSignIn)
			d.Title, d.Submit, d.Reset = "Choose a new password", "Change password", true
			d.Action, d.Back = "/flows/"+flowID+"/reset", "/flows/"+flowID+"/forgot"
			d.Sent = "If " + f.CodeLoginID + " belongs to an account, we sent a code to it. Enter it with your new password."
			return d
		},
		resend: func(r *http.Request, _ string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest) error {
			_, err := s.Service.StartPasswordReset(r.Context(), f.ClientID, id, cr)
			return err
		},
		resent: maybeCodeSent,
		verify: func(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest, d *codePageData) {
			if err := s.Service.CompletePasswordReset(r.Context(), f.ClientID, id, r.PostForm.Get("code"), r.PostForm.Get("new_password"), cr); err != nil {
				s.codeFailed(w, r, "code", f.RedirectURI, d, f.CodeLoginID, err)
				return
			}
			done := s.flowPage(flowID, f, modeSignIn)
			done.Lead = "Your password was changed, and every device signed in to the account was signed out. Sign in with the new password."
			done.LoginID = f.CodeLoginID
			s.renderPage(w, http.StatusOK, "flow", f.RedirectURI, done)
		},
	}
}

// codeSignInCode is /flows/{flow}/signin-code/verify: the code, then back
// to the app as a password sign-in returns (an authorization code, or the
// session cookie), the session's method the code's (email_code, sms_code).
func (s *Server) codeSignInCode() codePage {
	return codePage{
		ready: func(f app.CodeEntry) bool { return f.UserID == "" },
		away:  "/signin-code",
		page: func(flowID string, f app.CodeEntry) codePageData {
			d := s.codeData(flowID, f, modeSignIn)
			d.Title, d.Submit = "Sign in with a code", "Sign in"
			d.Action, d.Back = "/flows/"+flowID+"/signin-code/verify", "/flows/"+flowID+"/signin-code"
			d.Sent = "If " + f.CodeLoginID + " belongs to an account, we sent a code to it."
			return d
		},
		resend: func(r *http.Request, _ string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest) error {
			_, err := s.Service.StartCodeSignIn(r.Context(), f.ClientID, id, cr)
			return err
		},
		resent: maybeCodeSent,
		verify: func(w http.ResponseWriter, r *http.Request, flowID string, f app.CodeEntry, id loginid.ID, cr app.CodeRequest, d *codePageData) {
			u, err := s.Service.CheckCodeSignIn(r.Context(), f.ClientID, id, r.PostForm.Get("code"), cr)
			if err != nil {
				s.codeFailed(w, r, "code", f.RedirectURI, d, f.CodeLoginID, err)
				return
			}
			f.Method, _ = domain.CodeMethod(f.CodeLoginIDType)
			s.finishFlow(w, r, flowID, f, u.UserID(), epochOf(u), nil, nil)
		},
	}
}

// A login ID page starts a flow from a login ID alone ("Forgot password?",
// "Sign in with a code instead"): the same answer whether anybody holds
// it, the login ID recorded in the flow, then on to the code page.
type loginIDPage struct {
	path, next, title, backText string
	// purpose is the code's (app.PurposeReset, app.PurposeSignIn).
	purpose string
}

func (s *Server) loginIDStep(c loginIDPage) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		flowID, f, ok := s.loadFlow(w, r)
		if !ok {
			return
		}
		if f.UserID != "" {
			httpx.NoStore(w)
			http.Redirect(w, r, "/flows/"+flowID, http.StatusSeeOther)
			return
		}
		d := codePageData{pageData: s.flowPage(flowID, f, modeSignIn), Action: "/flows/" + flowID + c.path, Back: "/flows/" + flowID,
			BackText: c.backText}
		if !d.PasswordOffered {
			// No password anywhere: this page is the sign-in page.
			d.Back = ""
			if f.Subject == "" {
				d.SignUpLink = "/flows/" + flowID + "?mode=signup"
			}
		}
		d.Title = c.title
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
			err = s.Service.StartFlowCode(r.Context(), flowID, f, c.purpose, id, s.CodeRequest(r))
		}
		if err != nil {
			s.codeFailed(w, r, "forgot", f.RedirectURI, &d, d.LoginID, err)
			return
		}
		httpx.NoStore(w)
		http.Redirect(w, r, "/flows/"+flowID+c.next, http.StatusSeeOther)
	}
}

// forgotStep is /flows/{flow}/forgot, behind "Forgot password?" on the
// sign-in page.
func (s *Server) forgotStep() loginIDPage {
	return loginIDPage{path: "/forgot", next: "/reset", title: "Forgot your password?", backText: "Back to sign in", purpose: app.PurposeReset}
}

// codeSignInStep is /flows/{flow}/signin-code, behind "Sign in with a code
// instead" on the sign-in page (when a login ID type offers codes).
func (s *Server) codeSignInStep() loginIDPage {
	return loginIDPage{path: "/signin-code", next: "/signin-code/verify", title: "Sign in with a code", backText: "Sign in with a password instead",
		purpose: app.PurposeSignIn}
}
