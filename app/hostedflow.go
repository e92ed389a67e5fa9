package app

import (
	"cmp"
	"context"
	"errors"
	"fmt"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// The hosted promotion page's command (issue 16): the page submits what
// the person typed and what the browser holds; this decides which way the
// promotion goes (a code first, decided now and written at the code
// exchange, or written now with the cookie session) and spends the sign-up
// link, so the page only renders and redirects.

// Errors of a hosted flow that cannot go on (the page shows a message,
// not the form).
var (
	// ErrPromotionLinkSpent: the flow's promotion code expired or was used.
	ErrPromotionLinkSpent = errors.New("the sign-up link expired or was already used")
	// ErrGuestOfAnotherBrowser: a cookie-mode promotion from a browser
	// without the guest's own session cookie.
	ErrGuestOfAnotherBrowser = errors.New("the sign-up link belongs to a guest of another browser")
	// ErrReauthenticationOtherUser: a flow with an id_token_hint was
	// signed in to by another user than the hint's.
	ErrReauthenticationOtherUser = errors.New("sign in as the account you are re-authenticating")
)

// SignInToFlow is a hosted sign-in with a password: AuthenticatePassword,
// and a re-authentication (the flow's id_token_hint named a subject) must
// be by that user.
func (s *Accounts) SignInToFlow(ctx context.Context, f CodeEntry, loginID, password, ip string, meta Meta) (domain.User, error) {
	u, err := s.AuthenticatePassword(ctx, "", loginID, password, ip, meta)
	if err == nil && f.Subject != "" && u.UserID() != f.Subject {
		return domain.User{}, ErrReauthenticationOtherUser
	}
	return u, err
}

// HostedPromotion is a submission of the hosted promotion page.
type HostedPromotion struct {
	FlowID string
	Flow   CodeEntry
	// LoginID and Password as typed (Password is ignored with ByCode).
	LoginID  loginid.ID
	Password string
	// ByCode: a code instead of a password ("Create account with a code
	// instead", or a login ID type that offers no password).
	ByCode bool
	// External, when set, promotes with this external identity (the
	// upstream provider's callback, issue 19) instead of a login ID.
	External *domain.ExternalRef
	// HoldsGuestSession: the browser carries the session cookie of the
	// guest session the flow's promotion code was issued through (cookie
	// mode needs it: there is no code exchange to bind the flow to).
	HoldsGuestSession bool
	CodeRequest
}

// HostedPromotionResult is where the flow goes next: CodeSent (on to the
// code page), or the end of the flow as UserID, with Started (cookie mode:
// the session, written) or Promotion (code mode: carried by the
// authorization code and written at its exchange).
type HostedPromotionResult struct {
	CodeSent  bool
	UserID    string
	Started   *Issued
	Promotion *PendingPromotion
}

// SubmitHostedPromotion runs a hosted promotion: the sign-up link still
// good, the browser's claim to the guest (cookie mode), then the code path
// when the person chose a code or the project requires one, else the
// promotion (or merge, under the conflict policy "login") decided by
// PreparePromotion, the one place the policy is applied. The link is spent
// once the promotion is decided; nothing is written before the code comes
// back on the code path.
func (s *Accounts) SubmitHostedPromotion(ctx context.Context, in HostedPromotion) (HostedPromotionResult, error) {
	f := in.Flow
	if f.UserID == "" {
		return HostedPromotionResult{}, ErrNotAGuestFlow
	}
	if err := s.SignUpLinkGood(ctx, f); err != nil {
		return HostedPromotionResult{}, err
	}
	cookieMode := f.ResponseType != "code"
	if cookieMode && !in.HoldsGuestSession {
		return HostedPromotionResult{}, ErrGuestOfAnotherBrowser
	}
	if in.External != nil {
		p, err := s.prepareExternalPromotion(ctx, f.UserID, f.SessionID, *in.External, in.IP)
		if err != nil {
			return HostedPromotionResult{}, err
		}
		var ns *NewSession
		if cookieMode {
			ns = &NewSession{ClientID: f.ClientID, Kind: domain.SessionKindCookie, Method: domain.MethodExternal}
		}
		return s.endHostedPromotion(ctx, f, p, ns, in.Meta)
	}
	pin := PromoteInput{UserID: f.UserID, OldSessionID: f.SessionID, LoginID: in.LoginID, Password: in.Password, IP: in.IP, Meta: in.Meta}
	if in.ByCode {
		pin.Password = ""
	}
	if cookieMode {
		pin.NewSession = &NewSession{ClientID: f.ClientID, Kind: domain.SessionKindCookie, Method: domain.MethodPromotion}
	}
	if in.ByCode || s.PromotionNeedsCode(in.LoginID) {
		return s.hostedPromotionByCode(ctx, in, pin, cookieMode)
	}
	if !cookieMode {
		p, err := s.PreparePromotion(ctx, pin)
		if err != nil {
			return HostedPromotionResult{}, err
		}
		return s.endHostedPromotion(ctx, f, p, nil, in.Meta)
	}
	iss, err := s.Promote(ctx, pin)
	if err != nil {
		return HostedPromotionResult{}, err
	}
	s.spendPromotionCode(ctx, f.PromotionCode)
	return HostedPromotionResult{UserID: iss.UserID, Started: &iss}, nil
}

// hostedPromotionByCode sends the code of a hosted promotion and records
// in the flow where it went; a merge the password proved (policy "login")
// needs no code and ends the flow at once.
func (s *Accounts) hostedPromotionByCode(ctx context.Context, in HostedPromotion, pin PromoteInput, cookieMode bool) (HostedPromotionResult, error) {
	st, err := s.StartPromotionByCode(ctx, PromotionByCode{Locale: in.Locale, DeferMerge: !cookieMode, PromoteInput: pin})
	if err != nil {
		return HostedPromotionResult{}, err
	}
	switch {
	case st.Merged != nil:
		s.spendPromotionCode(ctx, in.Flow.PromotionCode)
		return HostedPromotionResult{UserID: st.Merged.UserID, Started: st.Merged}, nil
	case st.Merge != nil:
		s.spendPromotionCode(ctx, in.Flow.PromotionCode)
		return HostedPromotionResult{UserID: st.Merge.MergeInto, Promotion: st.Merge}, nil
	}
	if err := s.SetFlowCodeLoginID(ctx, in.FlowID, string(in.LoginID.Type), in.LoginID.Value); err != nil {
		return HostedPromotionResult{}, err
	}
	return HostedPromotionResult{CodeSent: true}, nil
}

// ErrNotAGuestFlow: a promotion submitted on a flow that has no guest.
var ErrNotAGuestFlow = errors.New("this flow promotes no guest")

// ErrFlowSpent: the hosted flow was ended meanwhile (a second submission
// of its page: a double click, another tab) or has expired; it ends once.
var ErrFlowSpent = errors.New("this sign-in page was already used or has expired")

// spendFlow spends a live hosted flow by a delete conditioned on the
// revision read: of two submissions ending the same flow (on any nodes)
// exactly one goes on, the other gets ErrFlowSpent. A delete that lost to
// a change of the flow (another tab recording where a code went) looks
// again at what the flow is now.
func (s *Accounts) spendFlow(ctx context.Context, flowID string) error {
	live := func(e CodeEntry) bool { return e.Kind == CodeFlow && s.clock.Now().Before(e.ExpiresAt) }
	for range maxAttempts {
		_, rev, err := s.codeEntry(ctx, flowID, ErrFlowSpent, live)
		if err != nil {
			return err
		}
		if err := s.codes.Delete(ctx, flowID, rev); !errors.Is(err, ErrCodeChanged) {
			return err
		}
	}
	return ErrBusy
}

// ErrFlowChanged: the hosted flow changed between reading and writing it
// (another tab of the same flow sent a code meanwhile).
var ErrFlowChanged = errors.New("the sign-in page changed meanwhile")

// SignUpLinkGood checks the sign-up link (promotion code) of a guest's
// flow, if it has one: expired, spent or its guest gone is
// ErrPromotionLinkSpent, which ends the flow; a failure to read it is
// answered as itself (a 503 to retry), not as a spent link.
func (s *Accounts) SignUpLinkGood(ctx context.Context, f CodeEntry) error {
	if f.PromotionCode == "" {
		return nil
	}
	_, err := s.PromotionCode(ctx, f.PromotionCode)
	switch {
	case errors.Is(err, ErrInvalidPromotionCode), errors.Is(err, domain.ErrUserNotFound), errors.Is(err, domain.ErrSessionNotFound):
		return ErrPromotionLinkSpent
	}
	return err
}

// ContinueHostedPromotion is the code page of a hosted promotion (the
// code the submission sent): the sign-up link still good, the browser's
// claim to the guest (cookie mode), then the code checked: in code mode the
// promotion, verified, is carried by the authorization code; in cookie mode
// it is written now with the cookie session. A wrong code changes nothing
// (and leaves the link).
func (s *Accounts) ContinueHostedPromotion(ctx context.Context, in HostedPromotionCode) (HostedPromotionResult, error) {
	f := in.Flow
	if f.UserID == "" || f.CodeLoginID == "" {
		return HostedPromotionResult{}, ErrNotAGuestFlow
	}
	if err := s.SignUpLinkGood(ctx, f); err != nil {
		return HostedPromotionResult{}, err
	}
	var ns *NewSession
	if f.ResponseType != "code" {
		if !in.HoldsGuestSession {
			return HostedPromotionResult{}, ErrGuestOfAnotherBrowser
		}
		ns = &NewSession{ClientID: f.ClientID, Kind: domain.SessionKindCookie, Method: domain.MethodPromotion}
	}
	id := loginid.ID{Type: loginid.Type(f.CodeLoginIDType), Value: f.CodeLoginID}
	p, err := s.CheckPromotionByCode(ctx, f.UserID, id, in.Code, in.CodeRequest)
	if err != nil {
		return HostedPromotionResult{}, err
	}
	if f.SessionID != "" {
		p.GuestSessionID = f.SessionID
	}
	res, err := s.endHostedPromotion(ctx, f, p, ns, in.Meta)
	if err == nil && res.Started != nil {
		commands.WithLabelValues("promote_by_code", "ok").Inc() // as CompletePromotionByCode counts it
	}
	return res, err
}

// HostedPromotionCode is a submission of a hosted promotion's code page.
type HostedPromotionCode struct {
	Flow              CodeEntry
	Code              string
	HoldsGuestSession bool
	CodeRequest
}

// StartFlowCode starts, from a hosted flow, a code that begins with a
// login ID alone ("Forgot password?": PurposeReset; "Sign in with a code
// instead": PurposeSignIn), with the same answer whether anybody holds it,
// and records in the flow where it went.
func (s *Accounts) StartFlowCode(ctx context.Context, flowID string, f CodeEntry, purpose string, id loginid.ID, r CodeRequest) error {
	var err error
	switch purpose {
	case PurposeReset:
		_, err = s.StartPasswordReset(ctx, f.ClientID, id, r)
	case PurposeSignIn:
		_, err = s.StartCodeSignIn(ctx, f.ClientID, id, r)
	default:
		err = fmt.Errorf("app: no hosted flow starts a %q code", purpose)
	}
	if err != nil {
		return err
	}
	return s.SetFlowCodeLoginID(ctx, flowID, string(id.Type), id.Value)
}

// endHostedPromotion ends a hosted promotion decided as p and spends the
// sign-up link: without ns (code mode) p is carried by the authorization
// code, written when the app exchanges it with its PKCE verifier, so only
// the party that started the flow can complete it; with ns (cookie mode)
// it is written now, with the start of ns.
func (s *Accounts) endHostedPromotion(ctx context.Context, f CodeEntry, p PendingPromotion, ns *NewSession, meta Meta) (HostedPromotionResult, error) {
	if ns == nil {
		s.spendPromotionCode(ctx, f.PromotionCode)
		return HostedPromotionResult{UserID: cmp.Or(p.MergeInto, f.UserID), Promotion: &p}, nil
	}
	iss, err := s.completePromotionTimed(ctx, p, ns, meta)
	if err != nil {
		return HostedPromotionResult{}, err
	}
	s.spendPromotionCode(ctx, f.PromotionCode)
	return HostedPromotionResult{UserID: iss.UserID, Started: &iss}, nil
}

// EndFlow is how a hosted flow ends for UserID: Started is a session the
// flow's command already wrote (cookie-mode promotion), Promotion one it
// decided for the authorization code to write, Method the sign-in method
// (empty: password).
type EndFlow struct {
	FlowID string
	Flow   CodeEntry
	UserID string
	// Epoch is the user's credential epoch at the sign-in that ends the
	// flow (nil: read when the code is issued).
	Epoch     *int
	Started   *Issued
	Promotion *PendingPromotion
	Method    string
	Meta      Meta
}

// FlowEnd is what the app gets back: an authorization code (code mode) or
// the cookie session.
type FlowEnd struct {
	Code    string
	Session *Issued
}

// EndFlow ends a hosted flow: a flow with an id_token_hint only as the
// hint's user (ErrReauthenticationOtherUser); the flow is spent; in code mode an
// authorization code is issued (a sign-in by the user of an id_token_hint
// whose session is live re-authenticates that session, the SDKs'
// reauthentication), otherwise the cookie session is the one started, or a
// new one.
func (s *Accounts) EndFlow(ctx context.Context, in EndFlow) (FlowEnd, error) {
	f := in.Flow
	if f.Subject != "" && f.UserID == "" && in.UserID != f.Subject {
		// Whatever way the person signed in (a password, a code), a
		// re-authentication is by the hint's user; the flow stays. (A
		// guest's promotion was checked against the hint at authorize,
		// and may end as the account the guest merged into.)
		return FlowEnd{}, ErrReauthenticationOtherUser
	}
	if err := s.spendFlow(ctx, in.FlowID); err != nil {
		return FlowEnd{}, err
	}
	method := cmp.Or(in.Method, domain.MethodPassword)
	if f.ResponseType == "code" {
		reauth := ""
		if in.Promotion == nil && method != domain.MethodExternal && f.Subject != "" && f.Subject == in.UserID {
			var err error
			if reauth, err = s.liveSessionOf(ctx, f.ReauthSession, in.UserID, f.ClientID); err != nil {
				return FlowEnd{}, err
			}
		}
		code, err := s.IssueAuthorizationCode(ctx, AuthorizationRequest{ClientID: f.ClientID, RedirectURI: f.RedirectURI,
			CodeChallenge: f.CodeChallenge, Scope: f.Scope, UserID: in.UserID, Promotion: in.Promotion, Nonce: f.Nonce,
			ReauthSession: reauth, DPoPJKT: f.DPoPJKT, Method: method, Epoch: in.Epoch})
		return FlowEnd{Code: code}, err
	}
	if in.Started != nil {
		return FlowEnd{Session: in.Started}, nil
	}
	iss, err := s.StartSession(ctx, in.UserID, NewSession{ClientID: f.ClientID, Kind: domain.SessionKindCookie, Method: method, Epoch: in.Epoch}, in.Meta)
	if err != nil {
		return FlowEnd{}, err
	}
	return FlowEnd{Session: &iss}, nil
}
