package app

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// Purposes of one-time codes: a code is bound to one purpose, one target
// (login ID) and, for a signed-in person, one user; a code of one purpose
// or target never works for another.
const (
	PurposeVerify  = "verify_login_id"
	PurposePromote = "promote"
	PurposeSignIn  = "sign_in"
	PurposeReset   = "reset_password"
	// PurposeRegister: a sign-up completed by the code (registration.go).
	PurposeRegister = "register"
)

// One-time code rules.
const (
	// OTPDigits is the length of a code.
	OTPDigits = 6
	// OTPMaxTries is how many wrong codes a code survives; the fifth wrong
	// one ends it.
	OTPMaxTries = 5
	// OTPResendCooldown is how long after a send the next one is refused.
	OTPResendCooldown = 60 * time.Second
)

// Errors of one-time codes.
var (
	ErrInvalidCode = errors.New("the code is not right, or no code was sent for this")
	ErrCodeExpired = errors.New("the code has expired; ask for a new one")
	// ErrCodeAttempts: too many wrong codes; this code no longer works.
	ErrCodeAttempts = errors.New("too many wrong codes; ask for a new one")
	// ErrNoCodePending: a resend asked for a flow that was never started
	// (or whose code expired or was used).
	ErrNoCodePending = errors.New("no code is pending for this; start again")
	// ErrVerificationRequired: the project requires a code before an
	// email or phone promotion completes (use the code flow).
	ErrVerificationRequired = errors.New("this promotion needs the code sent to the login ID")
	// ErrVerificationOff: the project sends no verification codes.
	ErrVerificationOff = errors.New("verification by code is turned off for this project")
	// ErrAuthenticatorNotOffered: the login ID type does not offer this
	// way in (password or code).
	ErrAuthenticatorNotOffered = errors.New("this kind of login ID does not offer this way to sign in")
	// ErrAlreadyVerified: the login ID is proved already.
	ErrAlreadyVerified = errors.New("the login ID is verified already")
)

// ErrResendTooSoon matches any *ResendTooSoonError.
var ErrResendTooSoon = errors.New("a code was sent a moment ago")

// ResendTooSoonError says when the next code may be sent.
type ResendTooSoonError struct{ RetryAfter time.Duration }

func (e *ResendTooSoonError) Error() string {
	return fmt.Sprintf("a code was sent a moment ago; ask again in %s", e.RetryAfter.Round(time.Second))
}

// Is implements errors.Is.
func (e *ResendTooSoonError) Is(target error) bool { return target == ErrResendTooSoon }

