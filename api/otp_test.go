package api_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
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

	"github.com/idstream/idstream/api/apitest"

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
		apitest.CheapHashes(c)
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
	c := apitest.NewClient(t, e.n)
	at, _ := apitest.Signup(t, c)
	r := c.Promote(at, "ada@example.com", apitest.GoodPassword)
	if r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	at = apitest.Str(r.Result(), "access_token")
	info := c.Userinfo(at)
	if info.Body["is_verified"] != false || info.Body["email_verified"] != false {
		t.Fatalf("before: %s", info.Raw)
	}
	r = c.PostJSON("/api/verification/start", `{}`, bearerH(at))
	if r.Status != 200 || apitest.Str(r.Result(), "sent_to") != "ada@example.com" || apitest.Str(r.Result(), "channel") != "email" {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
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
	if r := c.PostJSON("/api/verification/verify", `{"code":"`+wrong+`"}`, bearerH(at)); r.Status != 400 || r.Reason() != "InvalidCode" {
		t.Fatalf("wrong code: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/api/verification/verify", `{"code":"`+code+`"}`, bearerH(at)); r.Status != 200 || r.Result()["is_verified"] != true {
		t.Fatalf("right code: %d %s", r.Status, r.Raw)
	}
	info = c.Userinfo(at)
	if info.Body["is_verified"] != true || info.Body["https://authgear.com/claims/user/is_verified"] != true || info.Body["email_verified"] != true {
		t.Fatalf("after: %s", info.Raw)
	}
	if r := c.PostJSON("/api/verification/verify", `{"code":"`+code+`"}`, bearerH(at)); r.Status == 200 {
		t.Fatalf("a reused code worked: %s", r.Raw)
	}
	if r := c.PostJSON("/api/verification/start", `{}`, bearerH(at)); r.Status != 409 || r.Reason() != "AlreadyVerified" {
		t.Fatalf("again: %d %s", r.Status, r.Raw)
	}
	if n := len(e.mail.Mails()); n != 1 {
		t.Fatalf("%d mails", n)
	}
	// The read model and so the admin API and exports know it.
	testenv.Settle(t, e.n.Pool, e.n.Store, 10*time.Second)
	d, err := projections.GetUser(context.Background(), e.n.Pool, apitest.Str(info.Body, "sub"))
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
	a, b := apitest.NewClient(t, e.n), apitest.NewClient(t, e.n)
	atA, _ := apitest.Signup(t, a)
	atB, _ := apitest.Signup(t, b)
	subA := apitest.Str(a.Userinfo(atA).Body, "sub")
	if r := a.Promote(atA, "ada@example.com", apitest.GoodPassword); r.Status != 403 || r.Reason() != "VerificationRequired" {
		t.Fatalf("plain promote: %d %s", r.Status, r.Raw)
	}
	body := `{"login_id":"ada@example.com","password":"` + apitest.GoodPassword + `"}`
	if r := a.PostJSON("/api/anonymous_user/promote/start", body, bearerH(atA)); r.Status != 200 {
		t.Fatalf("start A: %d %s", r.Status, r.Raw)
	}
	codeA := e.mail.WaitMail(t, 1).Code()
	// Until the code comes back the guest is a guest and the login ID free:
	// B may start for it too.
	if info := a.Userinfo(atA); info.Body["is_anonymous"] != true {
		t.Fatalf("A promoted before the code: %s", info.Raw)
	}
	if r := b.PostJSON("/api/anonymous_user/promote/start", body, bearerH(atB)); r.Status != 200 {
		t.Fatalf("start B: %d %s", r.Status, r.Raw)
	}
	codeB := e.mail.WaitMail(t, 2).Code()
	if codeA == codeB {
		t.Skip("the two codes are equal by chance")
	}
	// Codes are bound to their guest: A cannot use B's.
	if r := a.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+codeB+`"}`, bearerH(atA)); r.Reason() != "InvalidCode" {
		t.Fatalf("B's code for A: %d %s", r.Status, r.Raw)
	}
	r := a.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+codeA+`"}`, bearerH(atA))
	if r.Status != 200 || apitest.Str(r.Result(), "access_token") == "" || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("verify A: %d %v %s", r.Status, r.Header, r.Raw)
	}
	info := a.Userinfo(apitest.Str(r.Result(), "access_token"))
	if apitest.Str(info.Body, "sub") != subA || info.Body["is_anonymous"] != false || info.Body["is_verified"] != true {
		t.Fatalf("A after: %s", info.Raw)
	}
	if a.Userinfo(atA).Status != 401 {
		t.Fatal("the guest's session survived the promotion")
	}
	// B's code is right, but the login ID is A's now: B stays a guest.
	if r := b.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+codeB+`"}`, bearerH(atB)); r.Status != 409 || r.Reason() != "LoginIDTaken" {
		t.Fatalf("verify B: %d %s", r.Status, r.Raw)
	}
	if info := b.Userinfo(atB); info.Body["is_anonymous"] != true {
		t.Fatalf("B changed: %s", info.Raw)
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
	c := apitest.NewClient(t, e.n)
	at, _ := apitest.Signup(t, c)
	start := func(loginID string) apitest.Response {
		return c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"`+loginID+`","password":"`+apitest.GoodPassword+`"}`, bearerH(at))
	}
	verify := func(loginID, code string) apitest.Response {
		return c.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"`+loginID+`","code":"`+code+`"}`, bearerH(at))
	}
	if r := start("ada@example.com"); r.Status != 200 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	code := e.mail.WaitMail(t, 1).Code()

	// Resend within the cooldown: refused, with Retry-After.
	r := c.PostJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at))
	if r.Status != 429 || r.Reason() != "ResendTooSoon" || r.Header.Get("Retry-After") == "" {
		t.Fatalf("resend too soon: %d %s", r.Status, r.Raw)
	}
	// A code for another target, another flow, malformed codes.
	if r := verify("bob@example.com", code); r.Reason() != "InvalidCode" {
		t.Fatalf("another target: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/api/verification/verify", `{"code":"`+code+`"}`, bearerH(at)); r.Status == 200 {
		t.Fatalf("another flow: %d %s", r.Status, r.Raw)
	}
	if r := verify("ada@example.com", "12345"); r.Reason() != "InvalidCode" {
		t.Fatalf("five digits: %d %s", r.Status, r.Raw)
	}
	// Five wrong codes end it: the right one no longer works.
	wrong := fmt.Sprintf("%06d", (atoi(code)+7)%1000000)
	for i := 2; i <= 4; i++ {
		if r := verify("ada@example.com", wrong); r.Reason() != "InvalidCode" {
			t.Fatalf("wrong %d: %d %s", i, r.Status, r.Raw)
		}
	}
	if r := verify("ada@example.com", wrong); r.Reason() != "CodeAttemptsExceeded" {
		t.Fatalf("fifth wrong: %d %s", r.Status, r.Raw)
	}
	if r := verify("ada@example.com", code); r.Status == 200 {
		t.Fatalf("the right code worked after five wrong ones: %s", r.Raw)
	}
	if info := c.Userinfo(at); info.Body["is_anonymous"] != true {
		t.Fatalf("changed by failed attempts: %s", info.Raw)
	}
	// Expired.
	if r := start("ada@example.com"); r.Status != 200 {
		t.Fatalf("start 2: %d %s", r.Status, r.Raw)
	}
	code = e.mail.WaitMail(t, 2).Code()
	e.n.Clock.Advance(11 * time.Minute)
	if r := verify("ada@example.com", code); r.Reason() != "CodeExpired" {
		t.Fatalf("expired: %d %s", r.Status, r.Raw)
	}
	// A resend replaces the code: the old one stops working.
	if r := start("ada@example.com"); r.Status != 200 {
		t.Fatalf("start 3: %d %s", r.Status, r.Raw)
	}
	old := e.mail.WaitMail(t, 3).Code()
	e.n.Clock.Advance(61 * time.Second)
	// The per-target limit (3 per hour) holds the fourth send.
	if r := c.PostJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at)); r.Status != 429 || r.Reason() != "RateLimited" {
		t.Fatalf("fourth send: %d %s", r.Status, r.Raw)
	}
	if r := verify("ada@example.com", old); r.Status != 200 {
		t.Fatalf("the pending code after a refused resend: %d %s", r.Status, r.Raw)
	}
	if n := len(e.mail.Mails()); n != 3 {
		t.Fatalf("%d mails, want 3", n)
	}
}

