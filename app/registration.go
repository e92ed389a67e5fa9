package app

import (
	"context"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/loginid"
)

// Sign-up by code (issue 20): a new regular user whose email or phone
// number is proved by a one-time code before anything is written, with a
// password or without one (passwordless: the login ID type offers codes).
// The hosted sign-up page uses it when the project requires verification
// (the promotion setting "required" holds for every new account with an
// email or phone number) and when the person chooses a code instead of a
// password.

// PendingRegistration is what a sign-up code completes: the application
// and the password's hash (none: passwordless). It lives in the codes
// bucket beside the code's hash, minutes; the log gets the hash only with
// the registration.
type PendingRegistration struct {
	ClientID     string `json:"client_id"`
	PasswordHash string `json:"password_hash,omitempty"`
}

// RegistrationByCode starts a sign-up by code.
type RegistrationByCode struct {
	ClientID string
	// Flow is the hosted flow that asks; it binds the code (only that flow
	// can spend it) and records the login ID the code went to.
	Flow    string
	LoginID loginid.ID
	// Password is empty for a passwordless sign-up.
	Password string
	IP       string
	Locale   string
	Meta     Meta
}

// SignUpNeedsCode reports whether a sign-up to id must be completed by a
// code: a passwordless one always, one with a password when the project
// requires verification.
func (s *Accounts) SignUpNeedsCode(id loginid.ID, passwordless bool) bool {
	return passwordless || s.PromotionNeedsCode(id)
}

// OffersAuthenticator reports whether a login ID type offers a way in
// (domain.AuthenticatorPassword or domain.AuthenticatorCode).
func (s *Accounts) OffersAuthenticator(loginIDType, authenticator string) bool {
	return s.codeSettings().Offers(loginIDType, authenticator)
}

// StartRegistrationByCode decides a sign-up as Register does (the client,
// the authenticator offered, the limits of account creation, the password
// policy, the login ID free) and sends a code to the login ID; nothing is
// written or claimed until the code comes back.
func (s *Accounts) StartRegistrationByCode(ctx context.Context, in RegistrationByCode) (CodeSent, error) {
	// A taken login ID is answered no sooner than a code sent lately.
	t := timeCommand(s.codeStart(in.Password))
	sent, err := s.startRegistrationByCode(ctx, in)
	t.done(err)
	t.pad(ctx, err)
	return sent, err
}

func (s *Accounts) startRegistrationByCode(ctx context.Context, in RegistrationByCode) (CodeSent, error) {
	if in.Flow == "" {
		return CodeSent{}, ErrNoCodePending
	}
	if _, err := s.client(in.ClientID); err != nil {
		return CodeSent{}, err
	}
	if err := codeTarget(in.LoginID); err != nil {
		return CodeSent{}, err
	}
	v := s.codeSettings()
	authenticator := domain.AuthenticatorCode
	if in.Password != "" {
		authenticator = domain.AuthenticatorPassword
		if v.Promotion == domain.VerifyOff {
			return CodeSent{}, ErrVerificationOff
		}
	}
	if !v.Offers(string(in.LoginID.Type), authenticator) {
		return CodeSent{}, ErrAuthenticatorNotOffered
	}
	if err := s.allowAccountCreation(ctx, in.IP, in.LoginID.Key(), ""); err != nil {
		return CodeSent{}, err
	}
	reg := PendingRegistration{ClientID: in.ClientID}
	if in.Password != "" {
		if err := s.CheckPassword(in.Password); err != nil {
			return CodeSent{}, err
		}
		hash, err := s.hashPassword(ctx, in.Password)
		if err != nil {
			return CodeSent{}, err
		}
		reg.PasswordHash = hash
	}
	l, _, err := loadAggregate(eventstore.WithLeaderCheck(ctx), s.store, s.aggregates, s.loginIDSubject(in.LoginID), each(domain.EvolveLoginID))
	if err != nil {
		return CodeSent{}, err
	}
	_, err = domain.DecideRegister(domain.User{}, l, s.registerCommand("decided", in.ClientID, in.LoginID, reg.PasswordHash, true))
	s.takenAnswered(ctx, in.LoginID.Key(), err)
	if err != nil {
		return CodeSent{}, err
	}
	sent, err := s.sendCode(ctx, otpSend{key: otpKey(PurposeRegister, in.Flow, in.LoginID), ip: in.IP, meta: in.Meta,
		base: otpEntry{Purpose: PurposeRegister, Target: in.LoginID.Key(), LoginIDType: string(in.LoginID.Type), LoginID: in.LoginID.Value,
			ClientID: in.ClientID, Locale: in.Locale, Registration: &reg}})
	if err != nil {
		return CodeSent{}, err
	}
	// The flow's code page names where the code went.
	return sent, s.SetFlowCodeLoginID(ctx, in.Flow, string(in.LoginID.Type), in.LoginID.Value)
}

// ResendRegistrationCode sends a new code for the flow's pending sign-up.
func (s *Accounts) ResendRegistrationCode(ctx context.Context, flow string, id loginid.ID, r CodeRequest) (CodeSent, error) {
	if err := codeTarget(id); err != nil {
		return CodeSent{}, err
	}
	return s.sendCode(ctx, otpSend{key: otpKey(PurposeRegister, flow, id), resend: true, ip: r.IP, meta: r.Meta})
}

// CompleteRegistrationByCode spends the code of the flow's pending sign-up
// and writes it: the user, the claim, the password (if any) and the
// verification, one atomic append. A wrong code changes nothing; a login
// ID claimed by someone else meanwhile is LoginIDTaken, nothing written.
func (s *Accounts) CompleteRegistrationByCode(ctx context.Context, flow string, id loginid.ID, code string, r CodeRequest) (domain.User, error) {
	if err := codeTarget(id); err != nil {
		return domain.User{}, err
	}
	e, err := s.checkCode(ctx, otpKey(PurposeRegister, flow, id), code, r.IP)
	if err != nil {
		return domain.User{}, err
	}
	if e.Registration == nil {
		return domain.User{}, ErrInvalidCode
	}
	u, err := s.register(ctx, e.Registration.ClientID, id, e.Registration.PasswordHash, true, r.Meta)
	if err != nil {
		return domain.User{}, err
	}
	commands.WithLabelValues("register_by_code", "ok").Inc()
	return u, nil
}

// registerCommand is the domain command of a sign-up (userID "decided":
// a decision checked before the code is sent, written with a new id).
func (s *Accounts) registerCommand(userID, clientID string, id loginid.ID, hash string, verified bool) domain.Register {
	return domain.Register{UserID: userID, ClientID: clientID, LoginIDType: string(id.Type), LoginID: id.Value, PasswordHash: hash,
		Passwordless: hash == "", Verified: verified, Now: s.clock.Now()}
}
