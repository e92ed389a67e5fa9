package app

import (
	"context"
	"errors"
	"time"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/loginid"
)

// CodeRequest is where a code request comes from: the client address (for
// the limits), the person's language (for the message) and the trace.
type CodeRequest struct {
	IP     string
	Locale string
	Meta   Meta
}

// codeTarget is the login ID a code goes to: email or phone.
func codeTarget(id loginid.ID) error {
	_, err := domain.CodeMethod(string(id.Type))
	return err
}

// --- Verification of a login ID the user holds -------------------------

// verifyBinding is the code binding of a user's own login ID.
func (s *Accounts) verifyBinding(u domain.User) (loginid.ID, string, error) {
	if s.codeSettings().Promotion == domain.VerifyOff {
		return loginid.ID{}, "", ErrVerificationOff
	}
	if err := u.CanSignIn(); err != nil {
		return loginid.ID{}, "", err
	}
	typ, value := u.LoginID()
	if value == "" {
		return loginid.ID{}, "", domain.ErrNotUsersLoginID
	}
	id := loginid.ID{Type: loginid.Type(typ), Value: value}
	if err := codeTarget(id); err != nil {
		return loginid.ID{}, "", err
	}
	if u.LoginIDVerified(typ, value) {
		return loginid.ID{}, "", ErrAlreadyVerified
	}
	return id, otpKey(PurposeVerify, u.UserID(), id), nil
}

// StartVerification sends a code to the signed-in user's login ID (or,
// resend, sends a new one for the pending verification), and answers once
// it is handed to delivery: a failure is the answer.
func (s *Accounts) StartVerification(ctx context.Context, p Principal, resend bool, r CodeRequest) (CodeSent, error) {
	id, key, err := s.verifyBinding(p.User)
	if err != nil {
		return CodeSent{}, err
	}
	return s.sendCode(ctx, otpSend{key: key, resend: resend, ip: r.IP, meta: r.Meta, base: otpEntry{Purpose: PurposeVerify, Target: id.Key(),
		LoginIDType: string(id.Type), LoginID: id.Value, UserID: p.User.UserID(), ClientID: p.Session.ClientID(), Locale: r.Locale}})
}

// CompleteVerification checks the code and records login_id.verified.v1.
func (s *Accounts) CompleteVerification(ctx context.Context, p Principal, code string, r CodeRequest) (domain.User, error) {
	id, key, err := s.verifyBinding(p.User)
	if err != nil {
		return domain.User{}, err
	}
	if _, err := s.checkCode(ctx, key, code, r.IP); err != nil {
		return domain.User{}, err
	}
	return s.recordVerification(ctx, p.User.UserID(), id, r.Meta)
}

// recordVerification appends login_id.verified.v1 for the user's login ID
// id, unless it is verified already, and returns the user after it.
func (s *Accounts) recordVerification(ctx context.Context, userID string, id loginid.ID, meta Meta) (domain.User, error) {
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (domain.User, error) {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return domain.User{}, err
		}
		evs, err := domain.DecideVerifyLoginID(u, string(id.Type), id.Value, s.clock.Now())
		if err != nil {
			return domain.User{}, err
		}
		var ps []pending
		for _, ev := range evs {
			ps = append(ps, pending{subject: s.userSubject(u.UserID()), expected: uv, event: ev})
			u = domain.EvolveUser(u, ev)
		}
		if len(ps) > 0 {
			if err := s.appendEvents(ctx, meta, ps...); err != nil {
				return domain.User{}, err
			}
		}
		commands.WithLabelValues("verify_login_id", "ok").Inc()
		return u, nil
	})
}

// --- Promotion with a code ----------------------------------------------

// PromotionByCode is the start of a promotion completed by a code: with a
// password (the code proves the login ID) or without (passwordless: the
// code is the authenticator).
type PromotionByCode struct {
	PromoteInput
	Locale string
	// DeferMerge: a merge (conflict policy "login") is not written but
	// returned (the hosted code flow puts it into the authorization code).
	DeferMerge bool
}

// CodePromotionStart is what starting a promotion by code did: a code
// sent, or a merge written (Merged) or, with DeferMerge, decided (Merge).
type CodePromotionStart struct {
	Sent   CodeSent
	Merged *Issued
	Merge  *PendingPromotion
}

// CodeLifetime is how long a one-time code works (the settings').
func (s *core) CodeLifetime() time.Duration { return s.codeSettings().CodeLifetime.Duration() }

// PromotionNeedsCode reports whether the project requires the code before
// a promotion to id completes.
func (s *Accounts) PromotionNeedsCode(id loginid.ID) bool {
	return s.codeSettings().Promotion == domain.VerifyRequired && codeTarget(id) == nil
}