func TestResendReplacesTheCode(t *testing.T) {
	e := startOTP(t, required)
	c := apitest.NewClient(t, e.n)
	at, _ := apitest.Signup(t, c)
	if r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"ada@example.com","password":"`+apitest.GoodPassword+`"}`, bearerH(at)); r.Status != 200 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	first := e.mail.WaitMail(t, 1).Code()
	e.n.Clock.Advance(61 * time.Second)
	if r := c.PostJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at)); r.Status != 200 {
		t.Fatalf("resend: %d %s", r.Status, r.Raw)
	}
	second := e.mail.WaitMail(t, 2).Code()
	if first != second {
		if r := c.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+first+`"}`, bearerH(at)); r.Reason() != "InvalidCode" {
			t.Fatalf("the replaced code: %d %s", r.Status, r.Raw)
		}
	}
	if r := c.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"ada@example.com","code":"`+second+`"}`, bearerH(at)); r.Status != 200 {
		t.Fatalf("the new code: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/api/anonymous_user/promote/resend", `{"login_id":"nobody@example.com"}`, bearerH(at)); r.Status != 400 && r.Status != 401 {
		t.Fatalf("resend with nothing pending: %d %s", r.Status, r.Raw)
	}
}

func passwordlessPhone(c *config.Config) {
	c.Verification.Authenticators = map[string][]string{"email": {"password"}, "phone": {"oob_otp"}, "username": {"password"}}
}

func TestPasswordlessPhoneBySignedWebhook(t *testing.T) {
	e := startOTP(t, passwordlessPhone)
	c := apitest.NewClient(t, e.n)
	at, _ := apitest.Signup(t, c)
	sub := apitest.Str(c.Userinfo(at).Body, "sub")
	// Phone offers codes only: a password promotion is refused.
	if r := c.Promote(at, "+14155552671", apitest.GoodPassword); r.Status != 400 || r.Reason() != "AuthenticatorNotOffered" {
		t.Fatalf("password for phone: %d %s", r.Status, r.Raw)
	}
	e.sms.mu.Lock()
	e.sms.refuse["+14155550000"] = true
	e.sms.mu.Unlock()
	r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"+14155550000"}`, bearerH(at))
	if r.Status != 400 || r.Reason() != "InvalidRecipient" {
		t.Fatalf("refused number: %d %s", r.Status, r.Raw)
	}
	r = c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"+1 415 555 2671"}`, bearerH(at))
	if r.Status != 200 || apitest.Str(r.Result(), "channel") != "sms" || apitest.Str(r.Result(), "sent_to") != "+14155552671" {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	text := e.sms.wait(t, 1)
	if text["to"] != "+14155552671" || !strings.HasPrefix(text["body"], text["code"]) {
		t.Fatalf("text %v", text)
	}
	r = c.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"+14155552671","code":"`+text["code"]+`"}`, bearerH(at))
	if r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
	info := c.Userinfo(apitest.Str(r.Result(), "access_token"))
	if apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false || info.Body["phone_number_verified"] != true {
		t.Fatalf("after: %s", info.Raw)
	}
	u, _, _ := e.n.Service.LoadUser(context.Background(), sub)
	if u.PasswordHash() != "" {
		t.Fatal("a passwordless promotion stored a password")
	}
	// The promotion proved the number by a text message, not a password.
	if amr := fmt.Sprint(apitest.Claims(t, apitest.Str(r.Result(), "id_token"))["amr"]); amr != "[otp sms]" {
		t.Fatalf("amr %s after a promotion by text-message code, want [otp sms]", amr)
	}

	// Sign in again with a code; an unknown number gets the same answer
	// and no message.
	other := apitest.NewClient(t, e.n)
	unknown := other.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"+14155559999"}`, nil)
	known := other.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"+14155552671"}`, nil)
	if unknown.Status != 200 || known.Status != 200 || len(unknown.Result()) != len(known.Result()) {
		t.Fatalf("start: %d %s / %d %s", unknown.Status, unknown.Raw, known.Status, known.Raw)
	}
	text = e.sms.wait(t, 2)
	if text["to"] != "+14155552671" || text["kind"] != "sign_in" {
		t.Fatalf("text %v", text)
	}
	// The code works for the sign-in flow only, and for its number only.
	if r := other.PostJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"+14155559999","code":"`+text["code"]+`","session_type":"refresh_token"}`, nil); r.Reason() != "InvalidCode" {
		t.Fatalf("unknown number: %d %s", r.Status, r.Raw)
	}
	r = other.PostJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"+14155552671","code":"`+text["code"]+`","session_type":"refresh_token"}`, nil)
	if r.Status != 200 || apitest.Str(other.Userinfo(apitest.Str(r.Result(), "access_token")).Body, "sub") != sub {
		t.Fatalf("sign in: %d %s", r.Status, r.Raw)
	}
	// Within the cooldown the unknown number answers as the known one.
	u1 := other.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"+14155559999"}`, nil)
	if u1.Status != 429 || u1.Reason() != "ResendTooSoon" {
		t.Fatalf("unknown number within the cooldown: %d %s", u1.Status, u1.Raw)
	}
	time.Sleep(100 * time.Millisecond) // async sends, if any were wrongly made, would have arrived
	if n := e.sms.count(); n != 2 {
		t.Fatalf("%d texts, want 2", n)
	}
	if e.sms.bad != 0 {
		t.Fatalf("%d unsigned webhook calls", e.sms.bad)
	}
	// Email offers passwords only: no code sign-in.
	if r := other.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"ada@example.com"}`, nil); r.Reason() != "AuthenticatorNotOffered" {
		t.Fatalf("email code sign-in: %d %s", r.Status, r.Raw)
	}
}

