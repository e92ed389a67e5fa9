package node

import (
	"log/slog"
	"net/http"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/config"
)

// deliveryFor builds the senders of one-time codes from the configuration:
// SMTP and an SMS provider when configured; in development mode, what is
// not configured goes to the outbox under the data directory (printed by
// `idstream outbox`). Outside development mode an unconfigured channel
// refuses to send (delivery.ErrNotConfigured).
func deliveryFor(cfg *config.Config, log *slog.Logger) (delivery.Sender, error) {
	var r delivery.Router
	var outbox *delivery.Outbox
	if cfg.Dev {
		outbox = &delivery.Outbox{Dir: cfg.OutboxDir()}
	}
	if m := cfg.SMTP; m.Host != "" {
		s, err := delivery.NewSMTP(delivery.SMTPOptions{Host: m.Host, Port: m.Port, TLS: m.TLS, Username: m.Username, Password: m.Password,
			From: m.From, Timeout: m.Timeout.D()})
		if err != nil {
			return nil, err
		}
		r.Email = s
	} else if outbox != nil {
		r.Email = outbox
	}
	httpc := &http.Client{Timeout: cfg.SMS.Timeout.D()}
	if cfg.SMS.Timeout == 0 {
		httpc = nil // the provider's default
	}
	switch s := cfg.SMS; s.Provider {
	case "twilio":
		t := delivery.Twilio{BaseURL: s.URL, AccountSID: s.AccountSID, AuthToken: s.AuthToken, From: s.From, HTTP: httpc}
		if err := t.Validate(); err != nil {
			return nil, err
		}
		r.SMS = delivery.TextSender{Provider: t}
	case "webhook":
		w := delivery.Webhook{URL: s.URL, Secret: s.WebhookSecret, HTTP: httpc}
		if err := w.Validate(); err != nil {
			return nil, err
		}
		r.SMS = delivery.TextSender{Provider: w}
	default:
		if outbox != nil {
			r.SMS = outbox
		}
	}
	if outbox != nil && (r.Email == outbox || r.SMS == outbox) {
		// Where, never what: the codes stay out of the log.
		log.Warn("development mode: one-time codes are not sent but written to the outbox; print them with `idstream outbox`",
			"outbox", outbox.Dir, "email", r.Email == outbox, "sms", r.SMS == outbox)
	}
	return r, nil
}