// StartPromotionByCode decides a promotion to an email or phone number
// (PreparePromotion: limits, policy, the login ID free, the password
// hashed) and sends a code to it; nothing is written and nothing claimed
// until the code comes back (CompletePromotionByCode). Under the conflict
// policy "login" a taken login ID with that account's password merges the
// guest at once: the password proved that account, and merged is the
// session of ns (or the account id without ns).
func (s *Accounts) StartPromotionByCode(ctx context.Context, in PromotionByCode) (CodePromotionStart, error) {
	// A taken login ID is answered no sooner than a code sent lately.
	t := timeCommand(s.codeStart(in.Password))
	out, err := s.startPromotionByCode(ctx, in)
	if out.Merged == nil && out.Merge == nil {
		t.done(err)
	}
	t.pad(ctx, err)
	return out, err
}

// codeStart is the moving average of the code-starting commands with a
// password or without.
func (s *Accounts) codeStart(password string) *movingAverage {
	if password == "" {
		return &s.codeStarts[1]
	}
	return &s.codeStarts[0]
}

func (s *Accounts) startPromotionByCode(ctx context.Context, in PromotionByCode) (CodePromotionStart, error) {
	if err := codeTarget(in.LoginID); err != nil {
		return CodePromotionStart{}, err
	}
	v := s.codeSettings()
	if v.Promotion == domain.VerifyOff && in.Password != "" {
		return CodePromotionStart{}, ErrVerificationOff
	}
	var p PendingPromotion
	var err error
	if in.Password == "" {
		if !v.Offers(string(in.LoginID.Type), domain.AuthenticatorCode) {
			return CodePromotionStart{}, ErrAuthenticatorNotOffered
		}
		if p, err = s.preparePasswordless(ctx, in.PromoteInput); err != nil {
			return CodePromotionStart{}, err
		}
	} else {
		in.byCode = true
		if p, err = s.PreparePromotion(ctx, in.PromoteInput); err != nil {
			return CodePromotionStart{}, err
		}
		if p.MergeInto != "" && in.DeferMerge {
			return CodePromotionStart{Merge: &p}, nil
		}
		if p.MergeInto != "" {
			iss, err := s.completePromotion(ctx, p, in.NewSession, in.Meta)
			if err != nil {
				return CodePromotionStart{}, err
			}
			return CodePromotionStart{Merged: &iss}, nil
		}
	}
	p.Verified = true
	sent, err := s.sendCode(ctx, otpSend{key: otpKey(PurposePromote, in.UserID, in.LoginID), ip: in.IP, meta: in.Meta,
		base: otpEntry{Purpose: PurposePromote, Target: in.LoginID.Key(), LoginIDType: string(in.LoginID.Type), LoginID: in.LoginID.Value,
			UserID: in.UserID, ClientID: s.clientOfUser(ctx, in.PromoteInput), Locale: in.Locale, Promotion: &p}})
	return CodePromotionStart{Sent: sent}, err
}

func (s *Accounts) clientOfUser(ctx context.Context, in PromoteInput) string {
	if in.NewSession != nil {
		return in.NewSession.ClientID
	}
	if u, _, err := s.LoadUser(ctx, in.UserID); err == nil {
		return u.ClientID()
	}
	return ""
}

// preparePasswordless is PreparePromotion without a password: the limits
// of account creation and the login ID free (a taken one is refused
// whatever the conflict policy: a code proves the address, not the
// account's password, and merging by code is not offered yet).
func (s *Accounts) preparePasswordless(ctx context.Context, in PromoteInput) (PendingPromotion, error) {
	if err := s.allowAccountCreation(ctx, in.IP, in.LoginID.Key(), in.UserID); err != nil {
		return PendingPromotion{}, err
	}
	ctx = eventstore.WithLeaderCheck(ctx)
	u, _, err := s.LoadUser(ctx, in.UserID)
	if err != nil {
		return PendingPromotion{}, err
	}
	l, _, err := loadAggregate(ctx, s.store, s.aggregates, s.loginIDSubject(in.LoginID), each(domain.EvolveLoginID))
	if err != nil {
		return PendingPromotion{}, err
	}
	_, err = domain.DecidePromote(u, l, domain.Promote{LoginIDType: string(in.LoginID.Type), LoginID: in.LoginID.Value,
		Passwordless: true, Verified: true, Now: s.clock.Now()})
	s.takenAnswered(ctx, in.LoginID.Key(), err)
	if err != nil {
		return PendingPromotion{}, err
	}
	return PendingPromotion{GuestID: in.UserID, GuestSessionID: in.OldSessionID, LoginIDType: string(in.LoginID.Type),
		LoginID: in.LoginID.Value, Passwordless: true}, nil
}

