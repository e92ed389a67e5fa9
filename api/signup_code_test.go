package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/google/uuid"
	"github.com/idstream/idstream/eventstore"
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// Hosted passwordless accounts and sign-up by code (issue 20): "Create
// account with a code instead" on the promotion and sign-up pages, and a
// direct sign-up that goes through the code when the project requires
// verification.

// exchangeFrom reads the authorization code of a flow's last redirect and
// exchanges it: the user info of the new session.
func exchangeFrom(t *testing.T, c *apitest.Client, r apitest.Response, verifier string) apitest.Response {
	t.Helper()
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("no authorization code: %d %v %s", r.Status, r.Header, r.Raw)
	}
	tok := c.Exchange(loc.Query().Get("code"), verifier)
	return c.Userinfo(apitest.Str(tok.Body, "access_token"))
}

func emailScope(challenge, hint string) url.Values {
	return withScope(apitest.AuthorizeParams(challenge, hint), "openid offline_access email")
}

// TestHostedPasswordlessPromotion: with email codes offered, the hosted
// promotion page offers a code instead of a password; the guest keeps its
// sub, ends with no password and a verified address, and nothing is
// written before the code comes back.
func TestHostedPasswordlessPromotion(t *testing.T) {
	e := startOTP(t, emailCodes)
	c := apitest.NewClient(t, e.n)
	at, _ := apitest.Signup(t, c)
	sub := apitest.Str(c.Userinfo(at).Body, "sub")
	pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, bearerH(at))
	verifier, challenge := apitest.PKCE()
	page, csrf, p := c.HostedFlow(emailScope(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))))
	if !strings.Contains(p.Raw, `name="authenticator" value="oob_otp"`) || !strings.Contains(p.Raw, "Create account with a code instead") ||
		!strings.Contains(p.Raw, `id="password"`) {
		t.Fatalf("promotion page without the code button: %s", p.Raw)
	}
	before := apitest.LastSeq(t, e.n)
	// A username cannot take codes: an inline error, nothing written.
	if r := c.Submit(page, csrf, url.Values{"login_id": {"ada_lovelace"}, "authenticator": {"oob_otp"}}); r.Status != 400 ||
		!strings.Contains(r.Raw, `id="login_id-error"`) {
		t.Fatalf("username by code: %d %s", r.Status, r.Raw)
	}
	r := c.Submit(page, csrf, url.Values{"login_id": {"ada@example.com"}, "password": {"ignored-when-by-code"}, "authenticator": {"oob_otp"}})
	if r.Status != 303 || r.Header.Get("Location") != page+"/code" {
		t.Fatalf("submit: %d %v %s", r.Status, r.Header, r.Raw)
	}
	if apitest.LastSeq(t, e.n) != before {
		t.Fatal("events written before the code")
	}
	code := e.mail.WaitMail(t, 1).Code()
	if r := c.Submit(page+"/code", csrf, url.Values{"action": {"verify"}, "code": {fmt.Sprintf("%06d", (atoi(code)+1)%1000000)}}); r.Status != 400 ||
		!strings.Contains(r.Raw, "That code is not right") {
		t.Fatalf("wrong code: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, e.n) != before {
		t.Fatal("a wrong code wrote events")
	}
	info := exchangeFrom(t, c, c.Submit(page+"/code", csrf, url.Values{"action": {"verify"}, "code": {code}}), verifier)
	if apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false || info.Body["email_verified"] != true {
		t.Fatalf("after: %s", info.Raw)
	}
	u, _, err := e.n.Service.LoadUser(context.Background(), sub)
	if err != nil || u.PasswordHash() != "" || !u.IsVerified() {
		t.Fatalf("user: password %q verified %v %v", u.PasswordHash(), u.IsVerified(), err)
	}
	if _, err := e.n.Service.AuthenticatePassword(context.Background(), "", "ada@example.com", "ignored-when-by-code", "192.0.2.9", app.Meta{}); err == nil {
		t.Fatal("the password typed beside the code button was set")
	}
}

