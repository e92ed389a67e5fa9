package api_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/workers"
)

// smsInbox is an SMS webhook receiver: it checks every signature and keeps
// the texts; numbers in refuse are answered 422.
type smsInbox struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	texts  []map[string]string
	refuse map[string]bool
	bad    int
}

func startSMSInbox(t *testing.T) *smsInbox {
	in := &smsInbox{secret: "sms-webhook-secret-0123456789abcdef", refuse: map[string]bool{}}
	in.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		in.mu.Lock()
		defer in.mu.Unlock()
		if !delivery.VerifySignature(in.secret, r.Header.Get(delivery.SignatureHeader), body, time.Now(), time.Minute) {
			in.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p map[string]string
		_ = json.Unmarshal(body, &p)
		if in.refuse[p["to"]] {
			w.WriteHeader(http.StatusUnprocessableEntity)
			return
		}
		in.texts = append(in.texts, p)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *smsInbox) count() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.texts)
}

func (in *smsInbox) wait(t *testing.T, n int) map[string]string {
	t.Helper()
	testenv.WaitFor(t, "text message", 10*time.Second, func() bool { return in.count() >= n })
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.texts[n-1]
}

var sixDigitCode = regexp.MustCompile(`^\d{6}`)

// otpEnv is a node whose codes go out through a real SMTP server (STARTTLS,
// a test certificate, AUTH) and a signed SMS webhook, both on loopback.
type otpEnv struct {
	n    *testenv.Node
	mail *testenv.SMTPServer
	sms  *smsInbox
}

func startOTP(t *testing.T, configure func(*config.Config)) otpEnv {
	t.Helper()
	mail := testenv.StartSMTP(t, testenv.SMTPOptions{Username: "idstream", Password: "smtp-password-1"})
	sms := startSMSInbox(t)
	mailer, err := delivery.NewSMTP(delivery.SMTPOptions{Host: "127.0.0.1", Port: mail.Port, TLS: delivery.TLSStartTLS,
		Username: "idstream", Password: "smtp-password-1", From: "no-reply@idstream.test",
		TLSConfig: &tls.Config{RootCAs: mail.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatal(err)
	}
	router := delivery.Router{Email: mailer, SMS: delivery.TextSender{Provider: delivery.Webhook{URL: sms.srv.URL, Secret: sms.secret}}}
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Delivery: router, Configure: func(c *config.Config) {
		cheapHashes(c)
		if configure != nil {
			configure(c)
		}
	}})
	t.Cleanup(func() { noCodeInLogs(t, n, mail, sms) })
	return otpEnv{n: n, mail: mail, sms: sms}
}

// noCodeInLogs: no code that was sent appears in the node's log (the time
// field, whose digits could match by chance, aside).
func noCodeInLogs(t *testing.T, n *testenv.Node, mail *testenv.SMTPServer, sms *smsInbox) {
	var codes []string
	for _, m := range mail.Mails() {
		if c := m.Code(); c != "" {
			codes = append(codes, c)
		}
	}
	sms.mu.Lock()
	for _, p := range sms.texts {
		codes = append(codes, p["code"])
	}
	sms.mu.Unlock()
	for _, line := range strings.Split(n.Logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) != nil {
			continue
		}
		delete(m, "time")
		raw, _ := json.Marshal(m)
		for _, c := range codes {
			if regexp.MustCompile(`(^|[^0-9])` + c + `([^0-9]|$)`).Match(raw) {
				t.Errorf("a one-time code is in the log: %s", strings.ReplaceAll(string(raw), c, "[CODE]"))
			}
		}
	}
}

func bearerH(at string) map[string]string { return map[string]string{"Authorization": "Bearer " + at} }