// ResendPromotionCode sends a new code for the guest's pending promotion
// to that login ID.
func (s *Accounts) ResendPromotionCode(ctx context.Context, guestID string, id loginid.ID, r CodeRequest) (CodeSent, error) {
	if err := codeTarget(id); err != nil {
		return CodeSent{}, err
	}
	return s.sendCode(ctx, otpSend{key: otpKey(PurposePromote, guestID, id), resend: true, ip: r.IP, meta: r.Meta})
}

// CheckPromotionByCode spends the code of the guest's pending promotion to
// id and returns the promotion, verified, without writing it: the hosted
// code flow carries it in the authorization code, written when the app
// exchanges it with its PKCE verifier (see PendingPromotion).
func (s *Accounts) CheckPromotionByCode(ctx context.Context, guestID string, id loginid.ID, code string, r CodeRequest) (PendingPromotion, error) {
	if err := codeTarget(id); err != nil {
		return PendingPromotion{}, err
	}
	e, err := s.checkCode(ctx, otpKey(PurposePromote, guestID, id), code, r.IP)
	if err != nil {
		return PendingPromotion{}, err
	}
	if e.Promotion == nil || e.Promotion.GuestID != guestID {
		return PendingPromotion{}, ErrInvalidCode
	}
	return *e.Promotion, nil
}

// CompletePromotionByCode checks the code of the guest's pending promotion
// to id and writes it: the claim, the promotion, the password (if any), the
// verification, the end of every guest session and the start of ns, one
// atomic append. A wrong code changes nothing; a login ID claimed by
// someone else meanwhile is LoginIDTaken with the guest untouched.
func (s *Accounts) CompletePromotionByCode(ctx context.Context, guestID, guestSessionID string, id loginid.ID, code string, ns *NewSession, r CodeRequest) (Issued, error) {
	p, err := s.CheckPromotionByCode(ctx, guestID, id, code, r)
	if err != nil {
		return Issued{}, err
	}
	if guestSessionID != "" {
		p.GuestSessionID = guestSessionID
	}
	iss, err := s.completePromotion(ctx, p, ns, r.Meta)
	if err != nil {
		return Issued{}, err
	}
	commands.WithLabelValues("promote_by_code", "ok").Inc()
	return iss, nil
}

// --- Sign-in with a code and forgotten passwords -------------------------

// anonymousBinding is the binding of a flow that starts from a login ID
// alone: the answer must not tell whether anybody holds it, so a login ID
// nobody (able to sign in) holds gets a decoy entry with no user, which
// makes the cooldown and the limits answer alike, and no message.
func (s *Accounts) anonymousBinding(ctx context.Context, purpose, clientID string, id loginid.ID, r CodeRequest) (string, otpEntry, error) {
	if _, err := s.client(clientID); err != nil {
		return "", otpEntry{}, err
	}
	if err := codeTarget(id); err != nil {
		return "", otpEntry{}, err
	}
	e := otpEntry{Purpose: purpose, Target: id.Key(), LoginIDType: string(id.Type), LoginID: id.Value, ClientID: clientID, Locale: r.Locale}
	l, _, err := loadAggregate(eventstore.WithLeaderCheck(ctx), s.store, s.aggregates, s.loginIDSubject(id), each(domain.EvolveLoginID))
	if err != nil {
		return "", otpEntry{}, err
	}
	if l.Claimed() {
		u, _, err := s.LoadUser(ctx, l.UserID())
		if err != nil {
			return "", otpEntry{}, err
		}
		if u.CanSignIn() == nil {
			e.UserID = u.UserID()
		}
	}
	return otpKey(purpose, clientID, id), e, nil
}

// StartCodeSignIn sends a sign-in code to the login ID if someone holds it
// (answering the same when nobody does, after the same limits and
// cooldown; delivery happens after the answer, and its failure is logged).
func (s *Accounts) StartCodeSignIn(ctx context.Context, clientID string, id loginid.ID, r CodeRequest) (CodeSent, error) {
	return s.startAnonymous(ctx, PurposeSignIn, domain.AuthenticatorCode, clientID, id, r)
}

// startAnonymous starts a flow from a login ID alone (sign-in, reset) for
// a login ID type that offers the authenticator.
func (s *Accounts) startAnonymous(ctx context.Context, purpose, authenticator, clientID string, id loginid.ID, r CodeRequest) (CodeSent, error) {
	if !s.codeSettings().Offers(string(id.Type), authenticator) {
		return CodeSent{}, ErrAuthenticatorNotOffered
	}
	key, base, err := s.anonymousBinding(ctx, purpose, clientID, id, r)
	if err != nil {
		return CodeSent{}, err
	}
	return s.sendCode(ctx, otpSend{key: key, base: base, ip: r.IP, meta: r.Meta, async: true})
}