// TestHostedSignUpByCode: a passwordless sign-up and, under a required
// verification, one with a password, each through /signup-code; codes are
// bound to their flow, and a login ID claimed meanwhile writes nothing.
func TestHostedSignUpByCode(t *testing.T) {
	e := startOTP(t, func(c *config.Config) { emailCodes(c); required(c) })
	ctx := context.Background()
	signUpPage := func(c *apitest.Client) (page, csrf, verifier string) {
		t.Helper()
		verifier, challenge := apitest.PKCE()
		page, csrf, _ = c.HostedFlow(emailScope(challenge, ""))
		p := c.Do(http.MethodGet, page+"?mode=signup", "", "", nil)
		if p.Status != 200 || !strings.Contains(p.Raw, "Create account with a code instead") {
			t.Fatalf("sign-up page: %d %s", p.Status, p.Raw)
		}
		return page, csrf, verifier
	}

	t.Run("passwordless", func(t *testing.T) {
		c := apitest.NewClient(t, e.n)
		page, csrf, verifier := signUpPage(c)
		before, mails := apitest.LastSeq(t, e.n), len(e.mail.Mails())
		r := c.Submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"grace@example.com"}, "authenticator": {"oob_otp"}})
		if r.Status != 303 || r.Header.Get("Location") != page+"/signup-code" {
			t.Fatalf("submit: %d %v %s", r.Status, r.Header, r.Raw)
		}
		if apitest.LastSeq(t, e.n) != before {
			t.Fatal("events written before the code")
		}
		p := c.Do(http.MethodGet, page+"/signup-code", "", "", nil)
		if p.Status != 200 || !strings.Contains(p.Raw, "Enter the code we sent to grace@example.com") || strings.Contains(p.Raw, "<script") {
			t.Fatalf("code page: %d %s", p.Status, p.Raw)
		}
		m := e.mail.WaitMail(t, mails+1)
		if !strings.Contains(m.Text, "create your") {
			t.Fatalf("sign-up mail: %s", m.Text)
		}
		code := m.Code()
		if r := c.Submit(page+"/signup-code", csrf, url.Values{"action": {"resend"}}); r.Status != 429 {
			t.Fatalf("resend too soon: %d %s", r.Status, r.Raw)
		}
		if r := c.Submit(page+"/signup-code", csrf, url.Values{"action": {"verify"}, "code": {fmt.Sprintf("%06d", (atoi(code)+7)%1000000)}}); r.Status != 400 ||
			!strings.Contains(r.Raw, `id="code-error"`) {
			t.Fatalf("wrong code: %d %s", r.Status, r.Raw)
		}
		info := exchangeFrom(t, c, c.Submit(page+"/signup-code", csrf, url.Values{"action": {"verify"}, "code": {code}}), verifier)
		sub := apitest.Str(info.Body, "sub")
		if sub == "" || info.Body["is_anonymous"] != false || info.Body["email_verified"] != true {
			t.Fatalf("after: %s", info.Raw)
		}
		u, _, err := e.n.Service.LoadUser(ctx, sub)
		if err != nil || u.PasswordHash() != "" || !u.IsVerified() {
			t.Fatalf("user: %v %v", u.PasswordHash(), err)
		}
		testenv.Settle(t, e.n.Pool, e.n.Store, 10*time.Second)
		d, err := projections.GetUser(ctx, e.n.Pool, sub)
		if err != nil || len(d.Sessions) != 1 || d.Sessions[0].Method != domain.MethodEmailCode {
			t.Fatalf("sessions %+v %v", d.Sessions, err)
		}
		// The flow is over: its code page leads nowhere.
		if r := c.Submit(page+"/signup-code", csrf, url.Values{"action": {"verify"}, "code": {code}}); r.Status != 404 {
			t.Fatalf("spent flow: %d", r.Status)
		}
	})

	t.Run("password, verification required", func(t *testing.T) {
		c := apitest.NewClient(t, e.n)
		page, csrf, verifier := signUpPage(c)
		mails := len(e.mail.Mails())
		if r := c.Submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"hopper@example.com"}, "password": {"short"}}); r.Status != 400 ||
			!strings.Contains(r.Raw, `id="password-error"`) {
			t.Fatalf("weak password: %d %s", r.Status, r.Raw)
		}
		r := c.Submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"hopper@example.com"}, "password": {apitest.GoodPassword}})
		if r.Status != 303 || r.Header.Get("Location") != page+"/signup-code" {
			t.Fatalf("submit: %d %v %s", r.Status, r.Header, r.Raw)
		}
		code := e.mail.WaitMail(t, mails+1).Code()
		info := exchangeFrom(t, c, c.Submit(page+"/signup-code", csrf, url.Values{"action": {"verify"}, "code": {code}}), verifier)
		if info.Body["email_verified"] != true {
			t.Fatalf("after: %s", info.Raw)
		}
		if _, err := e.n.Service.AuthenticatePassword(ctx, "", "hopper@example.com", apitest.GoodPassword, "192.0.2.9", app.Meta{}); err != nil {
			t.Fatalf("the password does not sign in: %v", err)
		}
		// Without the code, the direct command refuses.
		id, _ := e.n.Service.ParseLoginID("", "other@example.com")
		if _, err := e.n.Service.Register(ctx, "idstream-dev", id, apitest.GoodPassword, "192.0.2.9", app.Meta{}); err == nil ||
			!strings.Contains(err.Error(), "needs the code") {
			t.Fatalf("register without a code: %v", err)
		}
	})

	t.Run("bound to the flow; first code back wins", func(t *testing.T) {
		c1, c2 := apitest.NewClient(t, e.n), apitest.NewClient(t, e.n)
		page1, csrf1, verifier1 := signUpPage(c1)
		page2, csrf2, _ := signUpPage(c2)
		mails := len(e.mail.Mails())
		for _, f := range [][2]string{{page1, csrf1}, {page2, csrf2}} {
			c := c1
			if f[0] == page2 {
				c = c2
			}
			if r := c.Submit(f[0], f[1], url.Values{"mode": {"signup"}, "login_id": {"lovelace@example.com"}, "authenticator": {"oob_otp"}}); r.Status != 303 {
				t.Fatalf("submit: %d %s", r.Status, r.Raw)
			}
		}
		code1 := e.mail.WaitMail(t, mails+1).Code()
		code2 := e.mail.WaitMail(t, mails+2).Code()
		if code1 != code2 {
			// One flow's code does not work in the other.
			if r := c2.Submit(page2+"/signup-code", csrf2, url.Values{"action": {"verify"}, "code": {code1}}); r.Status != 400 {
				t.Fatalf("another flow's code: %d %s", r.Status, r.Raw)
			}
		}
		info := exchangeFrom(t, c1, c1.Submit(page1+"/signup-code", csrf1, url.Values{"action": {"verify"}, "code": {code1}}), verifier1)
		if info.Body["email_verified"] != true {
			t.Fatalf("first: %s", info.Raw)
		}
		before := apitest.LastSeq(t, e.n)
		if r := c2.Submit(page2+"/signup-code", csrf2, url.Values{"action": {"verify"}, "code": {code2}}); r.Status != 409 || !strings.Contains(r.Raw, "already") ||
			!strings.Contains(r.Raw, `role="alert"`) || strings.Contains(r.Raw, "Send a new code") || !strings.Contains(r.Raw, "Use a different email address") {
			t.Fatalf("second, login ID taken: %d %s", r.Status, r.Raw)
		}
		if apitest.LastSeq(t, e.n) != before {
			t.Fatal("the loser wrote events")
		}
	})
}