func TestVerifyEmailThroughRealSMTP(t *testing.T) {
	e := startOTP(t, nil)
	c := newClient(t, e.n)
	at, _ := signup(t, c)
	r := c.promote(at, "ada@example.com", goodPassword)
	if r.status != 200 {
		t.Fatalf("promote: %d %s", r.status, r.raw)
	}
	at = str(r.result(), "access_token")
	info := c.userinfo(at)
	if info.body["is_verified"] != false || info.body["email_verified"] != false {
		t.Fatalf("before: %s", info.raw)
	}
	r = c.postJSON("/api/verification/start", `{}`, bearerH(at))
	if r.status != 200 || str(r.result(), "sent_to") != "ada@example.com" || str(r.result(), "channel") != "email" {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	m := e.mail.WaitMail(t, 1)
	if !m.TLS || !m.Authed || m.To[0] != "ada@example.com" || m.Header.Get("From") != `"idstream (development)" <no-reply@idstream.test>` && !strings.Contains(m.Header.Get("From"), "no-reply@idstream.test") {
		t.Fatalf("mail: tls %v auth %v to %v from %q", m.TLS, m.Authed, m.To, m.Header.Get("From"))
	}
	code := m.Code()
	if !sixDigitCode.MatchString(code) {
		t.Fatalf("no code in %q", m.Text)
	}
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
	if r := c.postJSON("/api/verification/verify", `{"code":"`+wrong+`"}`, bearerH(at)); r.status != 400 || r.reason() != "InvalidCode" {
		t.Fatalf("wrong code: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/api/verification/verify", `{"code":"`+code+`"}`, bearerH(at)); r.status != 200 || r.result()["is_verified"] != true {
		t.Fatalf("right code: %d %s", r.status, r.raw)
	}
	info = c.userinfo(at)
	if info.body["is_verified"] != true || info.body["https://authgear.com/claims/user/is_verified"] != true || info.body["email_verified"] != true {
		t.Fatalf("after: %s", info.raw)
	}
	if r := c.postJSON("/api/verification/verify", `{"code":"`+code+`"}`, bearerH(at)); r.status == 200 {
		t.Fatalf("a reused code worked: %s", r.raw)
	}
	if r := c.postJSON("/api/verification/start", `{}`, bearerH(at)); r.status != 409 || r.reason() != "AlreadyVerified" {
		t.Fatalf("again: %d %s", r.status, r.raw)
	}
	if n := len(e.mail.Mails()); n != 1 {
		t.Fatalf("%d mails", n)
	}
	// The read model and so the admin API and exports know it.
	testenv.Settle(t, e.n.Pool, e.n.Store, 10*time.Second)
	d, err := projections.GetUser(context.Background(), e.n.Pool, str(info.body, "sub"))
	if err != nil || !d.EmailVerified || d.PhoneVerified {
		t.Fatalf("read model: email %v phone %v %v", d.EmailVerified, d.PhoneVerified, err)
	}
	var csv strings.Builder
	if _, err := workers.WriteUsers(context.Background(), e.n.Pool, &csv, workers.FormatCSV, []string{"login_id", "email_verified", "phone_verified"}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(csv.String(), "ada@example.com,true,false") {
		t.Fatalf("export: %s", csv.String())
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func required(c *config.Config) { c.Verification.Promotion = domain.VerifyRequired }

func TestPromotionRequiresTheCode(t *testing.T) {
	e := startOTP(t, required)
	a, b := newClient(t, e.n), newClient(t, e.n)
	atA, _ := signup(t, a)
	atB, _ := signup(t, b)
	subA := str(a.userinfo(atA).body, "sub")
	if r := a.promote(atA, "ada@example.com", goodPassword); r.status != 403 || r.reason() != "VerificationRequired" {
		t.Fatalf("plain promote: %d %s", r.status, r.raw)
	}
	body := `{"login_id":"ada@example.com","password":"` + goodPassword + `"}`
	if r := a.postJSON("/api/anonymous_user/promote/start", body, bearerH(atA)); r.status != 200 {
		t.Fatalf("start A: %d %s", r.status, r.raw)
	}
	codeA := e.mail.WaitMail(t, 1).Code()
	// Until the code comes back the guest is a guest and the login ID free:
	// B may start for it too.
	if info := a.userinfo(atA); info.body["is_anonymous"] != true {
		t.Fatalf("A promoted before the code: %s", info.raw)
	}
	if r := b.postJSON("/api/anonymous_user/promote/start", body, bearerH(atB)); r.status != 200 {
		t.Fatalf("start B: %d %s", r.status, r.raw)
	}
	codeB := e.mail.WaitMail(t, 2).Code()
	if codeA == codeB {
		t.Skip("the two codes are equal by chance")
	}
	// Codes are bound to their guest: A cannot use B's.
	if r := a.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+codeB+`"}`, bearerH(atA)); r.reason() != "InvalidCode" {
		t.Fatalf("B's code for A: %d %s", r.status, r.raw)
	}
	r := a.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+codeA+`"}`, bearerH(atA))
	if r.status != 200 || str(r.result(), "access_token") == "" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("verify A: %d %v %s", r.status, r.header, r.raw)
	}
	info := a.userinfo(str(r.result(), "access_token"))
	if str(info.body, "sub") != subA || info.body["is_anonymous"] != false || info.body["is_verified"] != true {
		t.Fatalf("A after: %s", info.raw)
	}
	if a.userinfo(atA).status != 401 {
		t.Fatal("the guest's session survived the promotion")
	}
	// B's code is right, but the login ID is A's now: B stays a guest.
	if r := b.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+codeB+`"}`, bearerH(atB)); r.status != 409 || r.reason() != "LoginIDTaken" {
		t.Fatalf("verify B: %d %s", r.status, r.raw)
	}
	if info := b.userinfo(atB); info.body["is_anonymous"] != true {
		t.Fatalf("B changed: %s", info.raw)
	}
	u, _, err := e.n.Service.LoadUser(context.Background(), subA)
	if err != nil || !u.LoginIDVerified("email", "ada@example.com") || u.PasswordHash() == "" {
		t.Fatalf("A in the log: verified %v hash %v %v", u.IsVerified(), u.PasswordHash() != "", err)
	}
}

func TestCodeAbuse(t *testing.T) {
	e := startOTP(t, func(c *config.Config) {
		required(c)
		c.Verification.SendPerTarget = domain.RateLimitSetting{Burst: 3, Per: 3600}
	})
	c := newClient(t, e.n)
	at, _ := signup(t, c)
	start := func(loginID string) response {
		return c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"`+loginID+`","password":"`+goodPassword+`"}`, bearerH(at))
	}
	verify := func(loginID, code string) response {
		return c.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"`+loginID+`","code":"`+code+`"}`, bearerH(at))
	}
	if r := start("ada@example.com"); r.status != 200 {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	code := e.mail.WaitMail(t, 1).Code()

	// Resend within the cooldown: refused, with Retry-After.
	r := c.postJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at))
	if r.status != 429 || r.reason() != "ResendTooSoon" || r.header.Get("Retry-After") == "" {
		t.Fatalf("resend too soon: %d %s", r.status, r.raw)
	}
	// A code for another target, another flow, malformed codes.
	if r := verify("bob@example.com", code); r.reason() != "InvalidCode" {
		t.Fatalf("another target: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/api/verification/verify", `{"code":"`+code+`"}`, bearerH(at)); r.status == 200 {
		t.Fatalf("another flow: %d %s", r.status, r.raw)
	}
	if r := verify("ada@example.com", "12345"); r.reason() != "InvalidCode" {
		t.Fatalf("five digits: %d %s", r.status, r.raw)
	}
	// Five wrong codes end it: the right one no longer works.
	wrong := fmt.Sprintf("%06d", (atoi(code)+7)%1000000)
	for i := 2; i <= 4; i++ {
		if r := verify("ada@example.com", wrong); r.reason() != "InvalidCode" {
			t.Fatalf("wrong %d: %d %s", i, r.status, r.raw)
		}
	}
	if r := verify("ada@example.com", wrong); r.reason() != "CodeAttemptsExceeded" {
		t.Fatalf("fifth wrong: %d %s", r.status, r.raw)
	}
	if r := verify("ada@example.com", code); r.status == 200 {
		t.Fatalf("the right code worked after five wrong ones: %s", r.raw)
	}
	if info := c.userinfo(at); info.body["is_anonymous"] != true {
		t.Fatalf("changed by failed attempts: %s", info.raw)
	}
	// Expired.
	if r := start("ada@example.com"); r.status != 200 {
		t.Fatalf("start 2: %d %s", r.status, r.raw)
	}
	code = e.mail.WaitMail(t, 2).Code()
	e.n.Clock.Advance(11 * time.Minute)
	if r := verify("ada@example.com", code); r.reason() != "CodeExpired" {
		t.Fatalf("expired: %d %s", r.status, r.raw)
	}
	// A resend replaces the code: the old one stops working.
	if r := start("ada@example.com"); r.status != 200 {
		t.Fatalf("start 3: %d %s", r.status, r.raw)
	}
	old := e.mail.WaitMail(t, 3).Code()
	e.n.Clock.Advance(61 * time.Second)
	// The per-target limit (3 per hour) holds the fourth send.
	if r := c.postJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at)); r.status != 429 || r.reason() != "RateLimited" {
		t.Fatalf("fourth send: %d %s", r.status, r.raw)
	}
	if r := verify("ada@example.com", old); r.status != 200 {
		t.Fatalf("the pending code after a refused resend: %d %s", r.status, r.raw)
	}
	if n := len(e.mail.Mails()); n != 3 {
		t.Fatalf("%d mails, want 3", n)
	}
}

