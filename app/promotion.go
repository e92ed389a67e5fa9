package app

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/password"
	"github.com/idstream/idstream/tokens"
)

// Errors of promotion, sign-in and the authorization code flow.
var (
	ErrInvalidPromotionCode = errors.New("the promotion code is unknown, expired or already used")
	// ErrPromotionCodeTaken: the code was first opened by another
	// authorization request (another PKCE challenge or redirect URI).
	ErrPromotionCodeTaken = errors.New("the promotion code is in use by another sign-in: start the promotion again from the app")
	ErrInvalidCredentials = errors.New("the login ID or password is not right")
	ErrInvalidAuthzCode   = errors.New("the authorization code is unknown, expired or was issued for another client or redirect URI")
	ErrAuthzCodeReused    = errors.New("the authorization code was already used; what it issued is revoked")
	ErrPKCEMismatch       = errors.New("code_verifier does not match code_challenge")
)

// CodeTTL is the life of promotion and authorization codes (Authgear: 5
// minutes).
const CodeTTL = 5 * time.Minute

func (s *core) loginIDSubject(id loginid.ID) string { return s.store.Subject("loginid", id.Key()) }

// ParseLoginID normalises a login ID of an enabled type.
func (s *core) ParseLoginID(typ, value string) (loginid.ID, error) {
	id, err := loginid.Parse(loginid.Type(typ), value)
	if err != nil {
		return loginid.ID{}, err
	}
	if !slices.Contains(s.cfg.LoginIDTypes, string(id.Type)) {
		return loginid.ID{}, loginid.ErrTypeDisabled
	}
	return id, nil
}

func (s *core) passwordParams() password.Params {
	p := s.cfg.Password
	return password.Params{MemoryKiB: p.MemoryKiB, Iterations: p.Iterations, Parallelism: p.Parallelism}
}

// CheckPassword applies the password policy.
func (s *core) CheckPassword(pw string) error {
	return password.Policy{MinLength: s.cfg.Password.MinLength, MaxLength: s.cfg.Password.MaxLength}.Check(pw)
}

// withHashSlot runs f while holding one of the bounded argon2id slots, so a
// burst of sign-ups with passwords cannot take every core from other work.
func (s *core) withHashSlot(ctx context.Context, f func()) error {
	select {
	case s.hashing <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.hashing }()
	f()
	return nil
}

func (s *core) hashPassword(ctx context.Context, pw string) (string, error) {
	var h string
	var err error
	if e := s.withHashSlot(ctx, func() { h, err = password.Hash(s.random, pw, s.passwordParams()) }); e != nil {
		return "", e
	}
	return h, err
}

// IssuePromotionCode gives a guest a single-use code to promote itself with.
func (s *Accounts) IssuePromotionCode(ctx context.Context, p Principal) (string, time.Time, error) {
	if !p.User.IsAnonymous() {
		return "", time.Time{}, domain.ErrNotAnonymous
	}
	code, err := s.newCode()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.clock.Now().Add(CodeTTL).Truncate(time.Second)
	err = s.codes.Put(ctx, code, CodeEntry{Kind: CodePromotion, UserID: p.User.UserID(), SessionID: p.Session.SessionID(),
		ClientID: p.Session.ClientID(), ExpiresAt: exp})
	return code, exp, err
}

// PromotionCode looks a promotion code up without spending it. A code is
// good only while the guest is still a guest and the session it was issued
// through is still live, both read from the log: a promotion or merge, by
// whichever path, ends every session of the guest in its append, and so
// every code outstanding for it at the same moment.
func (s *Accounts) PromotionCode(ctx context.Context, code string) (CodeEntry, error) {
	e, _, err := s.promotionCode(ctx, code)
	return e, err
}

func (s *Accounts) promotionCode(ctx context.Context, code string) (CodeEntry, uint64, error) {
	e, rev, err := s.codes.Get(ctx, code)
	if errors.Is(err, ErrCodeNotFound) || (err == nil && (e.Kind != CodePromotion || !s.clock.Now().Before(e.ExpiresAt))) {
		return CodeEntry{}, 0, ErrInvalidPromotionCode
	}
	if err != nil {
		return CodeEntry{}, 0, err
	}
	u, _, err := s.LoadUser(ctx, e.UserID)
	if err != nil {
		return CodeEntry{}, 0, err
	}
	if !u.IsAnonymous() || u.CanSignIn() != nil {
		return CodeEntry{}, 0, ErrInvalidPromotionCode
	}
	if e.SessionID != "" {
		sess, _, err := s.LoadSession(ctx, e.SessionID)
		if err != nil {
			return CodeEntry{}, 0, err
		}
		if !sess.Exists() || sess.UserID() != e.UserID || sess.Revoked() || !s.clock.Now().Before(sess.ExpiresAt()) {
			return CodeEntry{}, 0, ErrInvalidPromotionCode
		}
	}
	return e, rev, nil
}