// TestHostedCodeOnlyProject: when no login ID type offers a password, the
// forms ask for none, sign-in goes to the code page, and sign-up is by
// code.
func TestHostedCodeOnlyProject(t *testing.T) {
	e := startOTP(t, func(c *config.Config) {
		c.LoginIDTypes = []string{"email"}
		c.Verification.Authenticators = map[string][]string{"email": {"oob_otp"}}
	})
	c := apitest.NewClient(t, e.n)
	verifier, challenge := apitest.PKCE()
	r := c.Do(http.MethodGet, "/oauth2/authorize?"+emailScope(challenge, "").Encode(), "", "", nil)
	page := r.Header.Get("Location")
	if s := c.Do(http.MethodGet, page, "", "", nil); s.Status != 303 || s.Header.Get("Location") != page+"/signin-code" {
		t.Fatalf("sign-in without passwords: %d %v", s.Status, s.Header)
	}
	// The code sign-in page stands in for sign-in: it links sign-up, and
	// not "with a password instead".
	in := c.Do(http.MethodGet, page+"/signin-code", "", "", nil)
	if in.Status != 200 || !strings.Contains(in.Raw, `href="`+page+`?mode=signup"`) || strings.Contains(in.Raw, "password instead") {
		t.Fatalf("code sign-in page: %d %s", in.Status, in.Raw)
	}
	p := c.Do(http.MethodGet, page+"?mode=signup", "", "", nil)
	m := apitest.CSRFRe.FindStringSubmatch(p.Raw)
	if p.Status != 200 || m == nil || strings.Contains(p.Raw, `id="password"`) || !strings.Contains(p.Raw, `type="hidden" name="authenticator" value="oob_otp"`) ||
		strings.Contains(p.Raw, "Forgot password?") {
		t.Fatalf("sign-up page: %d %s", p.Status, p.Raw)
	}
	csrf := html.UnescapeString(m[1])
	if r := c.Submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"noether@example.com"}, "authenticator": {"oob_otp"}}); r.Status != 303 ||
		r.Header.Get("Location") != page+"/signup-code" {
		t.Fatalf("submit: %d %s", r.Status, r.Raw)
	}
	info := exchangeFrom(t, c, c.Submit(page+"/signup-code", csrf, url.Values{"action": {"verify"}, "code": {e.mail.WaitMail(t, 1).Code()}}), verifier)
	if info.Body["email_verified"] != true {
		t.Fatalf("after: %s", info.Raw)
	}
}