func TestForgottenPassword(t *testing.T) {
	e := startOTP(t, nil)
	c := apitest.NewClient(t, e.n)
	sub := apitest.RegularUser(t, c, "ada@example.com")
	// A second session of the user, by password sign-in.
	iss, err := e.n.Service.StartSession(context.Background(), sub, app.NewSession{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken, Method: domain.MethodPassword}, app.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RecordSecret("refresh token", iss.SessionToken)
	testenv.RecordSecret("access token", iss.AccessToken)
	// An identity at a provider linked while the address was unproved.
	linked := domain.ExternalRef{Provider: "github", Subject: "linked-before-the-proof"}
	if err := e.n.Service.LinkExternal(context.Background(), sub, 0, linked, app.Meta{}); err != nil {
		t.Fatal(err)
	}

	unknown := c.PostJSON("/api/password/forgot", `{"client_id":"idstream-dev","login_id":"nobody@example.com"}`, nil)
	known := c.PostJSON("/api/password/forgot", `{"client_id":"idstream-dev","login_id":"Ada@Example.com"}`, nil)
	if unknown.Status != 200 || known.Status != 200 || len(unknown.Result()) != len(known.Result()) {
		t.Fatalf("forgot: %d %s / %d %s", unknown.Status, unknown.Raw, known.Status, known.Raw)
	}
	m := e.mail.WaitMail(t, 1)
	if m.To[0] != "ada@example.com" || !strings.Contains(m.Header.Get("Subject"), "Reset") {
		t.Fatalf("mail to %v: %q", m.To, m.Header.Get("Subject"))
	}
	code := m.Code()
	reset := func(loginID, code, pw string) apitest.Response {
		return c.PostJSON("/api/password/reset", fmt.Sprintf(`{"client_id":"idstream-dev","login_id":%q,"code":%q,"new_password":%q}`, loginID, code, pw), nil)
	}
	if r := reset("nobody@example.com", code, "a-brand-new-secret-7"); r.Reason() != "InvalidCode" {
		t.Fatalf("unknown address: %d %s", r.Status, r.Raw)
	}
	// The policy is checked before the code is spent.
	if r := reset("ada@example.com", code, "qwertyuiop"); r.Reason() != "PasswordTooCommon" && r.Reason() != "PasswordPolicy" {
		t.Fatalf("weak password: %d %s", r.Status, r.Raw)
	}
	if r := reset("ada@example.com", code, "a-brand-new-secret-7"); r.Status != 200 {
		t.Fatalf("reset: %d %s", r.Status, r.Raw)
	}
	if r := reset("ada@example.com", code, "another-new-secret-8"); r.Status == 200 {
		t.Fatal("a reset code worked twice")
	}
	// Every session ended.
	if r := apitest.Refresh(c, iss.SessionToken); r.Status == 200 {
		t.Fatalf("an old session refreshed: %s", r.Raw)
	}
	if c.Userinfo(iss.AccessToken).Status != 401 {
		t.Fatal("an old access token still works at userinfo")
	}
	ctx := context.Background()
	if _, err := e.n.Service.AuthenticatePassword(ctx, "", "ada@example.com", apitest.GoodPassword, "192.0.2.1", app.Meta{}); err == nil {
		t.Fatal("the old password still signs in")
	}
	u, err := e.n.Service.AuthenticatePassword(ctx, "", "ada@example.com", "a-brand-new-secret-7", "192.0.2.1", app.Meta{})
	if err != nil || u.UserID() != sub || !u.IsVerified() {
		t.Fatalf("new password: %v verified %v", err, u.IsVerified())
	}
	// The reset was the first proof of the address: the identity linked
	// before it was released and signs up anew.
	if other, err := e.n.Service.SignInExternal(ctx, "idstream-dev", linked, "192.0.2.9", app.Meta{}); err != nil || other.UserID() == sub {
		t.Fatalf("the identity linked before the reset: %v %v", other.UserID(), err)
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
		apitest.CheapHashes(c)
		required(c)
	}})
	c := apitest.NewClient(t, n)
	at, _ := apitest.Signup(t, c)
	r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"ada@example.com","password":"`+apitest.GoodPassword+`"}`, bearerH(at))
	if r.Status != 502 || r.Reason() != "DeliveryFailed" {
		t.Fatalf("SMTP down: %d %s", r.Status, r.Raw)
	}
	// No code is left behind (no cooldown, nothing to resend) and nothing
	// is claimed: another guest promotes to the address.
	if r := c.PostJSON("/api/anonymous_user/promote/resend", `{"login_id":"ada@example.com"}`, bearerH(at)); r.Reason() != "NoCodePending" {
		t.Fatalf("resend after a failure: %d %s", r.Status, r.Raw)
	}
	if info := c.Userinfo(at); info.Body["is_anonymous"] != true {
		t.Fatalf("guest changed: %s", info.Raw)
	}
	id, _ := loginid.Parse(loginid.Email, "ada@example.com")
	recs, _, err := n.Store.Load(context.Background(), n.Store.Subject("loginid", id.Key()))
	if err != nil || len(recs) != 0 {
		t.Fatalf("the login ID subject has %d events (%v)", len(recs), err)
	}
	// SMS is not configured at all.
	if r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"+14155552671","password":"`+apitest.GoodPassword+`"}`, bearerH(at)); r.Status != 503 || r.Reason() != "DeliveryNotConfigured" {
		t.Fatalf("no SMS provider: %d %s", r.Status, r.Raw)
	}
	// Header injection and usernames never reach delivery.
	if r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"ada@example.com\r\nBcc: eve@example.com","password":"`+apitest.GoodPassword+`"}`, bearerH(at)); r.Status != 400 {
		t.Fatalf("injection: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"ada_lovelace","password":"`+apitest.GoodPassword+`"}`, bearerH(at)); r.Reason() != "NoCodeChannel" {
		t.Fatalf("username: %d %s", r.Status, r.Raw)
	}
}