// ClaimPromotionCode looks a promotion code up for an authorization request
// of its client and binds it to that request: the first request that opens
// it (its response type, PKCE challenge and redirect URI) is the only one
// it works for. A promotion link read by someone else (from a history, a
// shared URL, a log) then cannot be opened with their own challenge, so
// that they exchange the code and promote the guest to a login ID of
// theirs; with the app's own challenge they cannot exchange it, and in
// cookie mode the promotion needs the guest's cookie. Opening the same
// request again (a reload) works.
func (s *Accounts) ClaimPromotionCode(ctx context.Context, code, clientID, responseType, codeChallenge, redirectURI string) (CodeEntry, error) {
	request := responseType + " " + codeChallenge + " " + redirectURI
	for range maxAttempts {
		e, rev, err := s.promotionCode(ctx, code)
		if err != nil {
			return CodeEntry{}, err
		}
		if e.ClientID != clientID {
			return CodeEntry{}, ErrInvalidPromotionCode
		}
		switch e.ClaimedBy {
		case request:
			return e, nil
		case "":
		default:
			return CodeEntry{}, ErrPromotionCodeTaken
		}
		e.ClaimedBy = request
		switch err := s.codes.Update(ctx, code, e, rev); {
		case err == nil:
			return e, nil
		case errors.Is(err, ErrCodeChanged):
			// Another request claimed (or spent) it meanwhile: read again.
		default:
			return CodeEntry{}, err
		}
	}
	return CodeEntry{}, ErrBusy
}

// spendPromotionCode removes a code after its promotion succeeded.
func (s *Accounts) spendPromotionCode(ctx context.Context, code string) { s.DeleteCode(ctx, code) }

// PromoteInput says who is promoted to what.
type PromoteInput struct {
	UserID string
	// OldSessionID is the guest session that asked; it is replaced.
	OldSessionID string
	LoginID      loginid.ID
	Password     string
	// NewSession, when set, starts the regular session in the same write
	// (cookie mode, headless promotion); otherwise the authorization code
	// exchange starts it.
	NewSession *NewSession
	// IP is the client's address, for the limits of account creation.
	IP   string
	Meta Meta
	// byCode: the promotion completes with a code sent to the login ID
	// (StartPromotionByCode), so a project that requires one lets it by.
	byCode bool
}

// PromoteGuest is the headless promotion (POST
// /api/anonymous_user/promote): the guest that asks, by the session it
// asked with, to the login ID as typed (its type empty: guessed) with a
// password. The regular session that replaces the guest's is of the same
// kind and client.
type PromoteGuest struct {
	Guest                          Principal
	LoginIDType, LoginID, Password string
	IP                             string
	Meta                           Meta
}

// PromoteGuestHeadless runs a headless promotion: one command from the
// endpoint, the login ID read and the conflict policy applied (Promote)
// here, as for every entry point.
func (s *Accounts) PromoteGuestHeadless(ctx context.Context, c PromoteGuest) (Issued, error) {
	id, err := s.ParseLoginID(c.LoginIDType, c.LoginID)
	if err != nil {
		return Issued{}, err
	}
	sess := c.Guest.Session
	return s.Promote(ctx, PromoteInput{
		UserID: c.Guest.User.UserID(), OldSessionID: sess.SessionID(), LoginID: id, Password: c.Password,
		// The regular session keeps the guest's DPoP binding: its request
		// was proved with that key.
		NewSession: &NewSession{ClientID: sess.ClientID(), Kind: sess.Kind(), Method: domain.MethodPromotion, DPoPJKT: sess.DPoPKey()}, IP: c.IP, Meta: c.Meta,
	})
}

// NewSession describes a session to start.
type NewSession struct {
	ClientID string
	Kind     domain.SessionKind
	Method   string
	// SessionID names the session; empty: a new random id.
	SessionID string
	// Device is what a mobile SDK said of the device, if anything.
	Device *domain.Device
	// Scope is the scope a relying party was granted (the code exchange;
	// nil: the SDKs' sessions), AuthTime when the user authenticated if
	// before now, Nonce the authorization request's nonce for the ID token
	// (not recorded).
	Scope    *string
	AuthTime time.Time
	Nonce    string
	// DPoPJKT binds the session to a DPoP key (the request's, Meta.DPoPJKT).
	DPoPJKT string
	// Epoch, when set, is the user's CredentialEpoch the session was
	// granted at (an authorization code's): at another, nothing starts
	// (ErrSignInChanged), decided on the state the start is written at.
	Epoch *int
}

// Promote is the promotion of every entry point that writes at once (the
// headless endpoint, the hosted page in cookie mode): PreparePromotion's
// decision, where the conflict policy is applied for every entry point,
// written at once. A promotion is one atomic append: the login ID claim (on
// its own subject, expected sequence: none), the user's promotion and
// password, the end of every session of the guest (read from the log) and,
// if asked, the start of the regular one. Two guests racing for one login
// ID end with one winner; the loser is left exactly as it was. Under the
// policy "login", a taken login ID whose password is right merges the guest
// into that account, and the session started is the account's.
func (s *Accounts) Promote(ctx context.Context, in PromoteInput) (Issued, error) {
	t := timeCommand(&s.promotions)
	p, err := s.PreparePromotion(ctx, in)
	var iss Issued
	if err == nil {
		iss, err = s.completePromotion(ctx, p, in.NewSession, in.Meta)
	}
	t.done(err)
	t.pad(ctx, err)
	return iss, err
}

