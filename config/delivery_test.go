package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDeliveryFromTheEnvironment(t *testing.T) {
	env := map[string]string{"IDSTREAM_SMTP_HOST": "smtp.example.com", "IDSTREAM_SMTP_PORT": "2525", "IDSTREAM_SMTP_TLS": "tls",
		"IDSTREAM_SMTP_USERNAME": "mailer", "IDSTREAM_SMTP_PASSWORD": "smtp-secret-1", "IDSTREAM_SMTP_FROM": "no-reply@example.com",
		"IDSTREAM_SMS_PROVIDER": "webhook", "IDSTREAM_SMS_URL": "https://app.example.com/sms",
		"IDSTREAM_SMS_WEBHOOK_SECRET": strings.Repeat("s", 32), "IDSTREAM_VERIFICATION": "required"}
	c, err := LoadFrom(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.SMTP.Host != "smtp.example.com" || c.SMTP.Port != 2525 || c.SMTP.TLS != "tls" || c.SMTP.Password != "smtp-secret-1" ||
		c.SMS.Provider != "webhook" || c.Settings().Verification.Promotion != "required" {
		t.Fatalf("%+v %+v", c.SMTP, c.SMS)
	}
}

func TestDeliveryRefusals(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"clear text off loopback": {"IDSTREAM_SMTP_HOST": "smtp.example.com", "IDSTREAM_SMTP_TLS": "none", "IDSTREAM_SMTP_FROM": "a@example.com"},
		"from with a name":        {"IDSTREAM_SMTP_HOST": "smtp.example.com", "IDSTREAM_SMTP_FROM": "Acme <a@example.com>"},
		"half auth":               {"IDSTREAM_SMTP_HOST": "smtp.example.com", "IDSTREAM_SMTP_FROM": "a@example.com", "IDSTREAM_SMTP_USERNAME": "u"},
		"password without host":   {"IDSTREAM_SMTP_PASSWORD": "secret-value-2"},
		"unknown provider":        {"IDSTREAM_SMS_PROVIDER": "carrier-pigeon"},
		"twilio without token":    {"IDSTREAM_SMS_PROVIDER": "twilio", "IDSTREAM_SMS_ACCOUNT_SID": "AC1", "IDSTREAM_SMS_FROM": "+15005550006"},
		"short webhook secret":    {"IDSTREAM_SMS_PROVIDER": "webhook", "IDSTREAM_SMS_URL": "https://x.example", "IDSTREAM_SMS_WEBHOOK_SECRET": "short"},
		"bad verification":        {"IDSTREAM_VERIFICATION": "sometimes"},
	} {
		_, err := LoadFrom(func(k string) string { return env[k] })
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		for _, v := range env {
			if strings.Contains(v, "secret") && strings.Contains(err.Error(), v) {
				t.Errorf("%s: the error carries a secret: %v", name, err)
			}
		}
	}
	if _, err := LoadFrom(func(k string) string {
		return map[string]string{"IDSTREAM_SMTP_HOST": "127.0.0.1", "IDSTREAM_SMTP_TLS": "none", "IDSTREAM_SMTP_FROM": "a@example.com"}[k]
	}); err != nil {
		t.Errorf("clear text to a loopback relay: %v", err)
	}
}

func TestVerificationFromTheFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "idstream.yaml")
	yaml := `verification:
  promotion: required
  code_lifetime: 5m
  authenticators:
    email: [password, oob_otp]
    phone: [oob_otp]
  send_per_target: {burst: 3, per: 1h}
smtp:
  host: smtp.example.com
  from: no-reply@example.com
  timeout: 5s
`
	if err := os.WriteFile(f, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadFrom(func(k string) string { return map[string]string{"IDSTREAM_CONFIG": f}[k] })
	if err != nil {
		t.Fatal(err)
	}
	v := c.Settings().Verification
	if v.Promotion != "required" || v.CodeLifetime.Duration() != 5*time.Minute || !v.Offers("phone", "oob_otp") || v.Offers("phone", "password") ||
		v.SendPerTarget.Burst != 3 || v.SendPerTarget.Per.Duration() != time.Hour || c.SMTP.Timeout.D() != 5*time.Second {
		t.Fatalf("%+v", v)
	}
}