func TestInternationalisedAddress(t *testing.T) {
	e := startOTP(t, required)
	c := apitest.NewClient(t, e.n)
	at, _ := apitest.Signup(t, c)
	r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"jürgen@bücher.example","password":"`+apitest.GoodPassword+`"}`, bearerH(at))
	if r.Status != 200 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	m := e.mail.WaitMail(t, 1)
	if m.To[0] != "jürgen@xn--bcher-kva.example" {
		t.Fatalf("RCPT TO %q", m.To)
	}
	if r := c.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"jürgen@bücher.example","code":"`+m.Code()+`"}`, bearerH(at)); r.Status != 200 {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
}

// TestCodeSingleUseAcrossNodes: one right code presented at once on two
// nodes (sharing NATS and PostgreSQL) verifies once.
func TestCodeSingleUseAcrossNodes(t *testing.T) {
	e := startOTP(t, required)
	dbURL := e.n.Config.DatabaseURL
	other := testenv.StartNode(t, nil, testenv.NodeOptions{DatabaseURL: dbURL, NATSURL: e.n.Config.NATS.URL, Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		required(c)
	}})
	for round := range 5 {
		c := apitest.NewClient(t, e.n)
		at, _ := apitest.Signup(t, c)
		login := fmt.Sprintf("race%d@example.com", round)
		if r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"`+login+`","password":"`+apitest.GoodPassword+`"}`, bearerH(at)); r.Status != 200 {
			t.Fatalf("start: %d %s", r.Status, r.Raw)
		}
		code := e.mail.WaitMail(t, round+1).Code()
		clients := []*apitest.Client{apitest.NewClient(t, e.n), apitest.NewClient(t, other), apitest.NewClient(t, e.n), apitest.NewClient(t, other)}
		results := make([]apitest.Response, len(clients))
		var wg sync.WaitGroup
		for i, cl := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = cl.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"`+login+`","code":"`+code+`"}`, bearerH(at))
			}()
		}
		wg.Wait()
		ok := 0
		for _, r := range results {
			switch {
			case r.Status == 200:
				ok++
			case r.Reason() == "InvalidCode", r.Reason() == "NotAnonymous", r.Reason() == "SessionRevoked", r.Reason() == "InvalidToken":
			default:
				t.Fatalf("round %d: unexpected %d %s", round, r.Status, r.Raw)
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
			c := apitest.NewClient(t, e.n)
			var at string
			var h map[string]string
			if mode == "code" {
				at, _ = apitest.Signup(t, c)
				h = bearerH(at)
			} else if r := c.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
				t.Fatalf("cookie signup: %d %s", r.Status, r.Raw)
			}
			pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, h)
			verifier, challenge := apitest.PKCE()
			params := apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code")))
			// email_verified is a claim of the scope email (the SDKs'
			// full-access scope includes it).
			params.Set("scope", "openid offline_access email")
			if mode == "cookie" {
				params.Set("response_type", "none")
				params.Del("code_challenge")
				params.Del("code_challenge_method")
			}
			page, csrf, _ := c.HostedFlow(params)
			login := mode + "-hosted@example.com"
			before := apitest.LastSeq(t, e.n)
			r := c.Submit(page, csrf, url.Values{"login_id": {login}, "password": {apitest.GoodPassword}})
			if r.Status != 303 || r.Header.Get("Location") != page+"/code" {
				t.Fatalf("submit: %d %v %s", r.Status, r.Header, r.Raw)
			}
			if apitest.LastSeq(t, e.n) != before {
				t.Fatal("events written before the code")
			}
			p := c.Do(http.MethodGet, page+"/code", "", "", nil)
			if p.Status != 200 || !strings.Contains(p.Raw, "Enter the code we sent to "+login) || !strings.Contains(p.Raw, "Send a new code") ||
				!strings.Contains(p.Raw, "Use a different email address") || strings.Contains(p.Raw, "<script") ||
				!strings.Contains(p.Header.Get("Content-Security-Policy"), "default-src 'none'") {
				t.Fatalf("code page: %d %s", p.Status, p.Raw)
			}
			mails := len(e.mail.Mails())
			code := e.mail.WaitMail(t, mails).Code()
			if r := c.PostForm(page+"/code", url.Values{"action": {"verify"}, "code": {code}}); r.Status != 403 {
				t.Fatalf("no CSRF token: %d", r.Status)
			}
			if r := c.Submit(page+"/code", csrf, url.Values{"action": {"resend"}}); r.Status != 429 || !strings.Contains(r.Raw, "ask for a new one in") {
				t.Fatalf("resend too soon: %d %s", r.Status, r.Raw)
			}
			wrong := fmt.Sprintf("%06d", (atoi(code)+3)%1000000)
			if r := c.Submit(page+"/code", csrf, url.Values{"action": {"verify"}, "code": {wrong}}); r.Status != 400 ||
				!strings.Contains(r.Raw, `aria-invalid="true"`) || !strings.Contains(r.Raw, "That code is not right") {
				t.Fatalf("wrong code: %d %s", r.Status, r.Raw)
			}
			r = c.Submit(page+"/code", csrf, url.Values{"action": {"verify"}, "code": {code[:3] + " " + code[3:]}})
			loc, _ := url.Parse(r.Header.Get("Location"))
			if r.Status != 302 || loc == nil || loc.Host != "localhost:3000" {
				t.Fatalf("verify: %d %v %s", r.Status, r.Header, r.Raw)
			}
			var info apitest.Response
			if mode == "code" {
				tok := c.Exchange(loc.Query().Get("code"), verifier)
				info = c.Userinfo(apitest.Str(tok.Body, "access_token"))
			} else {
				info = c.Do(http.MethodGet, "/oauth2/userinfo", "", "", nil)
			}
			if info.Body["is_anonymous"] != false || info.Body["is_verified"] != true || info.Body["email_verified"] != true {
				t.Fatalf("after: %s", info.Raw)
			}
		})
	}
}