// completePromotion writes a decided promotion, or merge, with the start of
// ns if given.
func (s *Accounts) completePromotion(ctx context.Context, p PendingPromotion, ns *NewSession, meta Meta) (Issued, error) {
	if p.MergeInto != "" {
		if ns != nil {
			m := *ns
			m.Method = domain.MethodPassword // the account's own password
			if p.External != nil {
				m.Method = domain.MethodExternal // or its external identity
			}
			ns = &m
		}
		return s.mergeGuest(ctx, p, ns, meta)
	}
	if p.External != nil {
		return s.promoteExternal(ctx, p, ns, meta)
	}
	id, err := loginid.Parse(loginid.Type(p.LoginIDType), p.LoginID)
	if err != nil {
		return Issued{}, err
	}
	return s.promoteHashed(ctx, PromoteInput{UserID: p.GuestID, OldSessionID: p.GuestSessionID, LoginID: id, NewSession: ns, Meta: meta}, p)
}

// promoteHashed is Promote with the new password hashed already (or none,
// passwordless) and the login ID proved by a code or not, as p says.
func (s *Accounts) promoteHashed(ctx context.Context, in PromoteInput, p PendingPromotion) (Issued, error) {
	hash := p.PasswordHash
	leaderChecked := false
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (Issued, error) {
		u, uv, err := s.LoadUser(ctx, in.UserID)
		if err != nil {
			return Issued{}, err
		}
		l, lv, err := loadAggregate(ctx, s.store, s.aggregates, s.loginIDSubject(in.LoginID), each(domain.EvolveLoginID))
		if err != nil {
			return Issued{}, err
		}
		now := s.clock.Now()
		prom, err := domain.DecidePromote(u, l, domain.Promote{LoginIDType: string(in.LoginID.Type), LoginID: in.LoginID.Value, PasswordHash: hash,
			Passwordless: p.Passwordless, Verified: p.Verified, Now: now})
		if err != nil && staleMiss(err) && s.replicated() && !leaderChecked {
			// The guest signed up a moment ago and a replica that has not
			// got it yet answered: decide again on what the leader has.
			leaderChecked = true
			return Issued{}, errDecideAgain
		}
		if err != nil {
			return Issued{}, err
		}
		guest := u
		evs := []pending{{subject: s.loginIDSubject(in.LoginID), expected: lv, event: prom.Claim}}
		for _, ev := range prom.User {
			evs = append(evs, pending{subject: s.userSubject(in.UserID), expected: uv, event: ev})
			u = domain.EvolveUser(u, ev)
		}
		// Every session of the guest ends with the promotion, whichever
		// one asked: whoever held the guest before keeps no way into the
		// account it becomes.
		ended, rest, err := s.endSessions(ctx, guest, domain.RevokeReasonPromoted, now, in.OldSessionID)
		if err != nil {
			return Issued{}, err
		}
		evs = append(evs, ended...)
		var start *startedSession
		if in.NewSession != nil {
			if start, err = s.decideNewSession(u, *in.NewSession, now); err != nil {
				return Issued{}, err
			}
			evs = append(evs, s.startOn(uv, start)...)
		}
		if err := s.appendEvents(ctx, in.Meta, evs...); err != nil {
			return Issued{}, err
		}
		s.appendRevocations(ctx, rest, in.Meta)
		commands.WithLabelValues("promote_user", "ok").Inc()
		if start == nil {
			return Issued{UserID: in.UserID}, nil
		}
		return s.issueStarted(ctx, u, start)
	})
}

type startedSession struct {
	event   domain.Event
	session domain.Session
	token   string
	atLife  time.Duration
	nonce   string
}

// decideNewSession decides the start of a session for u (not yet appended).
func (s *Sessions) decideNewSession(u domain.User, ns NewSession, now time.Time) (*startedSession, error) {
	if ns.Epoch != nil && u.CredentialEpoch() != *ns.Epoch {
		return nil, ErrSignInChanged
	}
	cl, err := s.client(ns.ClientID)
	if err != nil {
		return nil, err
	}
	sessionID := ns.SessionID
	if sessionID == "" {
		sessionID = uuid.NewString()
	}
	token, hash, err := tokens.NewOpaque(s.random, sessionID)
	if err != nil {
		return nil, err
	}
	idle, life, err := lifetimes(cl, ns.Kind)
	if err != nil {
		return nil, err
	}
	evs, err := domain.DecideStartSession(u, domain.Session{}, domain.StartSession{SessionID: sessionID, ClientID: ns.ClientID,
		Kind: ns.Kind, Method: ns.Method, TokenHash: hash, IdleTimeout: idle, Lifetime: life, Now: now, Device: ns.Device,
		Scope: ns.Scope, AuthTime: ns.AuthTime, DPoPJKT: ns.DPoPJKT})
	if err != nil {
		return nil, err
	}
	return &startedSession{event: evs[0], session: domain.EvolveSession(domain.Session{}, evs[0]), token: token,
		atLife: cl.AccessTokenLifetime.Duration(), nonce: ns.Nonce}, nil
}