func TestResendReplacesTheCode(t *testing.T) {
	e := startOTP(t, required)
	c := newClient(t, e.n)
	at, _ := signup(t, c)
	if r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"ada@example.com","password":"`+goodPassword+`"}`, bearerH(at)); r.status != 200 {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	first := e.mail.WaitMail(t, 1).Code()
	e.n.Clock.Advance(61 * time.Second)
	if r := c.postJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at)); r.status != 200 {
		t.Fatalf("resend: %d %s", r.status, r.raw)
	}
	second := e.mail.WaitMail(t, 2).Code()
	if first != second {
		if r := c.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+first+`"}`, bearerH(at)); r.reason() != "InvalidCode" {
			t.Fatalf("the replaced code: %d %s", r.status, r.raw)
		}
	}
	if r := c.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+second+`"}`, bearerH(at)); r.status != 200 {
		t.Fatalf("the new code: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/api/anonymous_user/promote/resend", `{"login_id":"nobody@example.com"}`, bearerH(at)); r.status != 400 && r.status != 401 {
		t.Fatalf("resend with nothing pending: %d %s", r.status, r.raw)
	}
}

func passwordlessPhone(c *config.Config) {
	c.Verification.Authenticators = map[string][]string{"email": {"password"}, "phone": {"oob_otp"}, "username": {"password"}}
}