// TestHostedForgottenPassword: "Forgot password?" on the sign-in page, the
// same pages whether anybody holds the login ID, and the new password
// signs in.
func TestHostedForgottenPassword(t *testing.T) {
	e := startOTP(t, nil)
	c := apitest.NewClient(t, e.n)
	sub := apitest.RegularUser(t, c, "ada@example.com")
	_, challenge := apitest.PKCE()
	page, csrf, p := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	if !strings.Contains(p.Raw, `href="`+page+`/forgot"`) || !strings.Contains(p.Raw, "Forgot password?") {
		t.Fatalf("no forgot link: %s", p.Raw)
	}
	if f := c.Do(http.MethodGet, page+"/forgot", "", "", nil); f.Status != 200 || !strings.Contains(f.Raw, "Forgot your password?") {
		t.Fatalf("forgot page: %d %s", f.Status, f.Raw)
	}
	r := c.Submit(page+"/forgot", csrf, url.Values{"login_id": {"nobody@example.com"}})
	if r.Status != 303 || r.Header.Get("Location") != page+"/reset" {
		t.Fatalf("unknown: %d %s", r.Status, r.Raw)
	}
	unknown := c.Do(http.MethodGet, page+"/reset", "", "", nil)
	r = c.Submit(page+"/forgot", csrf, url.Values{"login_id": {"ada@example.com"}})
	if r.Status != 303 || r.Header.Get("Location") != page+"/reset" {
		t.Fatalf("known: %d %s", r.Status, r.Raw)
	}
	known := c.Do(http.MethodGet, page+"/reset", "", "", nil)
	if strings.ReplaceAll(unknown.Raw, "nobody@example.com", "X") != strings.ReplaceAll(known.Raw, "ada@example.com", "X") {
		t.Fatal("the reset pages differ for a known and an unknown address")
	}
	code := e.mail.WaitMail(t, 1).Code()
	if r := c.Submit(page+"/reset", csrf, url.Values{"action": {"verify"}, "code": {code}, "new_password": {"short"}}); r.Status != 400 ||
		!strings.Contains(r.Raw, `id="new_password-error"`) {
		t.Fatalf("short password: %d %s", r.Status, r.Raw)
	}
	r = c.Submit(page+"/reset", csrf, url.Values{"action": {"verify"}, "code": {code}, "new_password": {"a-brand-new-secret-7"}})
	if r.Status != 200 || !strings.Contains(r.Raw, "Your password was changed") {
		t.Fatalf("reset: %d %s", r.Status, r.Raw)
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
		apitest.WithOperator(c)
		c.SMTP = config.SMTP{Host: "mail.example", From: "no-reply@example.com", Username: "mailer", Password: "smtp-secret-value-1"}
	})
	c := apitest.PortalClient(t, e.n)
	p := c.Get("/portal/authentication/verification")
	if p.Status != 200 || !strings.Contains(p.Raw, "Verification and one-time codes") || !strings.Contains(p.Raw, "password set (hidden)") ||
		strings.Contains(p.Raw, "smtp-secret-value-1") || strings.Contains(p.Raw, `name="username.oob_otp"`) {
		t.Fatalf("page: %d %s", p.Status, p.Raw)
	}
	if r := c.Save("/portal/authentication/verification", map[string]string{"action": "save", "code_lifetime": "1h"}); r.Status != 400 ||
		!strings.Contains(r.Raw, "between 5 and 10 minutes") {
		t.Fatalf("bad lifetime: %d %s", r.Status, r.Raw)
	}
	if e.n.Service.Settings().Verification.CodeLifetime != 0 {
		t.Fatal("a refused form changed the settings")
	}
	r := c.Save("/portal/authentication/verification", map[string]string{"action": "save", "promotion": "required", "code_lifetime": "5m", "email.oob_otp": "on"})
	if r.Status != 303 {
		t.Fatalf("save: %d %s", r.Status, r.Raw)
	}
	testenv.WaitFor(t, "settings applied", 5*time.Second, func() bool {
		v := e.n.Service.Settings().Verification
		return v.Promotion == domain.VerifyRequired && v.CodeLifetime == 300 && v.Offers("email", "oob_otp") && v.Offers("email", "password")
	})
	f := apitest.FormOf(t, c.Get("/portal/authentication/verification"))
	f.Set("action", "test")
	f.Set("test_to", "ops@example.com")
	r = c.PostForm("/portal/authentication/verification", f)
	if r.Status != 200 || !strings.Contains(r.Raw, "Sent to ops@example.com") {
		t.Fatalf("test message: %d %s", r.Status, r.Raw)
	}
	if m := e.mail.WaitMail(t, 1); m.To[0] != "ops@example.com" || !strings.Contains(m.Header.Get("Subject"), "test message") {
		t.Fatalf("test mail to %v: %q", m.To, m.Header.Get("Subject"))
	}
	f.Set("test_to", "ada_lovelace")
	if r := c.PostForm("/portal/authentication/verification", f); r.Status != 400 || !strings.Contains(r.Raw, `id="test_to-error"`) {
		t.Fatalf("a username: %d %s", r.Status, r.Raw)
	}
}