func (s *Sessions) issueStarted(ctx context.Context, u domain.User, st *startedSession) (Issued, error) {
	return s.issueNonce(ctx, st.atLife, u, st.session, st.token, st.nonce)
}

// StartSession starts a session for a user who just proved who they are.
func (s *Sessions) StartSession(ctx context.Context, userID string, ns NewSession, meta Meta) (Issued, error) {
	u, st, err := s.startSession(ctx, userID, ns, meta)
	if err != nil {
		return Issued{}, err
	}
	return s.issueStarted(ctx, u, st)
}

// startSession decides and appends the start of a session for the user, at
// the user's version (see startOn), deciding again after a conflict.
func (s *Sessions) startSession(ctx context.Context, userID string, ns NewSession, meta Meta) (domain.User, *startedSession, error) {
	type outcome struct {
		u  domain.User
		st *startedSession
	}
	o, err := retryDecision(ctx, retryOptions{}, func(ctx context.Context) (outcome, error) {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return outcome{}, err
		}
		st, err := s.decideNewSession(u, ns, s.clock.Now())
		if err != nil {
			return outcome{}, err
		}
		return outcome{u, st}, s.appendEvents(ctx, meta, s.startOn(uv, st)...)
	})
	return o.u, o.st, err
}

// unknownHash is verified against when a login ID is unknown, so that
// sign-in does the same work whether or not the ID exists: it has the
// configured parameters, which real hashes are made with (a dummy of other
// parameters would cost a different time, and tell).
func (s *core) unknownHash() string { return password.Dummy(s.passwordParams()) }

// AuthenticatePassword checks a login ID and password, under the sign-in
// limits (beginPasswordAttempt). The answer for an unknown ID and for a
// wrong password is the same, after the same work.
func (s *Accounts) AuthenticatePassword(ctx context.Context, typ, value, pw, ip string, meta Meta) (domain.User, error) {
	now := s.clock.Now()
	id, idErr := s.ParseLoginID(typ, value)
	account := ""
	if idErr == nil {
		if !s.codeSettings().Offers(string(id.Type), domain.AuthenticatorPassword) {
			return domain.User{}, ErrAuthenticatorNotOffered
		}
		account = id.Key()
	}
	attempt, err := s.beginPasswordAttempt(ctx, "signin", account, ip)
	if err != nil {
		return domain.User{}, err
	}
	defer attempt.abandon(ctx)
	var u domain.User
	var uv uint64
	hash, known := s.unknownHash(), false
	if idErr == nil {
		l, _, err := loadAggregate(ctx, s.store, s.aggregates, s.loginIDSubject(id), each(domain.EvolveLoginID))
		if err == nil && !l.Claimed() && s.replicated() {
			// A login ID claimed a moment ago may not be on this replica.
			l, _, err = loadAggregate(eventstore.WithLeaderCheck(ctx), s.store, s.aggregates, s.loginIDSubject(id), each(domain.EvolveLoginID))
		}
		if err != nil {
			return domain.User{}, err
		}
		if l.Claimed() {
			if u, uv, err = s.LoadUser(ctx, l.UserID()); err != nil {
				return domain.User{}, err
			}
			if u.PasswordHash() != "" {
				hash, known = u.PasswordHash(), true
			}
		}
	}
	var ok, rehash bool
	var verr error
	if err := s.withHashSlot(ctx, func() { ok, rehash, verr = password.Verify(hash, pw, s.passwordParams()) }); err != nil {
		return domain.User{}, err
	}
	if verr != nil || !ok || !known || u.CanSignIn() != nil {
		attempt.failed(ctx)
		commands.WithLabelValues("sign_in", "rejected").Inc()
		return domain.User{}, ErrInvalidCredentials
	}
	if rehash {
		// The configured cost changed: store a new hash (best effort; a
		// concurrent change simply wins).
		if h, err := s.hashPassword(ctx, pw); err == nil {
			ev := domain.PasswordSet{UserID: u.UserID(), PasswordHash: h, Reason: "rehash", SetAt: now}
			if err := s.appendEvents(ctx, meta, pending{subject: s.userSubject(u.UserID()), expected: uv, event: ev}); err == nil {
				u = domain.EvolveUser(u, ev)
			}
		}
	}
	attempt.succeeded(ctx)
	commands.WithLabelValues("sign_in", "ok").Inc()
	return u, nil
}