func TestPasswordlessPhoneBySignedWebhook(t *testing.T) {
	e := startOTP(t, passwordlessPhone)
	c := newClient(t, e.n)
	at, _ := signup(t, c)
	sub := str(c.userinfo(at).body, "sub")
	// Phone offers codes only: a password promotion is refused.
	if r := c.promote(at, "+14155552671", goodPassword); r.status != 400 || r.reason() != "AuthenticatorNotOffered" {
		t.Fatalf("password for phone: %d %s", r.status, r.raw)
	}
	e.sms.mu.Lock()
	e.sms.refuse["+14155550000"] = true
	e.sms.mu.Unlock()
	r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"+14155550000"}`, bearerH(at))
	if r.status != 400 || r.reason() != "InvalidRecipient" {
		t.Fatalf("refused number: %d %s", r.status, r.raw)
	}
	r = c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"+1 415 555 2671"}`, bearerH(at))
	if r.status != 200 || str(r.result(), "channel") != "sms" || str(r.result(), "sent_to") != "+14155552671" {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	text := e.sms.wait(t, 1)
	if text["to"] != "+14155552671" || !strings.HasPrefix(text["body"], text["code"]) {
		t.Fatalf("text %v", text)
	}
	r = c.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"+14155552671","code":"`+text["code"]+`"}`, bearerH(at))
	if r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	info := c.userinfo(str(r.result(), "access_token"))
	if str(info.body, "sub") != sub || info.body["is_anonymous"] != false || info.body["phone_number_verified"] != true {
		t.Fatalf("after: %s", info.raw)
	}
	u, _, _ := e.n.Service.LoadUser(context.Background(), sub)
	if u.PasswordHash() != "" {
		t.Fatal("a passwordless promotion stored a password")
	}

	// Sign in again with a code; an unknown number gets the same answer
	// and no message.
	other := newClient(t, e.n)
	unknown := other.postJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"+14155559999"}`, nil)
	known := other.postJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"+14155552671"}`, nil)
	if unknown.status != 200 || known.status != 200 || len(unknown.result()) != len(known.result()) {
		t.Fatalf("start: %d %s / %d %s", unknown.status, unknown.raw, known.status, known.raw)
	}
	text = e.sms.wait(t, 2)
	if text["to"] != "+14155552671" || text["kind"] != "sign_in" {
		t.Fatalf("text %v", text)
	}
	// The code works for the sign-in flow only, and for its number only.
	if r := other.postJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"+14155559999","code":"`+text["code"]+`","session_type":"refresh_token"}`, nil); r.reason() != "InvalidCode" {
		t.Fatalf("unknown number: %d %s", r.status, r.raw)
	}
	r = other.postJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"+14155552671","code":"`+text["code"]+`","session_type":"refresh_token"}`, nil)
	if r.status != 200 || str(other.userinfo(str(r.result(), "access_token")).body, "sub") != sub {
		t.Fatalf("sign in: %d %s", r.status, r.raw)
	}
	// Within the cooldown the unknown number answers as the known one.
	u1 := other.postJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"+14155559999"}`, nil)
	if u1.status != 429 || u1.reason() != "ResendTooSoon" {
		t.Fatalf("unknown number within the cooldown: %d %s", u1.status, u1.raw)
	}
	time.Sleep(100 * time.Millisecond) // async sends, if any were wrongly made, would have arrived
	if n := e.sms.count(); n != 2 {
		t.Fatalf("%d texts, want 2", n)
	}
	if e.sms.bad != 0 {
		t.Fatalf("%d unsigned webhook calls", e.sms.bad)
	}
	// Email offers passwords only: no code sign-in.
	if r := other.postJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"ada@example.com"}`, nil); r.reason() != "AuthenticatorNotOffered" {
		t.Fatalf("email code sign-in: %d %s", r.status, r.raw)
	}
}

func TestForgottenPassword(t *testing.T) {
	e := startOTP(t, nil)
	c := newClient(t, e.n)
	sub := regularUser(t, c, "ada@example.com")
	// A second session of the user, by password sign-in.
	iss, err := e.n.Service.StartSession(context.Background(), sub, app.NewSession{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken, Method: domain.MethodPassword}, app.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RecordSecret("refresh token", iss.SessionToken)
	testenv.RecordSecret("access token", iss.AccessToken)

	unknown := c.postJSON("/api/password/forgot", `{"client_id":"idstream-dev","login_id":"nobody@example.com"}`, nil)
	known := c.postJSON("/api/password/forgot", `{"client_id":"idstream-dev","login_id":"Ada@Example.com"}`, nil)
	if unknown.status != 200 || known.status != 200 || len(unknown.result()) != len(known.result()) {
		t.Fatalf("forgot: %d %s / %d %s", unknown.status, unknown.raw, known.status, known.raw)
	}
	m := e.mail.WaitMail(t, 1)
	if m.To[0] != "ada@example.com" || !strings.Contains(m.Header.Get("Subject"), "Reset") {
		t.Fatalf("mail to %v: %q", m.To, m.Header.Get("Subject"))
	}
	code := m.Code()
	reset := func(loginID, code, pw string) response {
		return c.postJSON("/api/password/reset", fmt.Sprintf(`{"client_id":"idstream-dev","login_id":%q,"code":%q,"new_password":%q}`, loginID, code, pw), nil)
	}
	if r := reset("nobody@example.com", code, "a-brand-new-secret-7"); r.reason() != "InvalidCode" {
		t.Fatalf("unknown address: %d %s", r.status, r.raw)
	}
	// The policy is checked before the code is spent.
	if r := reset("ada@example.com", code, "qwertyuiop"); r.reason() != "PasswordTooCommon" && r.reason() != "PasswordPolicy" {
		t.Fatalf("weak password: %d %s", r.status, r.raw)
	}
	if r := reset("ada@example.com", code, "a-brand-new-secret-7"); r.status != 200 {
		t.Fatalf("reset: %d %s", r.status, r.raw)
	}
	if r := reset("ada@example.com", code, "another-new-secret-8"); r.status == 200 {
		t.Fatal("a reset code worked twice")
	}
	// Every session ended.
	if r := refresh(c, iss.SessionToken); r.status == 200 {
		t.Fatalf("an old session refreshed: %s", r.raw)
	}
	if c.userinfo(iss.AccessToken).status != 401 {
		t.Fatal("an old access token still works at userinfo")
	}
	ctx := context.Background()
	if _, err := e.n.Service.AuthenticatePassword(ctx, "", "ada@example.com", goodPassword, "192.0.2.1", app.Meta{}); err == nil {
		t.Fatal("the old password still signs in")
	}
	u, err := e.n.Service.AuthenticatePassword(ctx, "", "ada@example.com", "a-brand-new-secret-7", "192.0.2.1", app.Meta{})
	if err != nil || u.UserID() != sub || !u.IsVerified() {
		t.Fatalf("new password: %v verified %v", err, u.IsVerified())
	}
	if n := len(e.mail.Mails()); n != 1 {
		t.Fatalf("%d mails: a message went to an unknown address", n)
	}
}

func TestDeliveryFailureLeavesNothingHalfDone(t *testing.T) {
	mail := testenv.StartSMTP(t, testenv.SMTPOptions{})
	mailer, err := delivery.NewSMTP(delivery.SMTPOptions{Host: "127.0.0.1", Port: mail.Port, TLS: delivery.TLSStartTLS, From: "no-reply@idstream.test",
		TLSConfig: &tls.Config{RootCAs: mail.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	mail.Close() // the mail server is down
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Delivery: delivery.Router{Email: mailer}, Configure: func(c *config.Config) {
		cheapHashes(c)
		required(c)
	}})
	c := newClient(t, n)
	at, _ := signup(t, c)
	r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"ada@example.com","password":"`+goodPassword+`"}`, bearerH(at))
	if r.status != 502 || r.reason() != "DeliveryFailed" {
		t.Fatalf("SMTP down: %d %s", r.status, r.raw)
	}
	// No code is left behind (no cooldown, nothing to resend) and nothing
	// is claimed: another guest promotes to the address.
	if r := c.postJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at)); r.reason() != "NoCodePending" {
		t.Fatalf("resend after a failure: %d %s", r.status, r.raw)
	}
	if info := c.userinfo(at); info.body["is_anonymous"] != true {
		t.Fatalf("guest changed: %s", info.raw)
	}
	id, _ := loginid.Parse(loginid.Email, "ada@example.com")
	recs, _, err := n.Store.Load(context.Background(), n.Store.Subject("loginid", id.Key()))
	if err != nil || len(recs) != 0 {
		t.Fatalf("the login ID subject has %d events (%v)", len(recs), err)
	}
	// SMS is not configured at all.
	if r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"+14155552671","password":"`+goodPassword+`"}`, bearerH(at)); r.status != 503 || r.reason() != "DeliveryNotConfigured" {
		t.Fatalf("no SMS provider: %d %s", r.status, r.raw)
	}
	// Header injection and usernames never reach delivery.
	if r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"ada@example.com\r\nBcc: eve@example.com","password":"`+goodPassword+`"}`, bearerH(at)); r.status != 400 {
		t.Fatalf("injection: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"ada_lovelace","password":"`+goodPassword+`"}`, bearerH(at)); r.reason() != "NoCodeChannel" {
		t.Fatalf("username: %d %s", r.status, r.raw)
	}
}

