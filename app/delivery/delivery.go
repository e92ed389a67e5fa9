// Package delivery sends the messages idstream writes to people: one-time
// codes by email (SMTP) and by SMS (a Twilio-compatible API or a signed
// webhook the app answers), or, in development mode with nothing
// configured, into a local outbox. It is the app's outgoing port and its
// adapters in one room: a command sends a code while the person waits, so a
// failure is the command's answer ("we could not send it"), not a job's.
// It imports nothing of idstream, so app (and only app) calls it.
package delivery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Channel is how a message travels.
type Channel string

// Channels.
const (
	Email Channel = "email"
	SMS   Channel = "sms"
)

// Kind is what a message is for; each has its own words in the catalogue.
type Kind string

// Message kinds.
const (
	// KindVerify: prove a login ID the account already has.
	KindVerify Kind = "verify_login_id"
	// KindPromote: a guest becomes a regular user with this login ID.
	KindPromote Kind = "promote"
	// KindRegister: a new account (sign-up) with this login ID.
	KindRegister Kind = "register"
	// KindSignIn: sign in with a code instead of a password.
	KindSignIn Kind = "sign_in"
	// KindResetPassword: choose a new password.
	KindResetPassword Kind = "reset_password"
	// KindTest: an operator's test of the delivery settings.
	KindTest Kind = "test"
)

// Message is one code (or test) to send.
type Message struct {
	Channel Channel
	// To is an email address or an E.164 phone number.
	To   string
	Kind Kind
	// Locale is a BCP 47 tag ("en", "de-CH"); unknown ones fall back to English.
	Locale string
	// AppName names the application the person uses.
	AppName string
	// SenderName is the email From display name (per client application);
	// empty: AppName.
	SenderName string
	Code       string
	// Lifetime is how long the code works.
	Lifetime time.Duration
}

// Sender delivers messages.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Errors of delivery; the API gives each a stable reason.
var (
	// ErrInvalidRecipient: the address or number is malformed, carries a
	// line break (header injection), or the provider refused it.
	ErrInvalidRecipient = errors.New("delivery: the recipient cannot receive messages")
	// ErrFailed: the server or provider could not be reached, failed, or
	// timed out; nothing was sent (or it is unknown whether it was).
	ErrFailed = errors.New("delivery: the message could not be sent")
	// ErrNotConfigured: no sender is configured for the channel.
	ErrNotConfigured = errors.New("delivery: no sender is configured for this channel")
	// ErrHeaderInjection: a name or address carries CR, LF or NUL.
	ErrHeaderInjection = fmt.Errorf("%w: a line break in a name or address", ErrInvalidRecipient)
)

// checkHeaderValue refuses a value that would end a mail header early.
func checkHeaderValue(v string) error {
	if strings.ContainsAny(v, "\r\n\x00") {
		return ErrHeaderInjection
	}
	return nil
}

// Router sends each message by its channel.
type Router struct {
	Email Sender
	SMS   Sender
}

// Send implements Sender.
func (r Router) Send(ctx context.Context, m Message) error {
	if err := checkHeaderValue(m.To); err != nil {
		return err
	}
	var s Sender
	switch m.Channel {
	case Email:
		s = r.Email
	case SMS:
		s = r.SMS
	}
	if s == nil {
		return fmt.Errorf("%w: %s", ErrNotConfigured, m.Channel)
	}
	return s.Send(ctx, m)
}

// Has reports whether the channel has a sender.
func (r Router) Has(c Channel) bool {
	switch c {
	case Email:
		return r.Email != nil
	case SMS:
		return r.SMS != nil
	}
	return false
}
