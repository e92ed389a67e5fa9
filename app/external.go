package app

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// External identities (issue 19): the commands behind "Continue with
// <provider>". The provider's answer was verified by the caller (package
// upstream); these decide on the log and write, each in one atomic append
// with the identity's claim on its own subject (expected: the version
// read, none for a new one), so one external identity belongs to one user
// and of two racing claims one is written.

// CodeUpstream is the kind of an upstream authorization request's state.
const CodeUpstream = "upstream"

// UpstreamState is what an upstream authorization request's state stands
// for: the hosted flow it continues, the provider, and the nonce and PKCE
// verifier sent with it (single use, minutes, keyed by the state's hash).
type UpstreamState struct {
	FlowID   string `json:"flow_id"`
	Provider string `json:"provider"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"`
	// LinkUser: the flow links the identity to this regular user (the
	// settings page) instead of signing in.
	LinkUser string `json:"link_user,omitempty"`
	// LinkEpoch is LinkUser's CredentialEpoch when the link was started:
	// a password reset or removed meanwhile refuses it (ErrSignInChanged).
	LinkEpoch int `json:"link_epoch,omitempty"`
	// Return is the page a link returns to (the settings page); empty: a
	// page that says it is done.
	Return string `json:"return,omitempty"`
}

// TakeUpstreamState spends the state of an upstream authorization request:
// of two requests with one state, one gets it.
func (s *Accounts) TakeUpstreamState(ctx context.Context, state string) (CodeEntry, error) {
	return s.takeCode(ctx, state, ErrCodeNotFound, s.liveUpstream(CodeUpstream))
}

// liveUpstream accepts a live entry of the kind carrying an upstream
// request (states and link codes).
func (s *Accounts) liveUpstream(kind string) func(CodeEntry) bool {
	return func(e CodeEntry) bool {
		return e.Kind == kind && e.Upstream != nil && s.clock.Now().Before(e.ExpiresAt)
	}
}

func (s *core) externalSubject(r domain.ExternalRef) string {
	return s.store.Subject("external", r.Key())
}

func (s *core) loadExternal(ctx context.Context, r domain.ExternalRef) (domain.ExternalIdentity, uint64, error) {
	return loadAggregate(ctx, s.store, s.aggregates, s.externalSubject(r), each(domain.EvolveExternalIdentity))
}

// externalOwner is the user holding the identity, "" if none; a miss is
// asked of the leader (it may have been claimed a moment ago).
func (s *Accounts) externalOwner(ctx context.Context, r domain.ExternalRef) (string, error) {
	x, _, err := s.loadExternal(ctx, r)
	if err == nil && !x.Claimed() && s.replicated() {
		x, _, err = s.loadExternal(eventstore.WithLeaderCheck(ctx), r)
	}
	if err != nil || !x.Claimed() {
		return "", err
	}
	return x.UserID(), nil
}

// SignInExternal is "Continue with <provider>" on sign-in and sign-up: the
// user holding the identity, or a new regular user registered with it
// (under the limits of account creation). Of two racing first sign-ins
// one registers; the other finds the identity taken and signs in as that
// user.
func (s *Accounts) SignInExternal(ctx context.Context, clientID string, r domain.ExternalRef, ip string, meta Meta) (domain.User, error) {
	if _, err := s.client(clientID); err != nil {
		return domain.User{}, err
	}
	for range 2 {
		owner, err := s.externalOwner(ctx, r)
		if err != nil {
			return domain.User{}, err
		}
		if owner != "" {
			u, _, err := s.LoadUser(ctx, owner)
			if err != nil {
				return domain.User{}, err
			}
			if err := u.CanSignIn(); err != nil {
				return domain.User{}, err
			}
			commands.WithLabelValues("sign_in_external", "ok").Inc()
			return u, nil
		}
		if err := s.allowAccountCreation(ctx, ip, "external:"+r.Key(), ""); err != nil {
			return domain.User{}, err
		}
		u, err := s.registerExternal(ctx, clientID, r, meta)
		if !errors.Is(err, domain.ErrExternalIdentityTaken) {
			return u, err
		}
	}
	return domain.User{}, ErrBusy
}