// Register creates a regular user with a login ID and password, under the
// limits of account creation.
func (s *Accounts) Register(ctx context.Context, clientID string, id loginid.ID, pw, ip string, meta Meta) (domain.User, error) {
	t := timeCommand(&s.registrations)
	if _, err := s.client(clientID); err != nil {
		return domain.User{}, err
	}
	if !s.codeSettings().Offers(string(id.Type), domain.AuthenticatorPassword) {
		return domain.User{}, ErrAuthenticatorNotOffered
	}
	if s.PromotionNeedsCode(id) {
		// The login ID must be proved first: StartRegistrationByCode.
		return domain.User{}, ErrVerificationRequired
	}
	if err := s.allowAccountCreation(ctx, ip, id.Key(), ""); err != nil {
		return domain.User{}, err
	}
	if err := s.CheckPassword(pw); err != nil {
		return domain.User{}, err
	}
	hash, err := s.hashPassword(ctx, pw)
	if err != nil {
		return domain.User{}, err
	}
	u, err := s.register(ctx, clientID, id, hash, false, meta)
	s.takenAnswered(ctx, id.Key(), err)
	t.done(err)
	t.pad(ctx, err)
	return u, err
}

// register writes a sign-up: the user, the login ID's claim and, for one
// completed by a code (verified), the verification, in one append.
func (s *Accounts) register(ctx context.Context, clientID string, id loginid.ID, hash string, verified bool, meta Meta) (domain.User, error) {
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (domain.User, error) {
		l, lv, err := loadAggregate(ctx, s.store, s.aggregates, s.loginIDSubject(id), each(domain.EvolveLoginID))
		if err != nil {
			return domain.User{}, err
		}
		userID := uuid.NewString()
		reg, err := domain.DecideRegister(domain.User{}, l, s.registerCommand(userID, clientID, id, hash, verified))
		if err != nil {
			return domain.User{}, err
		}
		u, err := s.appendRegistration(ctx, meta, s.loginIDSubject(id), lv, reg.Claim, userID, reg.User)
		if err != nil {
			return domain.User{}, err
		}
		commands.WithLabelValues("register_user", "ok").Inc()
		return u, nil
	})
}

// appendRegistration writes a new user's events and the claim that makes
// its identity unique (on the login ID's or the external identity's
// subject, at the version the decision saw), in one append, and returns
// the user as they fold.
func (s *core) appendRegistration(ctx context.Context, meta Meta, claimSubject string, claimVersion uint64, claim domain.Event, userID string, user []domain.Event) (domain.User, error) {
	evs := []pending{{subject: claimSubject, expected: claimVersion, event: claim}}
	var u domain.User
	for _, ev := range user {
		evs = append(evs, pending{subject: s.userSubject(userID), event: ev})
		u = domain.EvolveUser(u, ev)
	}
	return u, s.appendEvents(ctx, meta, evs...)
}

// mergeGuest retires a guest into an existing account (conflict policy
// "login", p.MergeInto) and ends every session of the guest, in one append;
// with start, the same append starts the account's session. The account is
// looked at again first: it must still be able to sign in, with the
// credentials the merge was decided on (p.MergeEpoch) and, for a merge by
// an external identity, still holding that identity; otherwise
// ErrSignInChanged.
func (s *Accounts) mergeGuest(ctx context.Context, p PendingPromotion, start *NewSession, meta Meta) (Issued, error) {
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (Issued, error) {
		g, gv, err := s.LoadUser(ctx, p.GuestID)
		if err != nil {
			return Issued{}, err
		}
		now := s.clock.Now()
		merged, err := domain.DecideMerge(g, p.MergeInto, now)
		if err != nil {
			return Issued{}, err
		}
		owner, ov, err := s.LoadUser(ctx, p.MergeInto)
		if err != nil {
			return Issued{}, err
		}
		if err := s.mergeTargetHolds(ctx, owner, p); err != nil {
			return Issued{}, err
		}
		ended, rest, err := s.endSessions(ctx, g, domain.RevokeReasonMerged, now, p.GuestSessionID)
		if err != nil {
			return Issued{}, err
		}
		evs := append([]pending{{subject: s.userSubject(p.GuestID), expected: gv, event: merged[0]}}, ended...)
		var st *startedSession
		if start != nil {
			if st, err = s.decideNewSession(owner, *start, now); err != nil {
				return Issued{}, err
			}
			evs = append(evs, s.startOn(ov, st)...)
		}
		if err := s.appendEvents(ctx, meta, evs...); err != nil {
			return Issued{}, err
		}
		s.appendRevocations(ctx, rest, meta)
		commands.WithLabelValues("merge_guest", "ok").Inc()
		if st == nil {
			return Issued{UserID: p.MergeInto}, nil
		}
		return s.issueStarted(ctx, owner, st)
	})
}