// otpEntry is what a one-time code stands for, kept under its binding's key
// (otpKey) in the codes bucket: only a salted hash of the code is stored,
// never the code.
type otpEntry struct {
	Purpose     string `json:"purpose"`
	Target      string `json:"target"`
	LoginIDType string `json:"login_id_type"`
	LoginID     string `json:"login_id"`
	// UserID is the account (verification, sign-in, reset) or the guest
	// (promotion); empty for a login ID nobody holds (a decoy, see
	// sendAnonymous).
	UserID    string    `json:"user_id,omitempty"`
	ClientID  string    `json:"client_id,omitempty"`
	Locale    string    `json:"locale,omitempty"`
	Salt      string    `json:"salt"`
	Hash      string    `json:"hash"`
	Tries     int       `json:"tries"`
	SentAt    time.Time `json:"sent_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Promotion is what a promotion code completes, Registration what a
	// sign-up code does.
	Promotion    *PendingPromotion    `json:"promotion,omitempty"`
	Registration *PendingRegistration `json:"registration,omitempty"`
}

// decoy reports whether an entry stands for a login ID nobody holds (see
// anonymousBinding): its code is never sent. A promotion's and a sign-up's
// login ID is nobody's yet, and their codes are sent.
func (e otpEntry) decoy() bool {
	return e.UserID == "" && e.Purpose != PurposePromote && e.Purpose != PurposeRegister
}

// otpKey is the bucket key of a binding: purpose, subject (the user of a
// signed-in flow, empty otherwise) and target. The bucket keys it by its
// hash.
func otpKey(purpose, subject string, target loginid.ID) string {
	return "otp\x00" + purpose + "\x00" + subject + "\x00" + target.Key()
}

func otpHash(salt, code string) string {
	sum := sha256.Sum256([]byte(salt + "\x00" + code))
	return hex.EncodeToString(sum[:])
}

// newOTP draws a uniform six-digit code.
func newOTP(r io.Reader) (string, error) {
	const limit = 4294000000 // a multiple of 10^6 below 2^32: no modulo bias
	var b [4]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", err
		}
		if n := binary.BigEndian.Uint32(b[:]); n < limit {
			return fmt.Sprintf("%06d", n%1000000), nil
		}
	}
}

func (s *Accounts) otpGet(ctx context.Context, key string) (otpEntry, uint64, error) {
	raw, rev, err := s.codes.store.Get(ctx, key)
	if err != nil {
		return otpEntry{}, 0, err
	}
	var e otpEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return otpEntry{}, 0, ErrCodeNotFound
	}
	return e, rev, nil
}

// otpStore writes e under key: a new key is created (create-only), a key
// read at rev is replaced at that revision; either loses to a concurrent
// writer (ErrCodeChanged).
func (s *Accounts) otpStore(ctx context.Context, key string, e otpEntry, rev uint64, exists bool) error {
	raw, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if exists {
		return s.codes.store.Update(ctx, key, raw, rev)
	}
	return s.codes.store.Put(ctx, key, raw)
}

// otpDisarm makes the code of a binding match nothing, if it is still the
// one with hash, keeping the entry (and its resend cooldown).
func (s *Accounts) otpDisarm(ctx context.Context, key, hash string) {
	if e, rev, err := s.otpGet(ctx, key); err == nil && e.Hash == hash {
		e.Hash = ""
		_ = s.otpStore(ctx, key, e, rev, true)
	}
}

// otpDrop removes the entry if it still is the one with hash.
func (s *Accounts) otpDrop(ctx context.Context, key, hash string) {
	if e, rev, err := s.otpGet(ctx, key); err == nil && e.Hash == hash {
		_ = s.codes.store.Delete(ctx, key, rev)
	}
}

// codeSettings are the verification settings with their defaults.
func (s *core) codeSettings() domain.VerificationSettings {
	return s.Settings().Verification.WithDefaults()
}

// sendLimits applies the send limits (per client address, per target),
// shared by every node, before a code is made.
func (s *core) sendLimits(ctx context.Context, ip string, target loginid.ID) error {
	v := s.codeSettings()
	now := s.clock.Now()
	if err := s.limiter.Allow(ctx, "otp:send:ip:"+addressKey(ip), limitOf(v.SendPerIP), now); err != nil {
		return err
	}
	return s.limiter.Allow(ctx, "otp:send:target:"+target.Key(), limitOf(v.SendPerTarget), now)
}

// CodeSent says where a code went and when the next may be asked for.
type CodeSent struct {
	// To is the normalised login ID the code was sent to.
	To          string
	Channel     delivery.Channel
	ExpiresAt   time.Time
	ResendAfter time.Time
}

// otpSend is one send of a code for a binding. base carries the binding
// and what the code completes; a pending code of the same binding is
// replaced (resend), after the cooldown. With resend, a binding with no
// pending code is ErrNoCodePending and base's data comes from the pending
// entry. Limits come before any code is made; the delivery before the
// answer: a delivery that fails removes the code (nothing half-done).
// async sends after answering, for flows whose answer must not tell
// whether the login ID exists (sign-in, reset); a delivery that then fails
// disarms the code and keeps its entry, so the resend cooldown answers as
// a decoy's does.
type otpSend struct {
	key    string
	base   otpEntry
	resend bool
	ip     string
	async  bool
	meta   Meta
}

func (s *Accounts) sendCode(ctx context.Context, o otpSend) (CodeSent, error) {
	now := s.clock.Now()
	old, rev, err := s.otpGet(ctx, o.key)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrCodeNotFound) {
		return CodeSent{}, err
	}
	live := exists && now.Before(old.ExpiresAt) && old.Tries < OTPMaxTries
	if live {
		if wait := old.SentAt.Add(OTPResendCooldown).Sub(now); wait > 0 {
			return CodeSent{}, &ResendTooSoonError{RetryAfter: max(wait, time.Second)}
		}
	}
	e := o.base
	if o.resend {
		if !live {
			return CodeSent{}, ErrNoCodePending
		}
		e = old
	}
	channel := delivery.Email
	if e.LoginIDType == string(loginid.Phone) {
		channel = delivery.SMS
	} else if e.LoginIDType != string(loginid.Email) {
		return CodeSent{}, domain.ErrNoCodeChannel
	}
	target := loginid.ID{Type: loginid.Type(e.LoginIDType), Value: e.LoginID}
	if err := s.sendLimits(ctx, o.ip, target); err != nil {
		return CodeSent{}, err
	}
	code, err := newOTP(s.random)
	if err != nil {
		return CodeSent{}, err
	}
	salt, err := s.newCode()
	if err != nil {
		return CodeSent{}, err
	}
	lifetime := s.codeSettings().CodeLifetime.Duration()
	e.Salt, e.Hash, e.Tries = salt, otpHash(salt, code), 0
	e.SentAt, e.ExpiresAt = now, now.Add(lifetime)
	if err := s.otpStore(ctx, o.key, e, rev, exists); err != nil {
		if errors.Is(err, ErrCodeChanged) {
			// Another send of this binding won the race a moment ago.
			return CodeSent{}, &ResendTooSoonError{RetryAfter: OTPResendCooldown}
		}
		return CodeSent{}, err
	}
	sent := CodeSent{To: e.LoginID, Channel: channel, ExpiresAt: e.ExpiresAt.Truncate(time.Second), ResendAfter: now.Add(OTPResendCooldown).Truncate(time.Second)}
	if e.decoy() {
		return sent, nil // a decoy: nobody holds the login ID, nothing is sent
	}
	appName, sender := s.appNames(e.ClientID)
	msg := delivery.Message{Channel: channel, To: e.LoginID, Kind: delivery.Kind(e.Purpose), Locale: e.Locale,
		AppName: appName, SenderName: sender, Code: code, Lifetime: lifetime}
	deliver := func(ctx context.Context) error {
		err := s.delivery.Send(ctx, msg)
		if err != nil {
			if o.async {
				// The caller was answered as a decoy is: keep the entry,
				// and with it the resend cooldown a decoy has, so a second
				// start answers alike too; only the code stops working.
				s.otpDisarm(ctx, o.key, e.Hash)
			} else {
				s.otpDrop(ctx, o.key, e.Hash) // the caller is told; it may start again at once
			}
			otpSends.WithLabelValues(string(channel), "failed").Inc()
			// Never the code, nor the address: the reason and the request.
			s.log.Warn("sending a one-time code failed; the code no longer works", "purpose", e.Purpose, "channel", channel,
				"error", err, "correlation_id", o.meta.CorrelationID)
			return err
		}
		otpSends.WithLabelValues(string(channel), "sent").Inc()
		return nil
	}
	if o.async {
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_ = deliver(ctx)
		}()
		return sent, nil
	}
	if err := deliver(ctx); err != nil {
		return CodeSent{}, err
	}
	return sent, nil
}

// appNames are the application's name and the email sender name of a
// client (its name; the project's when the client is unknown).
func (s *Accounts) appNames(clientID string) (app, sender string) {
	if cl, ok := s.Settings().Client(clientID); ok && cl.Name != "" {
		return cl.Name, cl.Name
	}
	return "idstream", "idstream"
}

// checkCode spends a code of a binding: at most OTPMaxTries wrong codes (a
// wrong one is counted by a conditional update, so tries on several nodes
// add up), compared in constant time, and a right one is deleted by a
// delete conditioned on the revision read, so it works once on every node.
// Wrong, expired, spent or absent codes change nothing else.
func (s *Accounts) checkCode(ctx context.Context, key, code, ip string) (otpEntry, error) {
	// People type codes with spaces ("123 456"), on pages and in apps alike.
	code = strings.Join(strings.Fields(code), "")
	now := s.clock.Now()
	if err := s.limiter.Allow(ctx, "otp:check:ip:"+addressKey(ip), limitOf(s.Settings().RateLimits.SignInPerIP), now); err != nil {
		return otpEntry{}, err
	}
	for range maxAttempts {
		e, rev, err := s.otpGet(ctx, key)
		if errors.Is(err, ErrCodeNotFound) {
			return otpEntry{}, ErrInvalidCode
		}
		if err != nil {
			return otpEntry{}, err
		}
		if !now.Before(e.ExpiresAt) {
			_ = s.codes.store.Delete(ctx, key, rev)
			return otpEntry{}, ErrCodeExpired
		}
		if e.Tries >= OTPMaxTries {
			return otpEntry{}, ErrCodeAttempts
		}
		right := len(code) == OTPDigits && subtle.ConstantTimeCompare([]byte(otpHash(e.Salt, code)), []byte(e.Hash)) == 1
		if !right {
			e.Tries++
			var werr error
			if e.Tries >= OTPMaxTries {
				werr = s.codes.store.Delete(ctx, key, rev)
			} else {
				werr = s.otpStore(ctx, key, e, rev, true)
			}
			if errors.Is(werr, ErrCodeChanged) {
				continue // another try or a resend at the same moment
			}
			if werr != nil {
				return otpEntry{}, werr
			}
			otpChecks.WithLabelValues("wrong").Inc()
			if e.Tries >= OTPMaxTries {
				return otpEntry{}, ErrCodeAttempts
			}
			return otpEntry{}, ErrInvalidCode
		}
		if err := s.codes.store.Delete(ctx, key, rev); err != nil {
			if errors.Is(err, ErrCodeChanged) {
				continue // spent (or changed) by another request: look again
			}
			return otpEntry{}, err
		}
		if e.decoy() {
			// A decoy's code is never sent: a match is chance.
			return otpEntry{}, ErrInvalidCode
		}
		otpChecks.WithLabelValues("right").Inc()
		return e, nil
	}
	return otpEntry{}, ErrBusy
}