func emailCodes(c *config.Config) {
	c.Verification.Authenticators = map[string][]string{"email": {"password", "oob_otp"}, "phone": {"password"}, "username": {"password"}}
}

// TestCodeSignInRefusesAHeldMergeCode: under the policy "login", whoever
// registered somebody else's address with a password can merge a guest of
// theirs into that account on the hosted page and keep the authorization
// code; once the holder signs in by code (the password removed), that code
// starts nothing, and the guest is left as it was.
func TestCodeSignInRefusesAHeldMergeCode(t *testing.T) {
	e := startOTP(t, func(c *config.Config) {
		emailCodes(c)
		c.Promotion.ConflictPolicy = "login"
	})
	squatter := apitest.NewClient(t, e.n)
	apitest.RegularUser(t, squatter, "ada@example.com")
	atGuest, rtGuest := apitest.Signup(t, squatter)
	guest := apitest.Str(squatter.Userinfo(atGuest).Body, "sub")
	pc := squatter.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, bearerH(atGuest))
	verifier, challenge := apitest.PKCE()
	page, csrf, _ := squatter.HostedFlow(apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))))
	r := squatter.Submit(page, csrf, url.Values{"login_id": {"ada@example.com"}, "password": {apitest.GoodPassword}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	held := loc.Query().Get("code")
	if r.Status != 302 || held == "" {
		t.Fatalf("merge submit: %d %s", r.Status, r.Raw)
	}
	testenv.RecordSecret("authorization code", held)

	holder := apitest.NewClient(t, e.n)
	if r := holder.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"ada@example.com"}`, nil); r.Status != 200 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	code := e.mail.WaitMail(t, 1).Code()
	if r := holder.PostJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"ada@example.com","code":"`+code+`","session_type":"refresh_token"}`, nil); r.Status != 200 {
		t.Fatalf("code sign-in: %d %s", r.Status, r.Raw)
	}
	if tok := squatter.Exchange(held, verifier); tok.Status != 400 || apitest.Str(tok.Body, "error") != "invalid_grant" {
		t.Fatalf("a merge code issued before the holder's code sign-in: %d %s", tok.Status, tok.Raw)
	}
	recs, _, err := e.n.Store.Load(context.Background(), e.n.Store.Subject("user", guest))
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if rec.Type == domain.TypeAnonymousUserMerged {
			t.Fatal("the guest was merged into the holder's account")
		}
	}
	if r := apitest.Refresh(squatter, rtGuest); r.Status != 200 {
		t.Fatalf("the guest lost its session: %d %s", r.Status, r.Raw)
	}
}

// TestHostedCodeSignIn: "Sign in with a code instead" on the sign-in page
// when email offers codes; the session the exchange starts is an email
// code sign-in, and the address is verified by it.
func TestHostedCodeSignIn(t *testing.T) {
	e := startOTP(t, emailCodes)
	c := apitest.NewClient(t, e.n)
	sub := apitest.RegularUser(t, c, "ada@example.com")
	verifier, challenge := apitest.PKCE()
	page, csrf, p := c.HostedFlow(withScope(apitest.AuthorizeParams(challenge, ""), "openid offline_access email"))
	if !strings.Contains(p.Raw, `href="`+page+`/signin-code"`) {
		t.Fatalf("no code sign-in link: %s", p.Raw)
	}
	if r := c.Submit(page+"/signin-code", csrf, url.Values{"login_id": {"ada@example.com"}}); r.Status != 303 || r.Header.Get("Location") != page+"/signin-code/verify" {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	code := e.mail.WaitMail(t, 1).Code()
	if r := c.Submit(page+"/signin-code/verify", csrf, url.Values{"action": {"verify"}, "code": {fmt.Sprintf("%06d", (atoi(code)+1)%1000000)}}); r.Status != 400 ||
		!strings.Contains(r.Raw, "That code is not right") {
		t.Fatalf("wrong code: %d %s", r.Status, r.Raw)
	}
	r := c.Submit(page+"/signin-code/verify", csrf, url.Values{"action": {"verify"}, "code": {code}})
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("verify: %d %s", r.Status, r.Raw)
	}
	tok := c.Exchange(loc.Query().Get("code"), verifier)
	info := c.Userinfo(apitest.Str(tok.Body, "access_token"))
	if apitest.Str(info.Body, "sub") != sub || info.Body["email_verified"] != true {
		t.Fatalf("after: %s", info.Raw)
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
	// The password was chosen before the address was proved: the hosted
	// sign-in by code ended it too (TestCodeSignInEndsAnUnprovenPassword).
	if _, err := e.n.Service.AuthenticatePassword(context.Background(), "", "ada@example.com", apitest.GoodPassword, "192.0.2.1", app.Meta{}); !errors.Is(err, app.ErrInvalidCredentials) {
		t.Fatalf("the unproven password after a hosted code sign-in: %v", err)
	}
	// Without codes offered, no link and no page.
	e2 := startOTP(t, nil)
	c2 := apitest.NewClient(t, e2.n)
	_, challenge = apitest.PKCE()
	page, csrf, p = c2.HostedFlow(apitest.AuthorizeParams(challenge, ""))
	if strings.Contains(p.Raw, "signin-code") {
		t.Fatal("a code sign-in link without codes offered")
	}
	if r := c2.Submit(page+"/signin-code", csrf, url.Values{"login_id": {"ada@example.com"}}); r.Status != 400 || !strings.Contains(r.Raw, "cannot be used this way") {
		t.Fatalf("not offered: %d %s", r.Status, r.Raw)
	}
}

// TestSilentAuthorizeKeepsTheSessionsMethod: prompt=none on a cookie
// session signed in to by an email code starts a session of that method,
// and its ID token says so (amr otp), not a password the user never gave.
func TestSilentAuthorizeKeepsTheSessionsMethod(t *testing.T) {
	e := startOTP(t, emailCodes)
	apitest.RegularUser(t, apitest.NewClient(t, e.n), "amr@example.com")
	browser := apitest.NewClient(t, e.n)
	if r := browser.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"amr@example.com"}`, nil); r.Status != 200 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	code := e.mail.WaitMail(t, 1).Code()
	if r := browser.PostJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"amr@example.com","code":"`+code+`","session_type":"cookie"}`, nil); r.Status != 200 {
		t.Fatalf("code sign-in: %d %s", r.Status, r.Raw)
	}
	verifier, challenge := apitest.PKCE()
	p := apitest.AuthorizeParams(challenge, "")
	p.Set("prompt", "none")
	r := browser.Get("/oauth2/authorize?" + p.Encode())
	loc, _ := url.Parse(r.Header.Get("Location"))
	if r.Status != 302 || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("prompt=none: %d %v %s", r.Status, r.Header, r.Raw)
	}
	tok := browser.Exchange(loc.Query().Get("code"), verifier)
	if tok.Status != 200 {
		t.Fatalf("exchange: %d %s", tok.Status, tok.Raw)
	}
	if amr := fmt.Sprint(apitest.Claims(t, apitest.Str(tok.Body, "id_token"))["amr"]); amr != "[otp]" {
		t.Fatalf("amr %s after prompt=none on an email-code session, want [otp]", amr)
	}
}

