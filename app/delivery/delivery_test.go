package delivery_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/text/language"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/testenv"
)

func codeMessage(to string) delivery.Message {
	return delivery.Message{Channel: delivery.Email, To: to, Kind: delivery.KindVerify, Locale: "en", AppName: "Acme Notes",
		SenderName: "Acme", Code: "493817", Lifetime: 10 * time.Minute}
}

func mailer(t *testing.T, srv *testenv.SMTPServer, o delivery.SMTPOptions) *delivery.SMTP {
	t.Helper()
	o.Host, o.Port, o.From = "127.0.0.1", srv.Port, "no-reply@acme.example"
	if o.TLSConfig == nil {
		o.TLSConfig = &tls.Config{RootCAs: srv.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	}
	m, err := delivery.NewSMTP(o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSMTPStartTLSWithAuthDeliversPlainAndHTML(t *testing.T) {
	srv := testenv.StartSMTP(t, testenv.SMTPOptions{Username: "mailer", Password: "s3cret-pass"})
	m := mailer(t, srv, delivery.SMTPOptions{TLS: delivery.TLSStartTLS, Username: "mailer", Password: "s3cret-pass"})
	if err := m.Send(context.Background(), codeMessage("ada@example.com")); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitMail(t, 1)
	if !got.TLS || !got.Authed {
		t.Fatalf("TLS %v, authenticated %v; want both", got.TLS, got.Authed)
	}
	if got.From != "no-reply@acme.example" || len(got.To) != 1 || got.To[0] != "ada@example.com" {
		t.Fatalf("envelope %q → %q", got.From, got.To)
	}
	if from := got.Header.Get("From"); from != `"Acme" <no-reply@acme.example>` {
		t.Fatalf("From header %q", from)
	}
	if subj := got.Header.Get("Subject"); subj != "Your Acme Notes verification code" {
		t.Fatalf("Subject %q", subj)
	}
	if got.Code() != "493817" || !strings.Contains(got.Text, "10 minutes") {
		t.Fatalf("plain text %q", got.Text)
	}
	if !strings.Contains(got.HTML, "493817") || !strings.Contains(got.HTML, "Acme Notes") {
		t.Fatalf("HTML part %q", got.HTML)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	srv := testenv.StartSMTP(t, testenv.SMTPOptions{Implicit: true})
	m := mailer(t, srv, delivery.SMTPOptions{TLS: delivery.TLSImplicit})
	if err := m.Send(context.Background(), codeMessage("ada@example.com")); err != nil {
		t.Fatal(err)
	}
	if got := srv.WaitMail(t, 1); !got.TLS || got.Code() != "493817" {
		t.Fatalf("TLS %v code %q", got.TLS, got.Code())
	}
}

func TestSMTPRefusesAnUntrustedCertificate(t *testing.T) {
	srv := testenv.StartSMTP(t, testenv.SMTPOptions{})
	m := mailer(t, srv, delivery.SMTPOptions{TLS: delivery.TLSStartTLS, TLSConfig: &tls.Config{ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	err := m.Send(context.Background(), codeMessage("ada@example.com"))
	if !errors.Is(err, delivery.ErrFailed) {
		t.Fatalf("got %v, want ErrFailed", err)
	}
	if n := len(srv.Mails()); n != 0 {
		t.Fatalf("%d messages arrived", n)
	}
}

func TestSMTPInternationalisedDomainIsPunycode(t *testing.T) {
	srv := testenv.StartSMTP(t, testenv.SMTPOptions{})
	m := mailer(t, srv, delivery.SMTPOptions{})
	if err := m.Send(context.Background(), codeMessage("jürgen@bücher.example")); err != nil {
		t.Fatal(err)
	}
	got := srv.WaitMail(t, 1)
	if len(got.To) != 1 || got.To[0] != "jürgen@xn--bcher-kva.example" {
		t.Fatalf("RCPT TO %q", got.To)
	}
	if _, err := delivery.EmailAddress("a@exa mple.com"); !errors.Is(err, delivery.ErrInvalidRecipient) {
		t.Fatalf("a space in the domain: %v", err)
	}
	// The error reaches the log, which never names an address.
	if _, err := delivery.EmailAddress("a@foo_bar.com"); !errors.Is(err, delivery.ErrInvalidRecipient) || strings.Contains(err.Error(), "foo_bar") {
		t.Fatalf("an underscore in the domain: %v", err)
	}
	if _, err := delivery.EmailAddress("a@-bad-.xn--"); !errors.Is(err, delivery.ErrInvalidRecipient) {
		t.Fatalf("a bad IDN: %v", err)
	}
}

func TestSMTPHeaderInjectionRefused(t *testing.T) {
	srv := testenv.StartSMTP(t, testenv.SMTPOptions{})
	m := mailer(t, srv, delivery.SMTPOptions{})
	for name, msg := range map[string]delivery.Message{
		"address":    codeMessage("ada@example.com\r\nBcc: eve@example.com"),
		"address LF": codeMessage("ada@example.com\nBcc: eve@example.com"),
		"sender name": func() delivery.Message {
			x := codeMessage("ada@example.com")
			x.SenderName = "Acme\r\nBcc: eve@example.com"
			return x
		}(),
		"app name": func() delivery.Message {
			x := codeMessage("ada@example.com")
			x.AppName = "Acme\nBcc: eve@example.com"
			return x
		}(),
	} {
		if err := m.Send(context.Background(), msg); !errors.Is(err, delivery.ErrHeaderInjection) {
			t.Errorf("%s: got %v, want ErrHeaderInjection", name, err)
		}
		if err := (delivery.Router{Email: m}).Send(context.Background(), msg); !errors.Is(err, delivery.ErrInvalidRecipient) {
			t.Errorf("%s through the router: got %v", name, err)
		}
	}
	if n := len(srv.Mails()); n != 0 {
		t.Fatalf("%d messages arrived", n)
	}
}

func TestSMTPFailures(t *testing.T) {
	t.Run("server down", func(t *testing.T) {
		srv := testenv.StartSMTP(t, testenv.SMTPOptions{})
		m := mailer(t, srv, delivery.SMTPOptions{})
		srv.Close()
		if err := m.Send(context.Background(), codeMessage("ada@example.com")); !errors.Is(err, delivery.ErrFailed) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("recipient refused", func(t *testing.T) {
		srv := testenv.StartSMTP(t, testenv.SMTPOptions{RejectRcpt: func(string) error {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
		}})
		m := mailer(t, srv, delivery.SMTPOptions{})
		err := m.Send(context.Background(), codeMessage("nobody@example.com"))
		if !errors.Is(err, delivery.ErrInvalidRecipient) || errors.Is(err, delivery.ErrFailed) {
			t.Fatalf("got %v, want ErrInvalidRecipient", err)
		}
	})
	t.Run("temporary refusal", func(t *testing.T) {
		srv := testenv.StartSMTP(t, testenv.SMTPOptions{RejectRcpt: func(string) error {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		}})
		m := mailer(t, srv, delivery.SMTPOptions{})
		if err := m.Send(context.Background(), codeMessage("ada@example.com")); !errors.Is(err, delivery.ErrFailed) {
			t.Fatalf("got %v, want ErrFailed", err)
		}
	})
	t.Run("5xx after data", func(t *testing.T) {
		srv := testenv.StartSMTP(t, testenv.SMTPOptions{RejectData: &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "rejected"}})
		m := mailer(t, srv, delivery.SMTPOptions{})
		if err := m.Send(context.Background(), codeMessage("ada@example.com")); !errors.Is(err, delivery.ErrFailed) {
			t.Fatalf("got %v, want ErrFailed", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		srv := testenv.StartSMTP(t, testenv.SMTPOptions{Username: "mailer", Password: "right-one"})
		m := mailer(t, srv, delivery.SMTPOptions{Username: "mailer", Password: "wrong-one"})
		err := m.Send(context.Background(), codeMessage("ada@example.com"))
		if !errors.Is(err, delivery.ErrFailed) {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(err.Error(), "wrong-one") {
			t.Fatalf("the error carries the password: %v", err)
		}
	})
	t.Run("server that never answers", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		var conns sync.WaitGroup
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				conns.Add(1)
				go func() { defer conns.Done(); _, _ = io.Copy(io.Discard, c) }()
			}
		}()
		m, err := delivery.NewSMTP(delivery.SMTPOptions{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, From: "no-reply@acme.example",
			Timeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Send(context.Background(), codeMessage("ada@example.com")); !errors.Is(err, delivery.ErrFailed) {
			t.Fatalf("got %v, want ErrFailed", err)
		}
	})
}

func TestSMTPOptionsValidated(t *testing.T) {
	for name, o := range map[string]delivery.SMTPOptions{
		"no host":       {From: "a@b.example"},
		"bad from":      {Host: "mail.example", From: "Acme <a@b.example>"},
		"injected from": {Host: "mail.example", From: "a@b.example\r\nBcc: x@y.example"},
		"bad tls":       {Host: "mail.example", From: "a@b.example", TLS: "maybe"},
		"half auth":     {Host: "mail.example", From: "a@b.example", Username: "u"},
	} {
		if _, err := delivery.NewSMTP(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTwilioCompatibleAPI(t *testing.T) {
	var mu sync.Mutex
	var got url.Values
	var user, pass, path string
	status, answer := http.StatusCreated, `{"sid":"SM1"}`
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		_ = r.ParseForm()
		got, path = r.PostForm, r.URL.Path
		user, pass, _ = r.BasicAuth()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	defer ts.Close()
	s := delivery.TextSender{Provider: delivery.Twilio{BaseURL: ts.URL, AccountSID: "AC123", AuthToken: "tw-token", From: "+15005550006"}}
	msg := delivery.Message{Channel: delivery.SMS, To: "+14155552671", Kind: delivery.KindSignIn, AppName: "Acme", Code: "204918", Lifetime: 5 * time.Minute}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if path != "/2010-04-01/Accounts/AC123/Messages.json" || user != "AC123" || pass != "tw-token" {
		t.Fatalf("path %q auth %q/%q", path, user, pass)
	}
	if got.Get("To") != "+14155552671" || got.Get("From") != "+15005550006" || !strings.HasPrefix(got.Get("Body"), "204918 is your Acme sign-in code") {
		t.Fatalf("form %v", got)
	}
	status, answer = http.StatusBadRequest, `{"code":21211,"message":"The 'To' number is not a valid phone number."}`
	mu.Unlock()
	if err := s.Send(context.Background(), msg); !errors.Is(err, delivery.ErrInvalidRecipient) {
		t.Fatalf("refused number: %v", err)
	}
	mu.Lock()
	status, answer = http.StatusInternalServerError, `{}`
	mu.Unlock()
	if err := s.Send(context.Background(), msg); !errors.Is(err, delivery.ErrFailed) {
		t.Fatalf("5xx: %v", err)
	}
	msg.To = "+1415\r\n555"
	if err := s.Send(context.Background(), msg); !errors.Is(err, delivery.ErrInvalidRecipient) {
		t.Fatalf("a malformed number: %v", err)
	}
}

func TestSMSProviderTimeoutAndDown(t *testing.T) {
	block := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer ts.Close()
	defer close(block)
	msg := delivery.Message{Channel: delivery.SMS, To: "+14155552671", Kind: delivery.KindVerify, AppName: "Acme", Code: "111222"}
	s := delivery.TextSender{Provider: delivery.Webhook{URL: ts.URL, Secret: strings.Repeat("k", 32), HTTP: &http.Client{Timeout: 200 * time.Millisecond}}}
	err := s.Send(context.Background(), msg)
	if !errors.Is(err, delivery.ErrFailed) || strings.Contains(err.Error(), ts.URL) {
		t.Fatalf("timeout: %v", err)
	}
	down := delivery.TextSender{Provider: delivery.Twilio{BaseURL: "http://127.0.0.1:1", AccountSID: "AC1", AuthToken: "t", From: "+15005550006"}}
	if err := down.Send(context.Background(), msg); !errors.Is(err, delivery.ErrFailed) {
		t.Fatalf("down: %v", err)
	}
}

func TestSignedWebhook(t *testing.T) {
	secret := "whsec-0123456789abcdef0123456789abcdef"
	type received struct {
		body []byte
		sig  string
	}
	got := make(chan received, 4)
	status := http.StatusNoContent
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{b, r.Header.Get(delivery.SignatureHeader)}
		w.WriteHeader(status)
	}))
	defer ts.Close()
	w := delivery.Webhook{URL: ts.URL, Secret: secret}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	s := delivery.TextSender{Provider: w}
	msg := delivery.Message{Channel: delivery.SMS, To: "+447911123456", Kind: delivery.KindResetPassword, AppName: "Acme", Code: "777123", Lifetime: 5 * time.Minute}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if !delivery.VerifySignature(secret, r.sig, r.body, time.Now(), time.Minute) {
		t.Fatalf("signature %q does not verify", r.sig)
	}
	if delivery.VerifySignature("another-secret-another-secret-xx", r.sig, r.body, time.Now(), time.Minute) {
		t.Fatal("verified with another secret")
	}
	if delivery.VerifySignature(secret, r.sig, append(r.body, ' '), time.Now(), time.Minute) {
		t.Fatal("verified a changed body")
	}
	if delivery.VerifySignature(secret, r.sig, r.body, time.Now().Add(10*time.Minute), time.Minute) {
		t.Fatal("verified a stale timestamp")
	}
	var p map[string]string
	if err := json.Unmarshal(r.body, &p); err != nil || p["to"] != "+447911123456" || p["code"] != "777123" || p["kind"] != "reset_password" {
		t.Fatalf("payload %s", r.body)
	}
	status = http.StatusUnprocessableEntity
	if err := s.Send(context.Background(), msg); !errors.Is(err, delivery.ErrInvalidRecipient) {
		t.Fatalf("422: %v", err)
	}
	<-got
	status = http.StatusBadGateway
	if err := s.Send(context.Background(), msg); !errors.Is(err, delivery.ErrFailed) {
		t.Fatalf("502: %v", err)
	}
	if err := (delivery.Webhook{URL: ts.URL, Secret: "short"}).Validate(); err == nil {
		t.Fatal("a short secret was accepted")
	}
	// Codes and credentials travel in these requests: https, or plain http
	// to this machine only.
	for raw, ok := range map[string]bool{"https://sms.example/send": true, "http://127.0.0.1:9/send": true, "http://localhost/x": true,
		"http://[::1]:8/x": true, "http://sms.example/send": false, "http://10.0.0.7/send": false, "ftp://sms.example/": false} {
		if err := (delivery.Webhook{URL: raw, Secret: secret}).Validate(); (err == nil) != ok {
			t.Errorf("webhook %s: %v", raw, err)
		}
		tw := delivery.Twilio{AccountSID: "AC1", AuthToken: "token", From: "+15005550006", BaseURL: raw}
		if err := tw.Validate(); (err == nil) != ok {
			t.Errorf("twilio %s: %v", raw, err)
		}
	}
	<-got // the 502's
	// A redirect is not followed: the message would be posted wherever it
	// points.
	moved := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, ts.URL, http.StatusTemporaryRedirect)
	}))
	defer moved.Close()
	if err := (delivery.TextSender{Provider: delivery.Webhook{URL: moved.URL, Secret: secret}}).Send(context.Background(), msg); err == nil {
		t.Fatal("a 307 counted as sent")
	}
	select {
	case r := <-got:
		t.Fatalf("the redirect was followed: %s", r.body)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestOutboxIsMarkedDevelopmentMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	o := &delivery.Outbox{Dir: dir}
	r := delivery.Router{Email: o, SMS: o}
	if err := r.Send(context.Background(), codeMessage("ada@bücher.example")); err != nil {
		t.Fatal(err)
	}
	sms := delivery.Message{Channel: delivery.SMS, To: "+14155552671", Kind: delivery.KindSignIn, AppName: "Acme", Code: "650012", Lifetime: 5 * time.Minute}
	if err := r.Send(context.Background(), sms); err != nil {
		t.Fatal(err)
	}
	latest, err := delivery.Latest(dir, 5)
	if err != nil || len(latest) != 2 {
		t.Fatalf("latest %d, %v", len(latest), err)
	}
	if !strings.HasPrefix(latest[0], delivery.DevBanner) || !strings.Contains(latest[0], "650012") || !strings.Contains(latest[0], "To: +14155552671") {
		t.Fatalf("newest %q", latest[0])
	}
	if !strings.Contains(latest[1], "493817") || !strings.Contains(latest[1], "To: ada@xn--bcher-kva.example") {
		t.Fatalf("older %q", latest[1])
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("%s has mode %v", e.Name(), info.Mode().Perm())
		}
	}
	if err := r.Send(context.Background(), codeMessage("ada@example.com\nBcc: x@y")); !errors.Is(err, delivery.ErrInvalidRecipient) {
		t.Fatalf("injection into the outbox: %v", err)
	}
}

func TestCatalogueLookup(t *testing.T) {
	de := delivery.English
	de.Subject = map[delivery.Kind]string{delivery.KindVerify: "Ihr Bestätigungscode für {{.AppName}}"}
	c := delivery.NewCatalogue(map[language.Tag]delivery.Texts{language.German: de})
	for locale, want := range map[string]string{
		"de": "Ihr Bestätigungscode für Acme", "de-CH": "Ihr Bestätigungscode für Acme", "fr-CA,de;q=0.8": "Ihr Bestätigungscode für Acme",
		"en-GB": "Your Acme verification code", "": "Your Acme verification code", "xx-bogus-%%": "Your Acme verification code",
		"ja": "Your Acme verification code",
	} {
		r, err := c.Render(delivery.Message{Kind: delivery.KindVerify, Locale: locale, AppName: "Acme", Code: "1"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Subject != want {
			t.Errorf("%q: subject %q, want %q", locale, r.Subject, want)
		}
	}
	// HTML escapes the app's name.
	r, _ := delivery.DefaultCatalogue.Render(delivery.Message{Kind: delivery.KindVerify, AppName: "<b>Acme</b>", Code: "1"})
	if strings.Contains(r.HTML, "<b>Acme") {
		t.Fatalf("HTML not escaped: %s", r.HTML)
	}
}