func (s *Accounts) registerExternal(ctx context.Context, clientID string, r domain.ExternalRef, meta Meta) (domain.User, error) {
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (domain.User, error) {
		x, xv, err := s.loadExternal(ctx, r)
		if err != nil {
			return domain.User{}, err
		}
		userID := uuid.NewString()
		reg, err := domain.DecideRegisterExternal(domain.User{}, x, userID, clientID, r, s.clock.Now())
		if err != nil {
			return domain.User{}, err
		}
		u, err := s.appendRegistration(ctx, meta, s.externalSubject(r), xv, reg.Claim, userID, reg.User)
		if err != nil {
			return domain.User{}, err
		}
		commands.WithLabelValues("register_user_external", "ok").Inc()
		return u, nil
	})
}

// prepareExternalPromotion decides a guest's promotion with an external
// identity without writing it (as PreparePromotion for login IDs): the
// identity free, or, under the conflict policy "login", held by an account
// the guest then merges into (the person just proved they own it at the
// provider).
func (s *Accounts) prepareExternalPromotion(ctx context.Context, guestID, guestSessionID string, r domain.ExternalRef, ip string) (PendingPromotion, error) {
	if err := s.allowAccountCreation(ctx, ip, "external:"+r.Key(), guestID); err != nil {
		return PendingPromotion{}, err
	}
	ctx = eventstore.WithLeaderCheck(ctx)
	u, _, err := s.LoadUser(ctx, guestID)
	if err != nil {
		return PendingPromotion{}, err
	}
	x, _, err := s.loadExternal(ctx, r)
	if err != nil {
		return PendingPromotion{}, err
	}
	now := s.clock.Now()
	_, err = domain.DecidePromoteExternal(u, x, r, now)
	if errors.Is(err, domain.ErrExternalIdentityTaken) && s.Settings().ConflictPolicy == "login" {
		owner, _, lerr := s.LoadUser(ctx, x.UserID())
		if lerr != nil {
			return PendingPromotion{}, lerr
		}
		if err := owner.CanSignIn(); err != nil {
			return PendingPromotion{}, err
		}
		if _, err := domain.DecideMerge(u, owner.UserID(), now); err != nil {
			return PendingPromotion{}, err
		}
		epoch := owner.CredentialEpoch()
		return PendingPromotion{GuestID: guestID, GuestSessionID: guestSessionID, MergeInto: owner.UserID(), MergeEpoch: &epoch, External: &r}, nil
	}
	if err != nil {
		return PendingPromotion{}, err
	}
	return PendingPromotion{GuestID: guestID, GuestSessionID: guestSessionID, External: &r}, nil
}

// completePromotionTimed writes a prepared promotion (or merge) at once, with
// the start of ns if given (cookie mode).
func (s *Accounts) completePromotionTimed(ctx context.Context, p PendingPromotion, ns *NewSession, meta Meta) (Issued, error) {
	t := timeCommand(&s.promotions)
	iss, err := s.completePromotion(ctx, p, ns, meta)
	t.done(err)
	return iss, err
}

// promoteExternal writes a guest's promotion with an external identity:
// the identity's claim, the user's promotion and link, the end of every
// session of the guest and, if asked, the start of the regular one, in
// one append (as promoteHashed).
func (s *Accounts) promoteExternal(ctx context.Context, p PendingPromotion, ns *NewSession, meta Meta) (Issued, error) {
	r := *p.External
	return retryDecision(ctx, retryOptions{}, func(ctx context.Context) (Issued, error) {
		u, uv, err := s.LoadUser(eventstore.WithLeaderCheck(ctx), p.GuestID)
		if err != nil {
			return Issued{}, err
		}
		x, xv, err := s.loadExternal(ctx, r)
		if err != nil {
			return Issued{}, err
		}
		now := s.clock.Now()
		prom, err := domain.DecidePromoteExternal(u, x, r, now)
		if err != nil {
			return Issued{}, err
		}
		guest := u
		evs := []pending{{subject: s.externalSubject(r), expected: xv, event: prom.Claim}}
		for _, ev := range prom.User {
			evs = append(evs, pending{subject: s.userSubject(p.GuestID), expected: uv, event: ev})
			u = domain.EvolveUser(u, ev)
		}
		ended, rest, err := s.endSessions(ctx, guest, domain.RevokeReasonPromoted, now, p.GuestSessionID)
		if err != nil {
			return Issued{}, err
		}
		evs = append(evs, ended...)
		var start *startedSession
		if ns != nil {
			if start, err = s.decideNewSession(u, *ns, now); err != nil {
				return Issued{}, err
			}
			evs = append(evs, s.startOn(uv, start)...)
		}
		if err := s.appendEvents(ctx, meta, evs...); err != nil {
			return Issued{}, err
		}
		s.appendRevocations(ctx, rest, meta)
		commands.WithLabelValues("promote_user_external", "ok").Inc()
		if start == nil {
			return Issued{UserID: p.GuestID}, nil
		}
		return s.issueStarted(ctx, u, start)
	})
}