// mergeTargetHolds checks that the account a prepared merge goes into is
// still the one it was decided on.
func (s *Accounts) mergeTargetHolds(ctx context.Context, owner domain.User, p PendingPromotion) error {
	if err := owner.CanSignIn(); err != nil {
		return err
	}
	if p.MergeEpoch != nil && owner.CredentialEpoch() != *p.MergeEpoch {
		return ErrSignInChanged
	}
	if p.External != nil {
		x, _, err := s.loadExternal(ctx, *p.External)
		if err != nil {
			return err
		}
		if !x.Claimed() || x.UserID() != p.MergeInto {
			return ErrSignInChanged // unlinked (or released and taken by another) meanwhile
		}
	}
	return nil
}

// PendingPromotion is a promotion decided on the hosted page and carried by
// its authorization code: it is written when the code is exchanged, so only
// the party that started the flow, which holds the PKCE verifier, can make
// it happen. Someone else's browser that opens a prepared promotion link
// gets a code it cannot use, and no account is made.
type PendingPromotion struct {
	GuestID        string `json:"guest_id"`
	GuestSessionID string `json:"guest_session_id,omitempty"`
	LoginIDType    string `json:"login_id_type,omitempty"`
	LoginID        string `json:"login_id,omitempty"`
	// PasswordHash is the argon2id hash of the new password. The code that
	// carries it lives minutes, in memory, keyed by the code's hash; the
	// log gets it only with the promotion.
	PasswordHash string `json:"password_hash,omitempty"`
	// MergeInto: the login ID belongs to this account and the person proved
	// its password (conflict policy "login"); the guest merges into it.
	MergeInto string `json:"merge_into,omitempty"`
	// MergeEpoch is the credential epoch of MergeInto when the merge was
	// decided: a password reset or removal before it is written (the
	// holder's first sign-in by code evicting whoever knew the password)
	// refuses it (ErrSignInChanged).
	MergeEpoch *int `json:"merge_epoch,omitempty"`
	// Passwordless: no password; codes sent to the login ID sign in.
	Passwordless bool `json:"passwordless,omitempty"`
	// Verified: a code sent to the login ID came back (the promotion is
	// completed by it), so the verification is part of the same append.
	Verified bool `json:"verified,omitempty"`
	// External: the promotion is with this external identity (issue 19),
	// not a login ID and password; with MergeInto, the identity's holder.
	External *domain.ExternalRef `json:"external,omitempty"`
}

// PreparePromotion decides a promotion without writing it: the limits, the
// password policy, the login ID free (or, under the conflict policy
// "login", the existing account's password right), the password hashed. It
// is the one place the conflict policy is applied: Promote writes the
// outcome at once; the hosted page in the code flow puts it into the
// authorization code (AuthorizationRequest.Promotion), written when the
// code is exchanged.
func (s *Accounts) PreparePromotion(ctx context.Context, in PromoteInput) (PendingPromotion, error) {
	v := s.codeSettings()
	if !v.Offers(string(in.LoginID.Type), domain.AuthenticatorPassword) {
		return PendingPromotion{}, ErrAuthenticatorNotOffered
	}
	if !in.byCode && v.Promotion == domain.VerifyRequired && codeTarget(in.LoginID) == nil {
		// The login ID must be proved first: StartPromotionByCode.
		return PendingPromotion{}, ErrVerificationRequired
	}
	if err := s.allowAccountCreation(ctx, in.IP, in.LoginID.Key(), in.UserID); err != nil {
		return PendingPromotion{}, err
	}
	if err := s.CheckPassword(in.Password); err != nil {
		return PendingPromotion{}, err
	}
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return PendingPromotion{}, err
	}
	ctx = eventstore.WithLeaderCheck(ctx) // decide on the newest state
	u, _, err := s.LoadUser(ctx, in.UserID)
	if err != nil {
		return PendingPromotion{}, err
	}
	l, _, err := loadAggregate(ctx, s.store, s.aggregates, s.loginIDSubject(in.LoginID), each(domain.EvolveLoginID))
	if err != nil {
		return PendingPromotion{}, err
	}
	now := s.clock.Now()
	_, err = domain.DecidePromote(u, l, domain.Promote{LoginIDType: string(in.LoginID.Type), LoginID: in.LoginID.Value, PasswordHash: hash, Now: now})
	if errors.Is(err, domain.ErrLoginIDTaken) && s.Settings().ConflictPolicy == "login" {
		// The person owns that account if the password is right; the guest
		// is then retired into it.
		owner, aerr := s.AuthenticatePassword(ctx, string(in.LoginID.Type), in.LoginID.Value, in.Password, in.IP, in.Meta)
		if aerr != nil {
			return PendingPromotion{}, aerr
		}
		if _, err := domain.DecideMerge(u, owner.UserID(), now); err != nil {
			return PendingPromotion{}, err
		}
		epoch := owner.CredentialEpoch()
		return PendingPromotion{GuestID: in.UserID, GuestSessionID: in.OldSessionID, MergeInto: owner.UserID(), MergeEpoch: &epoch}, nil
	}
	// A refusal for a taken login ID costs what a success does here: the
	// same loads and hashing, and no write (a success writes at the
	// code's exchange).
	s.takenAnswered(ctx, in.LoginID.Key(), err)
	if err != nil {
		return PendingPromotion{}, err
	}
	return PendingPromotion{GuestID: in.UserID, GuestSessionID: in.OldSessionID, LoginIDType: string(in.LoginID.Type),
		LoginID: in.LoginID.Value, PasswordHash: hash}, nil
}