// TestCodeSignInReauthenticatesOnlyTheHintsUser: a flow with an
// id_token_hint (OpenID re-authentication) signed in to by code as
// another user ends with "re-authenticating", and no authorization code.
func TestCodeSignInReauthenticatesOnlyTheHintsUser(t *testing.T) {
	e := startOTP(t, emailCodes)
	c := apitest.NewClient(t, e.n)
	apitest.RegularUser(t, c, "ada@example.com")
	apitest.RegularUser(t, c, "bob@example.com")
	verifier, challenge := apitest.PKCE()
	page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	r := c.Submit(page, csrf, url.Values{"login_id": {"ada@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	tok := c.Exchange(loc.Query().Get("code"), verifier)
	hint := apitest.Str(tok.Body, "id_token")
	if hint == "" {
		t.Fatalf("no ID token: %s", tok.Raw)
	}
	_, challenge = apitest.PKCE()
	params := apitest.AuthorizeParams(challenge, "")
	params.Set("id_token_hint", hint)
	params.Set("prompt", "login")
	page, csrf, _ = c.HostedFlow(params)
	mails := len(e.mail.Mails())
	if r := c.Submit(page+"/signin-code", csrf, url.Values{"login_id": {"bob@example.com"}}); r.Status != 303 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	code := e.mail.WaitMail(t, mails+1).Code()
	r = c.Submit(page+"/signin-code/verify", csrf, url.Values{"action": {"verify"}, "code": {code}})
	if r.Status != 400 || !strings.Contains(r.Raw, "re-authenticating") || r.Header.Get("Location") != "" {
		t.Fatalf("code sign-in as another user: %d %v %s", r.Status, r.Header, r.Raw)
	}
}

// TestCodeReauthentication: an OpenID re-authentication signed in to by
// code as the hint's user records how (method email_code, as the schema
// says); a re-authentication code held across a password reset gives
// nothing.
func TestCodeReauthentication(t *testing.T) {
	e := startOTP(t, emailCodes)
	c := apitest.NewClient(t, e.n)
	sub := apitest.RegularUser(t, c, "ada@example.com")
	mails := 0
	reset := func(password string) {
		t.Helper()
		if r := c.PostJSON("/api/password/forgot", `{"client_id":"idstream-dev","login_id":"ada@example.com"}`, nil); r.Status != 200 {
			t.Fatalf("forgot: %d %s", r.Status, r.Raw)
		}
		mails++
		code := e.mail.WaitMail(t, mails).Code()
		if r := c.PostJSON("/api/password/reset", `{"client_id":"idstream-dev","login_id":"ada@example.com","code":"`+code+`","new_password":"`+password+`"}`, nil); r.Status != 200 {
			t.Fatalf("reset: %d %s", r.Status, r.Raw)
		}
	}
	// The address proved (a reset by code), so signing in by code later
	// keeps the password and the sessions.
	const pw = "a-new-secret-for-ada-7"
	reset(pw)
	verifier, challenge := apitest.PKCE()
	page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	r := c.Submit(page, csrf, url.Values{"login_id": {"ada@example.com"}, "password": {pw}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	tok := c.Exchange(loc.Query().Get("code"), verifier)
	hint := apitest.Str(tok.Body, "id_token")
	var idt struct {
		SID string `json:"sid"`
	}
	if parts := strings.Split(hint, "."); len(parts) == 3 {
		raw, _ := base64.RawURLEncoding.DecodeString(parts[1])
		_ = json.Unmarshal(raw, &idt)
	}
	sid := idt.SID
	if hint == "" || sid == "" {
		t.Fatalf("no ID token: %s", tok.Raw)
	}
	reauth := func() (page, csrf, verifier string) {
		t.Helper()
		verifier, challenge := apitest.PKCE()
		params := apitest.AuthorizeParams(challenge, "")
		params.Set("id_token_hint", hint)
		params.Set("prompt", "login")
		page, csrf, _ = c.HostedFlow(params)
		return page, csrf, verifier
	}
	page, csrf, verifier = reauth()
	if r := c.Submit(page+"/signin-code", csrf, url.Values{"login_id": {"ada@example.com"}}); r.Status != 303 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	mails++
	code := e.mail.WaitMail(t, mails).Code()
	r = c.Submit(page+"/signin-code/verify", csrf, url.Values{"action": {"verify"}, "code": {code}})
	loc, _ = url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc.Query().Get("code") == "" {
		t.Fatalf("re-authentication by code: %d %s", r.Status, r.Raw)
	}
	if tok := c.Exchange(loc.Query().Get("code"), verifier); tok.Status != 200 {
		t.Fatalf("exchange: %d %s", tok.Status, tok.Raw)
	}
	recs, _, err := e.n.Store.Load(context.Background(), e.n.Store.Subject("session", sid))
	if err != nil {
		t.Fatal(err)
	}
	last := recs[len(recs)-1]
	if last.Type != "session.reauthenticated.v1" || !strings.Contains(string(last.Data), `"method":"email_code"`) {
		t.Fatalf("the session's last event: %s %s", last.Type, last.Data)
	}

	// Signed in again by password, the code held; then the password is reset.
	page, csrf, verifier = reauth()
	r = c.Submit(page, csrf, url.Values{"login_id": {"ada@example.com"}, "password": {pw}})
	loc, _ = url.Parse(r.Header.Get("Location"))
	held := loc.Query().Get("code")
	if r.Status != 302 || held == "" {
		t.Fatalf("re-authentication by password: %d %s", r.Status, r.Raw)
	}
	// A reset lands whose session revocations are not written yet (a user
	// with more sessions than one append revokes): only the user's own
	// event says the session ended, and the exchange reads it there.
	ctx := context.Background()
	userSubject := e.n.Store.Subject("user", sub)
	_, version, err := e.n.Store.Load(ctx, userSubject)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(domain.PasswordReset{UserID: sub, LoginIDType: "email", LoginID: "ada@example.com", ResetAt: e.n.Clock.Now()})
	if _, err := e.n.Store.Append(ctx, eventstore.Message{Subject: userSubject, ExpectedLastSubjectSequence: version,
		Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: domain.TypePasswordReset, OccurredAt: e.n.Clock.Now(), Data: data}}); err != nil {
		t.Fatal(err)
	}
	if tok := c.Exchange(held, verifier); tok.Status != 400 || apitest.Str(tok.Body, "error") != "invalid_grant" || tok.Reason() != "SessionRevoked" {
		t.Fatalf("a re-authentication code held across a reset: %d %s", tok.Status, tok.Raw)
	}
}

// TestHostedPasswordForACodeOnlyType: where email addresses sign in by code
// only but usernames take passwords, the sign-up page has a password field;
// a password typed beside an email address is refused with words, not
// dropped (the account would have been passwordless without saying so).
func TestHostedPasswordForACodeOnlyType(t *testing.T) {
	e := startOTP(t, func(c *config.Config) {
		c.LoginIDTypes = []string{"email", "username"}
		c.Verification.Authenticators = map[string][]string{"email": {"oob_otp"}, "username": {"password"}}
	})
	c := apitest.NewClient(t, e.n)
	_, challenge := apitest.PKCE()
	r := c.Do(http.MethodGet, "/oauth2/authorize?"+emailScope(challenge, "").Encode(), "", "", nil)
	page := r.Header.Get("Location")
	p := c.Do(http.MethodGet, page+"?mode=signup", "", "", nil)
	m := apitest.CSRFRe.FindStringSubmatch(p.Raw)
	if p.Status != 200 || m == nil || !strings.Contains(p.Raw, `id="password"`) {
		t.Fatalf("sign-up page: %d %s", p.Status, p.Raw)
	}
	csrf := html.UnescapeString(m[1])
	if r := c.Submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"noether@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 400 ||
		!strings.Contains(r.Raw, "cannot be used this way") {
		t.Fatalf("a password for a code-only email: %d %s", r.Status, r.Raw)
	}
	if n := len(e.mail.Mails()); n != 0 {
		t.Fatalf("%d mails sent for a refused sign-up", n)
	}
	// Without the password, the same address goes on to its code.
	if r := c.Submit(page, csrf, url.Values{"mode": {"signup"}, "login_id": {"noether@example.com"}}); r.Status != 303 || r.Header.Get("Location") != page+"/signup-code" {
		t.Fatalf("without a password: %d %s", r.Status, r.Raw)
	}
}