func TestInternationalisedAddress(t *testing.T) {
	e := startOTP(t, required)
	c := newClient(t, e.n)
	at, _ := signup(t, c)
	r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"jürgen@bücher.example","password":"`+goodPassword+`"}`, bearerH(at))
	if r.status != 200 {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	m := e.mail.WaitMail(t, 1)
	if m.To[0] != "jürgen@xn--bcher-kva.example" {
		t.Fatalf("RCPT TO %q", m.To)
	}
	if r := c.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"jürgen@bücher.example","code":"`+m.Code()+`"}`, bearerH(at)); r.status != 200 {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
}

// TestCodeSingleUseAcrossNodes: one right code presented at once on two
// nodes (sharing NATS and PostgreSQL) verifies once.
func TestCodeSingleUseAcrossNodes(t *testing.T) {
	e := startOTP(t, required)
	dbURL := e.n.Config.DatabaseURL
	other := testenv.StartNode(t, nil, testenv.NodeOptions{DatabaseURL: dbURL, NATSURL: e.n.Config.NATS.URL, Configure: func(c *config.Config) {
		cheapHashes(c)
		required(c)
	}})
	for round := range 5 {
		c := newClient(t, e.n)
		at, _ := signup(t, c)
		login := fmt.Sprintf("race%d@example.com", round)
		if r := c.postJSON("/api/anonymous_user/promote/start", `{"login_id":"`+login+`","password":"`+goodPassword+`"}`, bearerH(at)); r.status != 200 {
			t.Fatalf("start: %d %s", r.status, r.raw)
		}
		code := e.mail.WaitMail(t, round+1).Code()
		clients := []*client{newClient(t, e.n), newClient(t, other), newClient(t, e.n), newClient(t, other)}
		results := make([]response, len(clients))
		var wg sync.WaitGroup
		for i, cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = cl.postJSON("/api/anonymous_user/promote/verify", `{"login_id":"`+login+`","code":"`+code+`"}`, bearerH(at))
			}()
		}
		wg.Wait()
		ok := 0
		for _, r := range results {
			switch {
			case r.status == 200:
				ok++
			case r.reason() == "InvalidCode", r.reason() == "NotAnonymous", r.reason() == "SessionRevoked", r.reason() == "InvalidToken":
			default:
				t.Fatalf("round %d: unexpected %d %s", round, r.status, r.raw)
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d verifications succeeded, want 1", round, ok)
		}
	}
}