// AuthorizationRequest is what an authorization code stands for.
type AuthorizationRequest struct {
	ClientID      string
	RedirectURI   string
	CodeChallenge string
	Scope         string
	UserID        string
	// Promotion, when set, is written when the code is exchanged.
	Promotion *PendingPromotion
	// Method is the sign-in method of the session the exchange starts
	// (empty: password).
	Method string
	// Nonce is echoed in the ID token; AuthTime is when the user
	// authenticated, when that was before now (prompt=none).
	Nonce    string
	AuthTime time.Time
	// ReauthSession: the code re-authenticates this session (see
	// CodeEntry).
	ReauthSession string
	// DPoPJKT is the authorize request's dpop_jkt, if any.
	DPoPJKT string
	// Epoch is the user's CredentialEpoch at the sign-in the code stands
	// for; nil: the user's now (a code issued right after its sign-in).
	Epoch *int
}

// IssueAuthorizationCode makes a single-use, short-lived code. It records
// the user's CredentialEpoch: a password reset or removed before the
// exchange makes the code start nothing.
func (s *Accounts) IssueAuthorizationCode(ctx context.Context, r AuthorizationRequest) (string, error) {
	epoch := 0
	switch {
	case r.Epoch != nil:
		epoch = *r.Epoch
	case r.Promotion == nil && r.UserID != "":
		u, _, err := s.LoadUser(ctx, r.UserID)
		if err != nil {
			return "", err
		}
		epoch = u.CredentialEpoch()
	}
	code, err := s.newCode()
	if err != nil {
		return "", err
	}
	// auth_time is when the person signed in (OpenID Connect Core §2): a
	// code issued as a sign-in ends was signed in to now, not when the
	// client exchanges it, up to CodeTTL later.
	now := s.clock.Now()
	return code, s.codes.Put(ctx, code, CodeEntry{Kind: CodeAuthorization, ClientID: r.ClientID, RedirectURI: r.RedirectURI,
		CodeChallenge: r.CodeChallenge, Scope: r.Scope, UserID: r.UserID, Promotion: r.Promotion, ExpiresAt: now.Add(CodeTTL),
		Nonce: r.Nonce, AuthTime: cmp.Or(r.AuthTime, now), ReauthSession: r.ReauthSession, DPoPJKT: r.DPoPJKT, Method: r.Method, Epoch: epoch})
}