// withScope sets an authorization request's scope.
func withScope(v url.Values, scope string) url.Values {
	v.Set("scope", scope)
	return v
}

// A confidential client's sessions start only with its own authentication
// (the code exchange with its secret): the headless code sign-in, which
// answers with tokens, refuses one, and writes nothing.
func TestCodeSignInRefusesConfidentialClients(t *testing.T) {
	e := startOTP(t, func(c *config.Config) {
		passwordlessPhone(c)
		cl := c.Clients[0]
		cl.ClientID, cl.Name, cl.SessionType = "server-app", "server-app", domain.SessionTypeRefreshToken
		cl.AllowedOrigins, cl.TokenEndpointAuthMethod = nil, domain.AuthMethodBasic
		c.Clients = append(c.Clients, cl)
	})
	c := apitest.NewClient(t, e.n)
	phoneHolder(t, e, c)
	other := apitest.NewClient(t, e.n)
	if r := other.PostJSON("/api/signin/code/start", `{"client_id":"server-app","login_id":"+14155552671"}`, nil); r.Status != 200 {
		t.Fatalf("code start: %d %s", r.Status, r.Raw)
	}
	text := e.sms.wait(t, 2)
	before := apitest.LastSeq(t, e.n)
	r := other.PostJSON("/api/signin/code/verify", `{"client_id":"server-app","login_id":"+14155552671","code":"`+text["code"]+`","session_type":"refresh_token"}`, nil)
	if r.Status != 400 || r.Reason() != "ConfidentialClient" || apitest.Str(r.Result(), "access_token") != "" {
		t.Fatalf("code sign-in for a confidential client: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, e.n) != before {
		t.Fatal("the refused sign-in wrote events")
	}
}

// phoneHolder promotes a guest of c to +14155552671 by the code texted to
// it (the first text of e's inbox).
func phoneHolder(t *testing.T, e otpEnv, c *apitest.Client) {
	t.Helper()
	at, _ := apitest.Signup(t, c)
	if r := c.PostJSON("/api/anonymous_user/promote/start", `{"login_id":"+14155552671"}`, bearerH(at)); r.Status != 200 {
		t.Fatalf("start: %d %s", r.Status, r.Raw)
	}
	text := e.sms.wait(t, 1)
	if r := c.PostJSON("/api/anonymous_user/promote/verify", `{"login_id":"+14155552671","code":"`+text["code"]+`"}`, bearerH(at)); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
}

// TestCodeStartsAnswerAlikeWhileDeliveryFails: a code sign-in start is
// answered before the code is sent, as for a login ID nobody holds; when
// the sending then fails, a second start within the cooldown still answers
// as it does for nobody's (ResendTooSoon), and the code sent to nobody
// works for nothing.
func TestCodeStartsAnswerAlikeWhileDeliveryFails(t *testing.T) {
	e := startOTP(t, passwordlessPhone)
	c := apitest.NewClient(t, e.n)
	phoneHolder(t, e, c)
	// The holder's number now refuses texts (an outage, a relay's refusal).
	e.sms.mu.Lock()
	e.sms.refuse["+14155552671"] = true
	e.sms.mu.Unlock()
	start := func(number string) apitest.Response {
		return c.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"`+number+`"}`, nil)
	}
	for _, number := range []string{"+14155552671", "+14155559999"} {
		if r := start(number); r.Status != 200 {
			t.Fatalf("first start for %s: %d %s", number, r.Status, r.Raw)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(e.n.Logs.String(), "sending a one-time code failed"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the failed send was not recorded")
		}
	}
	known, unknown := start("+14155552671"), start("+14155559999")
	if known.Status != unknown.Status || known.Reason() != unknown.Reason() || known.Reason() != "ResendTooSoon" {
		t.Fatalf("second start: the holder's %d %s, nobody's %d %s", known.Status, known.Raw, unknown.Status, unknown.Raw)
	}
	// The code that never arrived matches nothing, whatever it was.
	if r := c.PostJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"+14155552671","code":"000000","session_type":"refresh_token"}`, nil); r.Status == 200 {
		t.Fatalf("a disarmed code signed in: %s", r.Raw)
	}
}

