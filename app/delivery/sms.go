package delivery

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SMSProvider sends one text message; the SMS sender renders the words.
type SMSProvider interface {
	SendText(ctx context.Context, to, body string, m Message) error
}

// TextSender is the Sender for SMS: it renders the message in its locale
// and hands the text to a provider.
type TextSender struct {
	Provider  SMSProvider
	Catalogue *Catalogue
}

// Send implements Sender.
func (t TextSender) Send(ctx context.Context, m Message) error {
	if !e164(m.To) {
		return fmt.Errorf("%w: not an E.164 phone number", ErrInvalidRecipient)
	}
	cat := t.Catalogue
	if cat == nil {
		cat = DefaultCatalogue
	}
	r, err := cat.Render(m)
	if err != nil {
		return err
	}
	return t.Provider.SendText(ctx, m.To, r.SMS, m)
}

func e164(v string) bool {
	if len(v) < 8 || len(v) > 16 || v[0] != '+' || v[1] == '0' {
		return false
	}
	for _, c := range v[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// httpTimeout bounds one provider call when the client has none.
const httpTimeout = 10 * time.Second

// httpClient follows no redirect: a provider that answers 307 would have
// the message (its code, the credentials) posted wherever it points.
func httpClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: httpTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// providerURL checks a provider's URL: https, or plain http to a loopback
// address only (a relay on the same machine, tests), since codes and
// credentials travel in its requests.
func providerURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	if u.Scheme == "https" {
		return true
	}
	if u.Scheme != "http" {
		return false
	}
	h := u.Hostname()
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// Twilio sends through Twilio's Messages API, or any service that speaks
// it: POST {BaseURL}/2010-04-01/Accounts/{AccountSID}/Messages.json with
// form To, From (or MessagingServiceSid), Body and HTTP basic auth.
type Twilio struct {
	// BaseURL defaults to https://api.twilio.com.
	BaseURL    string
	AccountSID string
	AuthToken  string
	// From is the sending number, or a messaging service SID (MG…).
	From string
	HTTP *http.Client
}

// Validate checks the provider's settings.
func (t Twilio) Validate() error {
	if t.AccountSID == "" || t.AuthToken == "" || t.From == "" {
		return errors.New("sms twilio: account SID, auth token and from are required")
	}
	if t.BaseURL != "" {
		if !providerURL(t.BaseURL) {
			return errors.New("sms twilio: base URL must be https (plain http only to a loopback address)")
		}
	}
	return nil
}

// Twilio's error codes for a number it will not send to.
var twilioRecipientCodes = map[int]bool{21211: true, 21212: true, 21214: true, 21217: true, 21408: true, 21610: true, 21612: true, 21614: true, 21635: true}

// SendText implements SMSProvider.
func (t Twilio) SendText(ctx context.Context, to, body string, _ Message) error {
	base := strings.TrimRight(t.BaseURL, "/")
	if base == "" {
		base = "https://api.twilio.com"
	}
	form := url.Values{"To": {to}, "Body": {body}}
	if strings.HasPrefix(t.From, "MG") {
		form.Set("MessagingServiceSid", t.From)
	} else {
		form.Set("From", t.From)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/2010-04-01/Accounts/"+url.PathEscape(t.AccountSID)+"/Messages.json",
		strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(t.AccountSID, t.AuthToken)
	resp, err := httpClient(t.HTTP).Do(req)
	if err != nil {
		return fmt.Errorf("%w: the SMS provider did not answer: %v", ErrFailed, redactURL(err))
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var e struct {
		Code int `json:"code"`
	}
	_ = json.Unmarshal(raw, &e)
	if resp.StatusCode >= 400 && resp.StatusCode < 500 && twilioRecipientCodes[e.Code] {
		return fmt.Errorf("%w: the SMS provider refused the number (code %d)", ErrInvalidRecipient, e.Code)
	}
	return fmt.Errorf("%w: the SMS provider answered %d (code %d)", ErrFailed, resp.StatusCode, e.Code)
}

// Webhook hands each text to the application's own endpoint, which sends
// it: POST JSON {"to","body","kind","locale","app_name","code"} signed with
// HMAC-SHA256 over "<timestamp>.<body>" in the header
// `Idstream-Signature: t=<unix seconds>,v1=<hex>`. 2xx is sent; 422 is a
// number the app will not send to; anything else failed.
type Webhook struct {
	URL    string
	Secret string
	HTTP   *http.Client
	// Now is the clock for the timestamp (tests).
	Now func() time.Time
}

// SignatureHeader carries the webhook's signature.
const SignatureHeader = "Idstream-Signature"

// Validate checks the webhook's settings.
func (w Webhook) Validate() error {
	if !providerURL(w.URL) {
		return errors.New("sms webhook: URL must be https (plain http only to a loopback address)")
	}
	if len(w.Secret) < 32 {
		return errors.New("sms webhook: the signing secret must have at least 32 characters")
	}
	return nil
}

// Sign is the signature header value of a webhook body at a time.
func Sign(secret string, at time.Time, body []byte) string {
	ts := strconv.FormatInt(at.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks a webhook's signature header (for receivers, and
// the tests): the HMAC in constant time, and the timestamp within
// tolerance of now.
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) bool {
	var ts, sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sig = v
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || sig == "" {
		return false
	}
	at := time.Unix(n, 0)
	if now.Sub(at) > tolerance || at.Sub(now) > tolerance {
		return false
	}
	want := Sign(secret, at, body)
	return hmac.Equal([]byte(want), []byte("t="+ts+",v1="+sig))
}

// SendText implements SMSProvider.
func (w Webhook) SendText(ctx context.Context, to, body string, m Message) error {
	payload, err := json.Marshal(map[string]string{"to": to, "body": body, "kind": string(m.Kind), "locale": m.Locale,
		"app_name": m.AppName, "code": m.Code})
	if err != nil {
		return err
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(SignatureHeader, Sign(w.Secret, now(), payload))
	resp, err := httpClient(w.HTTP).Do(req)
	if err != nil {
		return fmt.Errorf("%w: the SMS webhook did not answer: %v", ErrFailed, redactURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusUnprocessableEntity:
		return fmt.Errorf("%w: the SMS webhook refused the number", ErrInvalidRecipient)
	}
	return fmt.Errorf("%w: the SMS webhook answered %d", ErrFailed, resp.StatusCode)
}

// redactURL keeps the cause of a transport error and drops the URL, which
// may carry a secret in its query.
func redactURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return errors.New("timed out")
		}
		return ue.Err
	}
	return err
}