// S256 is the PKCE code challenge of a verifier.
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ExchangeAuthorizationCode trades a code for a session (RFC 6749 §4.1.3 with
// PKCE, RFC 7636; a confidential client, authenticated by the caller, may
// have done without PKCE). A code works once; presented again it revokes
// the session it gave (RFC 6749 §10.5).
// deviceInfo is the request's x_device_info form field, if any (mobile
// SDKs); what it says of the device is kept with the session.
func (s *Accounts) ExchangeAuthorizationCode(ctx context.Context, clientID, code, redirectURI, verifier, deviceInfo string, meta Meta) (Issued, error) {
	dev, err := deviceOf(nil, deviceInfo)
	if err != nil {
		return Issued{}, err
	}
	e, rev, err := s.codes.Get(ctx, code)
	if errors.Is(err, ErrCodeNotFound) || (err == nil && e.Kind != CodeAuthorization) {
		return Issued{}, ErrInvalidAuthzCode
	}
	if err != nil {
		return Issued{}, err
	}
	if e.ClientID != clientID || e.RedirectURI != redirectURI {
		return Issued{}, ErrInvalidAuthzCode
	}
	if e.CodeChallenge == "" {
		// Only a confidential client's code has no challenge (authorize
		// refuses it of others), and its exchange authenticated it; a
		// verifier sent anyway matches nothing.
		if cl, ok := s.Settings().Client(clientID); !ok || !cl.Confidential() || verifier != "" {
			return Issued{}, ErrPKCEMismatch
		}
	} else if verifier == "" || subtle.ConstantTimeCompare([]byte(S256(verifier)), []byte(e.CodeChallenge)) != 1 {
		return Issued{}, ErrPKCEMismatch
	}
	if err := checkCodeBinding(e, meta); err != nil {
		return Issued{}, err
	}
	// Reuse ends the session the code gave (RFC 6749 §10.5), but only when
	// asked by whoever could have exchanged it (the client, its redirect
	// URI, the verifier, the DPoP key): a code read from a URL or a log
	// alone ends nobody's session.
	if e.Used {
		return Issued{}, s.revokeReusedCode(ctx, e, meta)
	}
	if !s.clock.Now().Before(e.ExpiresAt) {
		return Issued{}, ErrInvalidAuthzCode
	}
	if e.Promotion != nil {
		return s.exchangePromotion(ctx, clientID, code, e, rev, dev, meta)
	}
	if e.ReauthSession != "" {
		return s.exchangeReauthentication(ctx, code, e, rev, meta)
	}
	// Start the session first, then spend the code naming it: of two
	// concurrent exchanges one spends the code, and the other, whose
	// conditional update fails, finds the winner's session already in the
	// log and revokes it with its own.
	u, st, err := s.startSession(ctx, e.UserID, NewSession{ClientID: clientID, Kind: domain.SessionKindRefreshToken, Method: cmp.Or(e.Method, domain.MethodPassword),
		Device: dev, Scope: &e.Scope, AuthTime: e.AuthTime, Nonce: e.Nonce, DPoPJKT: meta.DPoPJKT, Epoch: &e.Epoch}, meta)
	if errors.Is(err, ErrSignInChanged) {
		return Issued{}, ErrInvalidAuthzCode // issued before the password was reset or removed
	}
	if err != nil {
		return Issued{}, err
	}
	if err := s.spendExchanged(ctx, code, e, rev, st.session.SessionID(), meta); err != nil {
		return Issued{}, err
	}
	return s.issueStarted(ctx, u, st)
}

// spendExchanged spends an exchanged code, naming the session it gave; when
// another exchange spent it first, both sessions are revoked.
func (s *Accounts) spendExchanged(ctx context.Context, code string, e CodeEntry, rev uint64, sessionID string, meta Meta) error {
	e.Used, e.IssuedSession = true, sessionID
	err := s.codes.Update(ctx, code, e, rev)
	if err == nil {
		return nil
	}
	if rerr := s.RevokeSession(ctx, sessionID, domain.RevokeReasonCodeReuse, meta); rerr != nil {
		return fmt.Errorf("revoke after failed code exchange: %w", rerr)
	}
	if errors.Is(err, ErrCodeChanged) {
		if winner, _, gerr := s.codes.Get(ctx, code); gerr == nil {
			return s.revokeReusedCode(ctx, winner, meta)
		}
		return ErrAuthzCodeReused
	}
	return err
}

// exchangePromotion writes the promotion (or merge) a code carries, with the
// start of the session it gives, in one append. The session's id comes from
// the code, so two exchanges of one code start the same session: one
// append wins, and the other finds the guest promoted and that session in
// the log, and revokes it as reuse.
func (s *Accounts) exchangePromotion(ctx context.Context, clientID, code string, e CodeEntry, rev uint64, dev *domain.Device, meta Meta) (Issued, error) {
	p := e.Promotion
	ns := NewSession{ClientID: clientID, Kind: domain.SessionKindRefreshToken, Method: domain.MethodPromotion,
		SessionID: uuid.NewSHA1(codeSessions, []byte(codeKey(code))).String(), Device: dev, Scope: &e.Scope, Nonce: e.Nonce, DPoPJKT: meta.DPoPJKT,
		AuthTime: e.AuthTime}
	if p.External != nil {
		ns.Method = domain.MethodExternal
	}
	iss, err := s.completePromotion(ctx, *p, &ns, meta)
	if errors.Is(err, ErrSignInChanged) {
		return Issued{}, ErrInvalidAuthzCode // the account it merges into changed its credentials meanwhile
	}
	if err != nil && !errors.Is(err, eventstore.ErrUnavailable) {
		// Refused (the guest promoted, the login ID taken, ...): if the
		// session this code gives is in the log, another exchange of the
		// code wrote it.
		if sess, _, lerr := s.LoadSession(eventstore.WithLeaderCheck(ctx), ns.SessionID); lerr == nil && sess.Exists() {
			s.log.Warn("authorization code reused; revoking the session it issued", "session_id", ns.SessionID, "correlation_id", meta.CorrelationID)
			if rerr := s.RevokeSession(ctx, ns.SessionID, domain.RevokeReasonCodeReuse, meta); rerr != nil {
				return Issued{}, fmt.Errorf("revoke after code reuse: %w", rerr)
			}
			return Issued{}, ErrAuthzCodeReused
		}
	}
	if err != nil {
		return Issued{}, err
	}
	if err := s.spendExchanged(ctx, code, e, rev, iss.SessionID, meta); err != nil {
		return Issued{}, err
	}
	return iss, nil
}

// codeSessions is the namespace of the session ids that codes carrying a
// promotion give.
var codeSessions = uuid.MustParse("5d0c5a57-3c1c-4d5e-9a0e-6f1d2b7c9e41")

func (s *Accounts) revokeReusedCode(ctx context.Context, e CodeEntry, meta Meta) error {
	if e.IssuedSession != "" {
		s.log.Warn("authorization code reused; revoking the session it issued", "session_id", e.IssuedSession, "correlation_id", meta.CorrelationID)
		if err := s.RevokeSession(ctx, e.IssuedSession, domain.RevokeReasonCodeReuse, meta); err != nil {
			return fmt.Errorf("revoke after code reuse: %w", err)
		}
	}
	return ErrAuthzCodeReused
}