// TestCodeSignInEndsAnUnprovenPassword: where verification is optional,
// anybody may register somebody else's address with a password of their
// own and wait. When the address's holder signs in by a code, that
// password and every session it opened end (user.password.removed.v1), so
// the account is the holder's alone; a password chosen after the address
// was proved stays.
func TestCodeSignInEndsAnUnprovenPassword(t *testing.T) {
	e := startOTP(t, emailCodes)
	ctx := context.Background()
	squatter := apitest.NewClient(t, e.n)
	sub := apitest.RegularUser(t, squatter, "ada@example.com")
	early, err := e.n.Service.StartSession(ctx, sub, app.NewSession{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken, Method: domain.MethodPassword}, app.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RecordSecret("refresh token", early.SessionToken)
	// …and links an account of theirs at an identity provider to it.
	squattersGitHub := domain.ExternalRef{Provider: "github", Subject: "squatter-42"}
	if err := e.n.Service.LinkExternal(ctx, sub, 0, squattersGitHub, app.Meta{}); err != nil {
		t.Fatal(err)
	}
	// They also hold, for later, an authorization code of a hosted
	// sign-in and a link started (to their GitLab) but not finished.
	verifier, challenge := apitest.PKCE()
	heldCode, err := e.n.Service.IssueAuthorizationCode(ctx, app.AuthorizationRequest{ClientID: "idstream-dev",
		RedirectURI: "http://localhost:3000/after", CodeChallenge: challenge, Scope: "openid offline_access", UserID: sub})
	if err != nil {
		t.Fatal(err)
	}
	testenv.RecordSecret("authorization code", heldCode)
	atStart := 0 // the squatter's CredentialEpoch when the link began

	holder := apitest.NewClient(t, e.n)
	signIn := func(n int) apitest.Response {
		t.Helper()
		if r := holder.PostJSON("/api/signin/code/start", `{"client_id":"idstream-dev","login_id":"ada@example.com"}`, nil); r.Status != 200 {
			t.Fatalf("start: %d %s", r.Status, r.Raw)
		}
		code := e.mail.WaitMail(t, n).Code()
		return holder.PostJSON("/api/signin/code/verify", `{"client_id":"idstream-dev","login_id":"ada@example.com","code":"`+code+`","session_type":"refresh_token"}`, nil)
	}
	r := signIn(1)
	if r.Status != 200 {
		t.Fatalf("code sign-in: %d %s", r.Status, r.Raw)
	}
	at := apitest.Str(r.Result(), "access_token")
	if info := holder.Userinfo(at); info.Status != 200 || apitest.Str(info.Body, "sub") != sub {
		t.Fatalf("the holder's session: %d %s", info.Status, info.Raw)
	}
	if _, err := e.n.Service.AuthenticatePassword(ctx, "", "ada@example.com", apitest.GoodPassword, "192.0.2.1", app.Meta{}); !errors.Is(err, app.ErrInvalidCredentials) {
		t.Fatalf("the unproven password still signs in: %v", err)
	}
	if r := apitest.Refresh(squatter, early.SessionToken); r.Status == 200 {
		t.Fatalf("a session of the unproven password refreshed: %s", r.Raw)
	}
	// What they held for later starts nothing now.
	if r := squatter.Exchange(heldCode, verifier); r.Status != 400 || apitest.Str(r.Body, "error") != "invalid_grant" {
		t.Fatalf("an authorization code issued before the code sign-in: %d %s", r.Status, r.Raw)
	}
	if err := e.n.Service.LinkExternal(ctx, sub, atStart, domain.ExternalRef{Provider: "gitlab", Subject: "squatter-43"}, app.Meta{}); !errors.Is(err, app.ErrSignInChanged) {
		t.Fatalf("a link started before the code sign-in: %v", err)
	}
	// A hosted sign-in with the old password that ends its flow after the
	// code sign-in (the two at once) starts no cookie session.
	flow := app.CodeEntry{Kind: app.CodeFlow, ClientID: "idstream-dev", ResponseType: "none", ExpiresAt: e.n.Clock.Now().Add(time.Minute)}
	if err := e.n.Service.PutCode(ctx, "late-flow", flow); err != nil {
		t.Fatal(err)
	}
	if _, err := e.n.Service.EndFlow(ctx, app.EndFlow{FlowID: "late-flow", Flow: flow, UserID: sub, Epoch: &atStart}); !errors.Is(err, app.ErrSignInChanged) {
		t.Fatalf("a flow ended on the old password's sign-in: %v", err)
	}
	// The provider's identity was released with the password: signing in
	// with it makes a new account, not the holder's.
	if u, err := e.n.Service.SignInExternal(ctx, "idstream-dev", squattersGitHub, "192.0.2.9", app.Meta{}); err != nil || u.UserID() == sub {
		t.Fatalf("the squatter's identity at the provider after the code sign-in: %v %v", u.UserID(), err)
	}
	userRecs, _, err := e.n.Store.Load(ctx, e.n.Store.Subject("user", sub))
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, rec := range userRecs {
		if rec.Type == domain.TypePasswordRemoved {
			removed++
		}
	}
	sessRecs, _, err := e.n.Store.Load(ctx, e.n.Store.Subject("session", early.SessionID))
	if err != nil || len(sessRecs) == 0 {
		t.Fatalf("the early session's events: %d %v", len(sessRecs), err)
	}
	if last := sessRecs[len(sessRecs)-1]; removed != 1 || last.Type != domain.TypeSessionRevoked || !strings.Contains(string(last.Data), `"reason":"password_removed"`) {
		t.Fatalf("%d password removals; the early session ends with %s %s", removed, last.Type, last.Data)
	}

	// The holder sets a password of their own (reset), which stays through
	// the next sign-in by code: the address is proved now.
	if r := holder.PostJSON("/api/password/forgot", `{"client_id":"idstream-dev","login_id":"ada@example.com"}`, nil); r.Status != 200 {
		t.Fatalf("forgot: %d %s", r.Status, r.Raw)
	}
	code := e.mail.WaitMail(t, 2).Code()
	if r := holder.PostJSON("/api/password/reset", `{"client_id":"idstream-dev","login_id":"ada@example.com","code":"`+code+`","new_password":"the-holders-own-secret-9"}`, nil); r.Status != 200 {
		t.Fatalf("reset: %d %s", r.Status, r.Raw)
	}
	if r := signIn(3); r.Status != 200 {
		t.Fatalf("second code sign-in: %d %s", r.Status, r.Raw)
	}
	if _, err := e.n.Service.AuthenticatePassword(ctx, "", "ada@example.com", "the-holders-own-secret-9", "192.0.2.1", app.Meta{}); err != nil {
		t.Fatalf("the holder's own password: %v", err)
	}
}