// ErrSignInChanged: what was started on the strength of a sign-in (a
// link to an identity provider) is refused, because the user's password
// was reset or removed since: that sign-in no longer holds.
var ErrSignInChanged = errors.New("the account's password was reset or removed since this was started")

// LinkExternal adds an external identity to a regular user (its settings
// page); linking one it holds already changes nothing. epoch is the
// user's CredentialEpoch when the link was started (UpstreamState): at
// another, the link is refused (ErrSignInChanged).
func (s *Accounts) LinkExternal(ctx context.Context, userID string, epoch int, r domain.ExternalRef, meta Meta) error {
	_, err := retryDecision(ctx, retryOptions{}, func(ctx context.Context) (struct{}, error) {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return struct{}{}, err
		}
		if u.CredentialEpoch() != epoch {
			return struct{}{}, ErrSignInChanged
		}
		x, xv, err := s.loadExternal(ctx, r)
		if err != nil {
			return struct{}{}, err
		}
		l, err := domain.DecideLinkExternal(u, x, r, s.clock.Now())
		if err != nil || l.Claim == nil {
			return struct{}{}, err
		}
		evs := []pending{{subject: s.externalSubject(r), expected: xv, event: l.Claim}}
		for _, ev := range l.User {
			evs = append(evs, pending{subject: s.userSubject(userID), expected: uv, event: ev})
		}
		return struct{}{}, s.appendEvents(ctx, meta, evs...)
	})
	if err == nil {
		commands.WithLabelValues("link_external", "ok").Inc()
	}
	return err
}

// UnlinkExternal removes one of a regular user's external identities,
// never its last way in; the identity may then be linked again. Two
// concurrent unlinks of a user's last two ways in both decide on the
// user's version: one is written, the other decides again and is refused.
func (s *Accounts) UnlinkExternal(ctx context.Context, userID string, r domain.ExternalRef, meta Meta) error {
	_, err := retryDecision(ctx, retryOptions{}, func(ctx context.Context) (struct{}, error) {
		u, uv, err := s.LoadUser(ctx, userID)
		if err != nil {
			return struct{}{}, err
		}
		x, xv, err := s.loadExternal(ctx, r)
		if err != nil {
			return struct{}{}, err
		}
		l, err := domain.DecideUnlinkExternal(u, x, r, s.clock.Now())
		if err != nil {
			return struct{}{}, err
		}
		evs := []pending{{subject: s.externalSubject(r), expected: xv, event: l.Claim}}
		for _, ev := range l.User {
			evs = append(evs, pending{subject: s.userSubject(userID), expected: uv, event: ev})
		}
		return struct{}{}, s.appendEvents(ctx, meta, evs...)
	})
	if err == nil {
		commands.WithLabelValues("unlink_external", "ok").Inc()
	}
	return err
}

// CodeLink is the kind of a link code: a regular user's one-time start of
// linking an external identity in a browser.
const CodeLink = "link"

// IssueLinkCode gives a regular user a single-use code that starts linking
// an identity of the provider in a browser (the headless API's answer).
func (s *Accounts) IssueLinkCode(ctx context.Context, p Principal, provider string) (string, time.Time, error) {
	if p.User.IsAnonymous() {
		return "", time.Time{}, domain.ErrAnonymousCannotLink
	}
	code, err := s.newCode()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.clock.Now().Add(CodeTTL).Truncate(time.Second)
	return code, exp, s.codes.Put(ctx, code, CodeEntry{Kind: CodeLink, UserID: p.User.UserID(), ClientID: p.Session.ClientID(), ExpiresAt: exp,
		Upstream: &UpstreamState{Provider: provider, LinkUser: p.User.UserID(), LinkEpoch: p.User.CredentialEpoch()}})
}

// LinkCode reads a live link code without spending it (the confirmation
// page).
func (s *Accounts) LinkCode(ctx context.Context, code string) (CodeEntry, error) {
	e, _, err := s.codeEntry(ctx, code, ErrCodeNotFound, s.liveUpstream(CodeLink))
	return e, err
}

// TakeLinkCode spends a link code.
func (s *Accounts) TakeLinkCode(ctx context.Context, code string) (CodeEntry, error) {
	return s.takeCode(ctx, code, ErrCodeNotFound, s.liveUpstream(CodeLink))
}
