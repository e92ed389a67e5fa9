package delivery

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/idstream/idstream/loginid"
)

// TLS modes of SMTP.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS, which the
	// server must offer (submission, port 587).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (port 465).
	TLSImplicit = "tls"
	// TLSNone sends in clear: only for a relay on loopback.
	TLSNone = "none"
)

// SMTPOptions configure the mailer.
type SMTPOptions struct {
	Host string
	Port int
	// TLS is TLSStartTLS (default), TLSImplicit or TLSNone.
	TLS string
	// Username and Password, if set, authenticate (PLAIN or LOGIN, over TLS).
	Username, Password string
	// From is the envelope and header sender address.
	From string
	// Timeout bounds one delivery (connect, TLS, auth, send); default 10s.
	Timeout time.Duration
	// TLSConfig overrides the TLS settings (tests: a private CA).
	TLSConfig *tls.Config
	Catalogue *Catalogue
}

func (o *SMTPOptions) setDefaults() {
	if o.TLS == "" {
		o.TLS = TLSStartTLS
	}
	if o.Port == 0 {
		switch o.TLS {
		case TLSImplicit:
			o.Port = 465
		default:
			o.Port = 587
		}
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Catalogue == nil {
		o.Catalogue = DefaultCatalogue
	}
}

// Validate checks the options.
func (o SMTPOptions) Validate() error {
	var errs []error
	if o.Host == "" || strings.ContainsAny(o.Host, " \r\n/") {
		errs = append(errs, errors.New("smtp: host is required"))
	}
	if o.Port <= 0 || o.Port > 65535 {
		errs = append(errs, errors.New("smtp: port must be 1-65535"))
	}
	if o.TLS != TLSStartTLS && o.TLS != TLSImplicit && o.TLS != TLSNone {
		errs = append(errs, fmt.Errorf("smtp: tls must be %s, %s or %s", TLSStartTLS, TLSImplicit, TLSNone))
	}
	if _, err := EmailAddress(o.From); err != nil {
		errs = append(errs, errors.New("smtp: from must be a plain email address"))
	}
	if (o.Username == "") != (o.Password == "") {
		errs = append(errs, errors.New("smtp: give both username and password, or neither"))
	}
	return errors.Join(errs...)
}

// SMTP sends email through one SMTP server.
type SMTP struct {
	o SMTPOptions
}

// NewSMTP checks the options and makes the mailer (no connection yet: each
// delivery dials, so a server that restarts costs nothing).
func NewSMTP(o SMTPOptions) (*SMTP, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &SMTP{o: o}, nil
}

// EmailAddress checks a bare address (no display name) and returns it with
// its domain in ASCII (IDNA punycode), as SMTP servers route it. A line
// break anywhere is ErrHeaderInjection.
func EmailAddress(addr string) (string, error) {
	if err := checkHeaderValue(addr); err != nil {
		return "", err
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || local == "" || domain == "" || strings.ContainsAny(addr, " <>\",;") {
		return "", ErrInvalidRecipient
	}
	ascii, err := loginid.DomainToASCII(domain)
	if err != nil {
		// Not the domain itself: this error reaches the log, which never
		// names an address.
		return "", fmt.Errorf("%w: the domain is not a valid internationalised domain name", ErrInvalidRecipient)
	}
	out := local + "@" + ascii
	if _, err := mail.ParseAddress(out); err != nil {
		return "", ErrInvalidRecipient
	}
	return out, nil
}

// Send implements Sender for email.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	msg, err := s.compose(m)
	if err != nil {
		return err
	}
	opts := []gomail.Option{gomail.WithPort(s.o.Port), gomail.WithTimeout(s.o.Timeout)}
	tlsCfg := s.o.TLSConfig
	if tlsCfg == nil {
		tlsCfg = &tls.Config{ServerName: s.o.Host, MinVersion: tls.VersionTLS12}
	}
	opts = append(opts, gomail.WithTLSConfig(tlsCfg))
	switch s.o.TLS {
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	case TLSStartTLS:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	}
	if s.o.Username != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(s.o.Username), gomail.WithPassword(s.o.Password))
	}
	c, err := gomail.NewClient(s.o.Host, opts...)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return sendError(err)
	}
	return nil
}

// sendError sorts a failed delivery: a recipient the server refused
// permanently (5xx to RCPT TO) is the recipient's fault; the rest is ours.
// The server's words may echo the address, never a code, but stay out of
// the error anyway beyond the status.
func sendError(err error) error {
	var se *gomail.SendError
	if errors.As(err, &se) {
		if se.Reason == gomail.ErrSMTPRcptTo && !se.IsTemp() {
			return fmt.Errorf("%w: the mail server refused the address (%d)", ErrInvalidRecipient, se.ErrorCode())
		}
		return fmt.Errorf("%w: %s (%d)", ErrFailed, se.Reason, se.ErrorCode())
	}
	// Not the error's text: a server's answer often quotes the recipient,
	// and this error reaches the log.
	var ne net.Error
	if errors.As(err, &ne) {
		if ne.Timeout() {
			return fmt.Errorf("%w: the mail server timed out", ErrFailed)
		}
		return fmt.Errorf("%w: the mail server could not be reached", ErrFailed)
	}
	return fmt.Errorf("%w: the mail server failed (%T)", ErrFailed, err)
}

// compose builds the MIME message: plain text with an HTML alternative.
func (s *SMTP) compose(m Message) (*gomail.Msg, error) {
	to, err := EmailAddress(m.To)
	if err != nil {
		return nil, err
	}
	name := m.SenderName
	if name == "" {
		name = m.AppName
	}
	r, err := s.o.Catalogue.Render(m)
	if err != nil {
		return nil, err
	}
	if err := errors.Join(checkHeaderValue(name), checkHeaderValue(r.Subject)); err != nil {
		return nil, ErrHeaderInjection
	}
	from, _ := EmailAddress(s.o.From)
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := msg.FromFormat(name, from); err != nil {
		return nil, fmt.Errorf("%w: sender name: %v", ErrInvalidRecipient, err)
	}
	if err := msg.To(to); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidRecipient, err)
	}
	msg.Subject(r.Subject)
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetMessageID()
	msg.SetDate()
	msg.SetBodyString(gomail.TypeTextPlain, r.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, r.HTML)
	return msg, nil
}