var codeFormAction = regexp.MustCompile(`action="(/flows/[^"]+)"`)

// TestHostedPromotionWithCode: the hosted promotion page under a required
// verification goes through "Enter the code we sent to …" in both session
// modes; the code flow writes at the exchange, with the verification.
func TestHostedPromotionWithCode(t *testing.T) {
	e := startOTP(t, required)
	for _, mode := range []string{"code", "cookie"} {
		t.Run(mode, func(t *testing.T) {
			c := newClient(t, e.n)
			var at string
			var h map[string]string
			if mode == "code" {
				at, _ = signup(t, c)
				h = bearerH(at)
			} else if r := c.postJSON("/api/anonymous_user/signup", cookieSignup, nil); r.status != 200 {
				t.Fatalf("cookie signup: %d %s", r.status, r.raw)
			}
			pc := c.postJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, h)
			verifier, challenge := pkce()
			params := authorizeParams(challenge, promotionHint(str(pc.result(), "promotion_code")))
			if mode == "cookie" {
				params.Set("response_type", "none")
				params.Del("code_challenge")
				params.Del("code_challenge_method")
			}
			page, csrf, _ := c.hostedFlow(params)
			login := mode + "-hosted@example.com"
			before := lastSeq(t, e.n)
			r := c.submit(page, csrf, url.Values{"login_id": {login}, "password": {goodPassword}})
			if r.status != 303 || r.header.Get("Location") != page+"/code" {
				t.Fatalf("submit: %d %v %s", r.status, r.header, r.raw)
			}
			if lastSeq(t, e.n) != before {
				t.Fatal("events written before the code")
			}
			p := c.do(http.MethodGet, page+"/code", "", "", nil)
			if p.status != 200 || !strings.Contains(p.raw, "Enter the code we sent to "+login) || !strings.Contains(p.raw, "Send a new code") ||
				!strings.Contains(p.raw, "Use a different email address") || strings.Contains(p.raw, "<script") ||
				!strings.Contains(p.header.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Fatalf("code page: %d %s", p.status, p.raw)
			}
			mails := len(e.mail.Mails())
			code := e.mail.WaitMail(t, mails).Code()
			if r := c.postForm(page+"/code", url.Values{"action": {"verify"}, "code": {code}}); r.status != 403 {
				t.Fatalf("no CSRF token: %d", r.status)
			}
			if r := c.submit(page+"/code", csrf, url.Values{"action": {"resend"}}); r.status != 429 || !strings.Contains(r.raw, "ask for a new one in") {
				t.Fatalf("resend too soon: %d %s", r.status, r.raw)
			}
			wrong := fmt.Sprintf("%06d", (atoi(code)+3)%1000000)
			if r := c.submit(page+"/code", csrf, url.Values{"action": {"verify"}, "code": {wrong}}); r.status != 400 ||
				!strings.Contains(r.raw, `aria-invalid="true"`) || !strings.Contains(r.raw, "That code is not right") {
				t.Fatalf("wrong code: %d %s", r.status, r.raw)
			}
			r = c.submit(page+"/code", csrf, url.Values{"action": {"verify"}, "code": {code[:3] + " " + code[3:]}})
			loc, _ := url.Parse(r.header.Get("Location"))
			if r.status != 302 || loc == nil || loc.Host != "localhost:3000" {
				t.Fatalf("verify: %d %v %s", r.status, r.header, r.raw)
			}
			var info response
			if mode == "code" {
				tok := c.exchange(loc.Query().Get("code"), verifier)
				info = c.userinfo(str(tok.body, "access_token"))
			} else {
				info = c.do(http.MethodGet, "/oauth2/userinfo", "", "", nil)
			}
			if info.body["is_anonymous"] != false || info.body["is_verified"] != true || info.body["email_verified"] != true {
				t.Fatalf("after: %s", info.raw)
			}
		})
	}
}