// CompleteCodeSignIn checks a sign-in code and starts the session ns for
// the login ID's holder; the code proved the login ID, so its verification
// (if new) is in the same append as the session's start.
func (s *Accounts) CompleteCodeSignIn(ctx context.Context, clientID string, id loginid.ID, code string, ns NewSession, r CodeRequest) (Issued, error) {
	if !s.codeSettings().Offers(string(id.Type), domain.AuthenticatorCode) {
		return Issued{}, ErrAuthenticatorNotOffered
	}
	if err := codeTarget(id); err != nil {
		return Issued{}, err
	}
	if _, err := s.publicClient(clientID); err != nil { // a confidential client's sessions start with its own authentication
		return Issued{}, err
	}
	e, err := s.checkCode(ctx, otpKey(PurposeSignIn, clientID, id), code, r.IP)
	if err != nil {
		return Issued{}, err
	}
	ns.ClientID = clientID
	ns.Method, _ = domain.CodeMethod(string(id.Type))
	type outcome struct {
		u  domain.User
		st *startedSession
	}
	o, err := retryDecision(ctx, retryOptions{}, func(ctx context.Context) (outcome, error) {
		u, uv, err := s.LoadUser(ctx, e.UserID)
		if err != nil {
			return outcome{}, err
		}
		now := s.clock.Now()
		ps, rest, u, err := s.decideCodeSignIn(ctx, u, uv, id, now)
		if err != nil {
			return outcome{}, err
		}
		st, err := s.decideNewSession(u, ns, now)
		if err != nil {
			return outcome{}, err
		}
		ps = append(ps, s.startOn(uv, st)...)
		if err := s.appendEvents(ctx, r.Meta, ps...); err != nil {
			return outcome{}, err
		}
		s.appendRevocations(ctx, rest, r.Meta)
		return outcome{u, st}, nil
	})
	if err != nil {
		return Issued{}, err
	}
	commands.WithLabelValues("sign_in_by_code", "ok").Inc()
	return s.issueStarted(ctx, o.u, o.st)
}

// CheckCodeSignIn checks a sign-in code and returns the login ID's
// holder, its verification recorded (if new), without starting a session:
// the hosted page's code flow starts it when the app exchanges the
// authorization code (with the method of the code, see
// AuthorizationRequest.Method).
func (s *Accounts) CheckCodeSignIn(ctx context.Context, clientID string, id loginid.ID, code string, r CodeRequest) (domain.User, error) {
	if !s.codeSettings().Offers(string(id.Type), domain.AuthenticatorCode) {
		return domain.User{}, ErrAuthenticatorNotOffered
	}
	if err := codeTarget(id); err != nil {
		return domain.User{}, err
	}
	e, err := s.checkCode(ctx, otpKey(PurposeSignIn, clientID, id), code, r.IP)
	if err != nil {
		return domain.User{}, err
	}
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (domain.User, error) {
		u, uv, err := s.LoadUser(ctx, e.UserID)
		if err != nil {
			return domain.User{}, err
		}
		ps, rest, u, err := s.decideCodeSignIn(ctx, u, uv, id, s.clock.Now())
		if err != nil || len(ps) == 0 {
			return u, err
		}
		if err := s.appendEvents(ctx, r.Meta, ps...); err != nil {
			return domain.User{}, err
		}
		s.appendRevocations(ctx, rest, r.Meta)
		return u, nil
	})
}

// decideCodeSignIn decides a sign-in by code (domain.DecideCodeSignIn):
// the user's events at version uv and, when the unproven password goes,
// the release of the external identities that go with it and the end of
// every session the user had started, read from the log (rest: those past
// one append, for right after it); next is the user with the events
// applied.
func (s *Accounts) decideCodeSignIn(ctx context.Context, u domain.User, uv uint64, id loginid.ID, now time.Time) (ps, rest []pending, next domain.User, err error) {
	evs, err := domain.DecideCodeSignIn(u, string(id.Type), id.Value, now)
	if errors.Is(err, domain.ErrNotUsersLoginID) {
		return nil, nil, domain.User{}, ErrInvalidCode // the login ID changed hands since the code was sent
	}
	if err != nil {
		return nil, nil, domain.User{}, err
	}
	var ended []pending
	next = u
	for _, ev := range evs {
		if _, ok := ev.(domain.PasswordRemoved); ok {
			if ended, rest, err = s.endSessions(ctx, u, domain.RevokeReasonPasswordRemoved, now); err != nil {
				return nil, nil, domain.User{}, err
			}
		}
		ps = append(ps, pending{subject: s.userSubject(u.UserID()), expected: uv, event: ev})
		next = domain.EvolveUser(next, ev)
	}
	released, err := s.releaseUnlinked(ctx, u, evs, now)
	if err != nil {
		return nil, nil, domain.User{}, err
	}
	return append(append(ps, released...), ended...), rest, next, nil
}

