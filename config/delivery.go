package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// SMTP is the mail server one-time codes go out through; without a host,
// development mode writes messages to the outbox and other modes cannot
// send email.
type SMTP struct {
	Host string `yaml:"host"`
	Port int    `yaml:"port"`
	// TLS is "starttls" (default, port 587), "tls" (implicit, port 465) or
	// "none" (a relay on loopback only).
	TLS      string `yaml:"tls"`
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// From is the sender address; the display name is the client
	// application's name.
	From    string   `yaml:"from"`
	Timeout Duration `yaml:"timeout"`
}

// SMS is the text-message provider.
type SMS struct {
	// Provider is "twilio" (a Twilio-compatible Messages API) or "webhook"
	// (the application's own endpoint, HMAC-signed).
	Provider string `yaml:"provider"`
	// URL: the API's base URL (twilio; default https://api.twilio.com) or
	// the webhook's URL.
	URL        string `yaml:"url"`
	AccountSID string `yaml:"account_sid"`
	AuthToken  string `yaml:"auth_token"`
	// From is the sending number or messaging service SID (twilio).
	From string `yaml:"from"`
	// WebhookSecret signs webhook calls (at least 32 characters).
	WebhookSecret string   `yaml:"webhook_secret"`
	Timeout       Duration `yaml:"timeout"`
}

// OutboxDir is where development mode writes the messages it cannot send.
func (c *Config) OutboxDir() string { return strings.TrimRight(c.DataDir, "/") + "/outbox" }

// loadDeliveryEnv reads the IDSTREAM_SMTP_* and IDSTREAM_SMS_* variables
// and the verification seed (IDSTREAM_VERIFICATION).
func loadDeliveryEnv(c *Config, getenv func(string) string) error {
	for name, dst := range map[string]*string{
		"IDSTREAM_SMTP_HOST": &c.SMTP.Host, "IDSTREAM_SMTP_TLS": &c.SMTP.TLS, "IDSTREAM_SMTP_USERNAME": &c.SMTP.Username,
		"IDSTREAM_SMTP_PASSWORD": &c.SMTP.Password, "IDSTREAM_SMTP_FROM": &c.SMTP.From,
		"IDSTREAM_SMS_PROVIDER": &c.SMS.Provider, "IDSTREAM_SMS_URL": &c.SMS.URL, "IDSTREAM_SMS_ACCOUNT_SID": &c.SMS.AccountSID,
		"IDSTREAM_SMS_AUTH_TOKEN": &c.SMS.AuthToken, "IDSTREAM_SMS_FROM": &c.SMS.From, "IDSTREAM_SMS_WEBHOOK_SECRET": &c.SMS.WebhookSecret,
		"IDSTREAM_VERIFICATION": &c.Verification.Promotion,
	} {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	if v := getenv("IDSTREAM_SMTP_PORT"); v != "" && !serviceLinkURL.MatchString(v) { // not idstream-smtp's service link
		n, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("config: IDSTREAM_SMTP_PORT=%q is not a number", v)
		}
		c.SMTP.Port = n
	}
	return nil
}

// SecureURL reports whether raw is an https URL, or plain http to a
// loopback address (a service on this machine): where credentials, codes
// or tokens may go.
func SecureURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return false
	}
	return u.Scheme == "https" || u.Scheme == "http" && loopbackHost(u.Hostname())
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	return ip != nil && ip.IsLoopback()
}

// validateDelivery checks the delivery settings; no secret is ever in an
// error.
func (c *Config) validateDelivery() []error {
	var errs []error
	m := c.SMTP
	if m.Host != "" {
		if m.From == "" || strings.ContainsAny(m.From, "\r\n<> ") || !strings.Contains(m.From, "@") {
			errs = append(errs, errors.New("smtp.from must be a plain email address"))
		}
		if m.TLS != "" && m.TLS != "starttls" && m.TLS != "tls" && m.TLS != "none" {
			errs = append(errs, errors.New("smtp.tls must be starttls, tls or none"))
		}
		if m.TLS == "none" && !loopbackHost(m.Host) {
			errs = append(errs, errors.New("smtp.tls none sends passwords and codes in clear: only for a relay on loopback (127.0.0.1, ::1, localhost)"))
		}
		if m.Port < 0 || m.Port > 65535 {
			errs = append(errs, errors.New("smtp.port must be 1-65535"))
		}
		if (m.Username == "") != (m.Password == "") {
			errs = append(errs, errors.New("smtp: username and password go together"))
		}
	} else if m.Username != "" || m.Password != "" || m.From != "" {
		errs = append(errs, errors.New("smtp: from, username and password need smtp.host (IDSTREAM_SMTP_HOST)"))
	}
	s := c.SMS
	switch s.Provider {
	case "":
		if s.URL != "" || s.AccountSID != "" || s.AuthToken != "" || s.WebhookSecret != "" {
			errs = append(errs, errors.New("sms: the settings need sms.provider (IDSTREAM_SMS_PROVIDER: twilio or webhook)"))
		}
	case "twilio":
		if s.AccountSID == "" || s.AuthToken == "" || s.From == "" {
			errs = append(errs, errors.New("sms (twilio): account_sid, auth_token and from are required"))
		}
	case "webhook":
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, errors.New("sms (webhook): url must be an http(s) URL"))
		} else if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
			// Every code would cross the network in the clear.
			errs = append(errs, errors.New("sms (webhook): url must be https (plain http only to a loopback address)"))
		}
		if len(s.WebhookSecret) < 32 {
			errs = append(errs, errors.New("sms (webhook): webhook_secret needs at least 32 characters"))
		}
	default:
		errs = append(errs, errors.New("sms.provider must be twilio or webhook"))
	}
	return errs
}