// TestHostedForgottenPassword: "Forgot password?" on the sign-in page, the
// same pages whether anybody holds the login ID, and the new password
// signs in.
func TestHostedForgottenPassword(t *testing.T) {
	e := startOTP(t, nil)
	c := newClient(t, e.n)
	sub := regularUser(t, c, "ada@example.com")
	_, challenge := pkce()
	page, csrf, p := c.hostedFlow(authorizeParams(challenge, ""))
	if !strings.Contains(p.raw, `href="`+page+`/forgot"`) || !strings.Contains(p.raw, "Forgot password?") {
		t.Fatalf("no forgot link: %s", p.raw)
	}
	if f := c.do(http.MethodGet, page+"/forgot", "", "", nil); f.status != 200 || !strings.Contains(f.raw, "Forgot your password?") {
		t.Fatalf("forgot page: %d %s", f.status, f.raw)
	}
	r := c.submit(page+"/forgot", csrf, url.Values{"login_id": {"nobody@example.com"}})
	if r.status != 303 || r.header.Get("Location") != page+"/reset" {
		t.Fatalf("unknown: %d %s", r.status, r.raw)
	}
	unknown := c.do(http.MethodGet, page+"/reset", "", "", nil)
	r = c.submit(page+"/forgot", csrf, url.Values{"login_id": {"ada@example.com"}})
	if r.status != 303 || r.header.Get("Location") != page+"/reset" {
		t.Fatalf("known: %d %s", r.status, r.raw)
	}
	known := c.do(http.MethodGet, page+"/reset", "", "", nil)
	if strings.ReplaceAll(unknown.raw, "nobody@example.com", "X") != strings.ReplaceAll(known.raw, "ada@example.com", "X") {
		t.Fatal("the reset pages differ for a known and an unknown address")
	}
	code := e.mail.WaitMail(t, 1).Code()
	if r := c.submit(page+"/reset", csrf, url.Values{"action": {"verify"}, "code": {code}, "new_password": {"short"}}); r.status != 400 ||
		!strings.Contains(r.raw, `id="new_password-error"`) {
		t.Fatalf("short password: %d %s", r.status, r.raw)
	}
	r = c.submit(page+"/reset", csrf, url.Values{"action": {"verify"}, "code": {code}, "new_password": {"a-brand-new-secret-7"}})
	if r.status != 200 || !strings.Contains(r.raw, "Your password was changed") {
		t.Fatalf("reset: %d %s", r.status, r.raw)
	}
	if _, err := e.n.Service.AuthenticatePassword(context.Background(), "", "ada@example.com", "a-brand-new-secret-7", "192.0.2.9", app.Meta{}); err != nil {
		t.Fatalf("new password: %v", err)
	}
	u, _, _ := e.n.Service.LoadUser(context.Background(), sub)
	if !u.IsVerified() {
		t.Fatal("a reset by code did not verify the address")
	}
	if n := len(e.mail.Mails()); n != 1 {
		t.Fatalf("%d mails", n)
	}
}