// releaseUnlinked releases, on their own subjects, the identities at
// upstream providers a decision unlinked from u without the user asking
// (domain.ReleaseLost), so each may sign up anew.
func (s *Accounts) releaseUnlinked(ctx context.Context, u domain.User, evs []domain.Event, now time.Time) ([]pending, error) {
	var out []pending
	for _, ev := range evs {
		e, ok := ev.(domain.UserExternalUnlinked)
		if !ok {
			continue
		}
		ref := domain.ExternalRef{Provider: e.Provider, Subject: e.Subject}
		x, xv, err := s.loadExternal(ctx, ref)
		if err != nil {
			return nil, err
		}
		if rel := domain.ReleaseLost(u, x, ref, now); rel != nil {
			out = append(out, pending{subject: s.externalSubject(ref), expected: xv, event: rel})
		}
	}
	return out, nil
}

// OffersCodeSignIn reports whether any login ID type offers sign-in by
// code (the hosted sign-in page then links to it).
func (s *Accounts) OffersCodeSignIn() bool {
	v := s.codeSettings()
	return v.Offers("email", domain.AuthenticatorCode) || v.Offers("phone", domain.AuthenticatorCode)
}

// StartPasswordReset sends a reset code to the login ID if someone holds
// it; the answer is the same when nobody does (see StartCodeSignIn).
func (s *Accounts) StartPasswordReset(ctx context.Context, clientID string, id loginid.ID, r CodeRequest) (CodeSent, error) {
	return s.startAnonymous(ctx, PurposeReset, domain.AuthenticatorPassword, clientID, id, r)
}

// CompletePasswordReset checks the new password against the policy, then
// the code, and writes user.password.reset.v1, the new hash, the login
// ID's verification (if new) and the revocation of every session of the
// user, read from the log, in one append (more than one batch holds
// follow right after). Nothing changes on a refusal.
func (s *Accounts) CompletePasswordReset(ctx context.Context, clientID string, id loginid.ID, code, newPassword string, r CodeRequest) error {
	if !s.codeSettings().Offers(string(id.Type), domain.AuthenticatorPassword) {
		return ErrAuthenticatorNotOffered
	}
	if err := codeTarget(id); err != nil {
		return err
	}
	if _, err := s.client(clientID); err != nil {
		return err
	}
	if err := s.CheckPassword(newPassword); err != nil {
		return err
	}
	e, err := s.checkCode(ctx, otpKey(PurposeReset, clientID, id), code, r.IP)
	if err != nil {
		return err
	}
	hash, err := s.hashPassword(ctx, newPassword)
	if err != nil {
		return err
	}
	_, err = retryDecision(ctx, retryOptions{}, func(ctx context.Context) (struct{}, error) {
		u, uv, err := s.LoadUser(ctx, e.UserID)
		if err != nil {
			return struct{}{}, err
		}
		now := s.clock.Now()
		evs, err := domain.DecideResetPassword(u, domain.ResetPassword{LoginIDType: string(id.Type), LoginID: id.Value, PasswordHash: hash, Now: now})
		if errors.Is(err, domain.ErrNotUsersLoginID) {
			return struct{}{}, ErrInvalidCode
		}
		if err != nil {
			return struct{}{}, err
		}
		var ps []pending
		for _, ev := range evs {
			ps = append(ps, pending{subject: s.userSubject(u.UserID()), expected: uv, event: ev})
		}
		released, err := s.releaseUnlinked(ctx, u, evs, now)
		if err != nil {
			return struct{}{}, err
		}
		ended, rest, err := s.endSessions(ctx, u, domain.RevokeReasonPasswordReset, now)
		if err != nil {
			return struct{}{}, err
		}
		if err := s.appendEvents(ctx, r.Meta, append(append(ps, released...), ended...)...); err != nil {
			return struct{}{}, err
		}
		s.appendRevocations(ctx, rest, r.Meta)
		return struct{}{}, nil
	})
	if err == nil {
		commands.WithLabelValues("reset_password", "ok").Inc()
	}
	return err
}
