package app

import (
	"context"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// DeliveryStatus is what the configuration says of code delivery, with
// every secret reduced to whether it is set (the portal shows it).
type DeliveryStatus struct {
	Dev       bool
	OutboxDir string
	// SMTP.
	SMTPHost, SMTPTLS, SMTPFrom, SMTPUsername string
	SMTPPort                                  int
	SMTPPasswordSet                           bool
	// SMS.
	SMSProvider, SMSURL, SMSAccountSID, SMSFrom string
	SMSAuthTokenSet, SMSWebhookSecretSet        bool
}

// DeliveryStatus reports the configured delivery, secrets masked.
func (s *Admin) DeliveryStatus() DeliveryStatus {
	c := s.cfg
	return DeliveryStatus{Dev: c.Dev, OutboxDir: c.OutboxDir(),
		SMTPHost: c.SMTP.Host, SMTPPort: c.SMTP.Port, SMTPTLS: c.SMTP.TLS, SMTPFrom: c.SMTP.From, SMTPUsername: c.SMTP.Username,
		SMTPPasswordSet: c.SMTP.Password != "",
		SMSProvider:     c.SMS.Provider, SMSURL: c.SMS.URL, SMSAccountSID: c.SMS.AccountSID, SMSFrom: c.SMS.From,
		SMSAuthTokenSet: c.SMS.AuthToken != "", SMSWebhookSecretSet: c.SMS.WebhookSecret != ""}
}

// SendTestMessage sends an operator's test message (a random code that
// works for nothing) to an email address or phone number, through the same
// delivery as the codes and under the per-address send limit; a failure
// is the answer.
func (s *Admin) SendTestMessage(ctx context.Context, to, ip string, meta Meta) (delivery.Channel, error) {
	id, err := loginid.Parse("", to)
	if err != nil {
		return "", err
	}
	channel := delivery.Email
	switch id.Type {
	case loginid.Phone:
		channel = delivery.SMS
	case loginid.Email:
	default:
		return "", domain.ErrNoCodeChannel
	}
	if err := s.sendLimits(ctx, ip, id); err != nil {
		return "", err
	}
	code, err := newOTP(s.random)
	if err != nil {
		return "", err
	}
	err = s.delivery.Send(ctx, delivery.Message{Channel: channel, To: id.Value, Kind: delivery.KindTest, AppName: "idstream",
		Code: code, Lifetime: s.CodeLifetime()})
	if err != nil {
		s.log.Warn("a test message failed", "channel", channel, "error", err, "correlation_id", meta.CorrelationID)
	}
	return channel, err
}