func TestPortalVerificationPage(t *testing.T) {
	e := startOTP(t, func(c *config.Config) {
		withOperator(c)
		c.SMTP = config.SMTP{Host: "mail.example", From: "no-reply@example.com", Username: "mailer", Password: "smtp-secret-value-1"}
	})
	c := portalClient(t, e.n)
	p := c.get("/portal/authentication/verification")
	if p.status != 200 || !strings.Contains(p.raw, "Verification and one-time codes") || !strings.Contains(p.raw, "password set (hidden)") ||
		strings.Contains(p.raw, "smtp-secret-value-1") || strings.Contains(p.raw, `name="username.oob_otp"`) {
		t.Fatalf("page: %d %s", p.status, p.raw)
	}
	if r := c.save("/portal/authentication/verification", map[string]string{"action": "save", "code_lifetime": "1h"}); r.status != 400 ||
		!strings.Contains(r.raw, "between 5 and 10 minutes") {
		t.Fatalf("bad lifetime: %d %s", r.status, r.raw)
	}
	if e.n.Service.Settings().Verification.CodeLifetime != 0 {
		t.Fatal("a refused form changed the settings")
	}
	r := c.save("/portal/authentication/verification", map[string]string{"action": "save", "promotion": "required", "code_lifetime": "5m", "email.oob_otp": "on"})
	if r.status != 303 {
		t.Fatalf("save: %d %s", r.status, r.raw)
	}
	testenv.WaitFor(t, "settings applied", 5*time.Second, func() bool {
		v := e.n.Service.Settings().Verification
		return v.Promotion == domain.VerifyRequired && v.CodeLifetime == 300 && v.Offers("email", "oob_otp") && v.Offers("email", "password")
	})
	f := formOf(t, c.get("/portal/authentication/verification"))
	f.Set("action", "test")
	f.Set("test_to", "ops@example.com")
	r = c.postForm("/portal/authentication/verification", f)
	if r.status != 200 || !strings.Contains(r.raw, "Sent to ops@example.com") {
		t.Fatalf("test message: %d %s", r.status, r.raw)
	}
	if m := e.mail.WaitMail(t, 1); m.To[0] != "ops@example.com" || !strings.Contains(m.Header.Get("Subject"), "test message") {
		t.Fatalf("test mail to %v: %q", m.To, m.Header.Get("Subject"))
	}
	f.Set("test_to", "ada_lovelace")
	if r := c.postForm("/portal/authentication/verification", f); r.status != 400 || !strings.Contains(r.raw, `id="test_to-error"`) {
		t.Fatalf("a username: %d %s", r.status, r.raw)
	}
}

func emailCodes(c *config.Config) {
	c.Verification.Authenticators = map[string][]string{"email": {"password", "oob_otp"}, "phone": {"password"}, "username": {"password"}}
}

// TestHostedCodeSignIn: "Sign in with a code instead" on the sign-in page
// when email offers codes; the session the exchange starts is an email
// code sign-in, and the address is verified by it.
func TestHostedCodeSignIn(t *testing.T) {
	e := startOTP(t, emailCodes)
	c := newClient(t, e.n)
	sub := regularUser(t, c, "ada@example.com")
	verifier, challenge := pkce()
	page, csrf, p := c.hostedFlow(authorizeParams(challenge, ""))
	if !strings.Contains(p.raw, `href="`+page+`/signin-code"`) {
		t.Fatalf("no code sign-in link: %s", p.raw)
	}
	if r := c.submit(page+"/signin-code", csrf, url.Values{"login_id": {"ada@example.com"}}); r.status != 303 || r.header.Get("Location") != page+"/signin-code/verify" {
		t.Fatalf("start: %d %s", r.status, r.raw)
	}
	code := e.mail.WaitMail(t, 1).Code()
	if r := c.submit(page+"/signin-code/verify", csrf, url.Values{"action": {"verify"}, "code": {fmt.Sprintf("%06d", (atoi(code)+1)%1000000)}}); r.status != 400 ||
		!strings.Contains(r.raw, "That code is not right") {
		t.Fatalf("wrong code: %d %s", r.status, r.raw)
	}
	r := c.submit(page+"/signin-code/verify", csrf, url.Values{"action": {"verify"}, "code": {code}})
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != 302 || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("verify: %d %s", r.status, r.raw)
	}
	tok := c.exchange(loc.Query().Get("code"), verifier)
	info := c.userinfo(str(tok.body, "access_token"))
	if str(info.body, "sub") != sub || info.body["email_verified"] != true {
		t.Fatalf("after: %s", info.raw)
	}
	testenv.Settle(t, e.n.Pool, e.n.Store, 10*time.Second)
	d, err := projections.GetUser(context.Background(), e.n.Pool, sub)
	byCode := 0
	for _, sess := range d.Sessions { // all started in the same (fake) second: no order
		if sess.Method == domain.MethodEmailCode {
			byCode++
		}
	}
	if err != nil || byCode != 1 {
		t.Fatalf("%d email-code sessions in %+v %v", byCode, d.Sessions, err)
	}
	// Without codes offered, no link and no page.
	e2 := startOTP(t, nil)
	c2 := newClient(t, e2.n)
	_, challenge = pkce()
	page, csrf, p = c2.hostedFlow(authorizeParams(challenge, ""))
	if strings.Contains(p.raw, "signin-code") {
		t.Fatal("a code sign-in link without codes offered")
	}
	if r := c2.submit(page+"/signin-code", csrf, url.Values{"login_id": {"ada@example.com"}}); r.status != 400 || !strings.Contains(r.raw, "cannot be used this way") {
		t.Fatalf("not offered: %d %s", r.status, r.raw)
	}
}
