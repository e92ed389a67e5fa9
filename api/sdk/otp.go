package sdk

import (
	"context"
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"

	"github.com/gorilla/mux"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
)

// otpRoutes are the headless one-time code endpoints for first-party apps
// (issue 20): verification of the signed-in user's login ID, promotion
// completed by a code, sign-in with a code, and forgotten passwords. Each
// decodes, calls one command and encodes; the SDK's error shape.
func (s *Server) otpRoutes(r *mux.Router) {
	r.HandleFunc("/api/verification/start", s.verificationStart(false)).Methods(http.MethodPost)
	r.HandleFunc("/api/verification/resend", s.verificationStart(true)).Methods(http.MethodPost)
	r.HandleFunc("/api/verification/verify", s.verificationVerify).Methods(http.MethodPost)
	r.HandleFunc("/api/anonymous_user/promote/start", s.promoteByCodeStart).Methods(http.MethodPost)
	r.HandleFunc("/api/anonymous_user/promote/resend", s.promoteByCodeResend).Methods(http.MethodPost)
	r.HandleFunc("/api/anonymous_user/promote/verify", s.promoteByCodeVerify).Methods(http.MethodPost)
	r.HandleFunc("/api/signin/code/start", s.codeSignInStart).Methods(http.MethodPost)
	r.HandleFunc("/api/signin/code/resend", s.codeSignInStart).Methods(http.MethodPost)
	r.HandleFunc("/api/signin/code/verify", s.codeSignInVerify).Methods(http.MethodPost)
	r.HandleFunc("/api/password/forgot", s.passwordForgot).Methods(http.MethodPost)
	r.HandleFunc("/api/password/reset", s.passwordReset).Methods(http.MethodPost)
}

type codeSentResult struct {
	SentTo      string `json:"sent_to"`
	Channel     string `json:"channel"`
	ExpireAt    string `json:"expire_at"`
	ResendAfter string `json:"resend_after"`
}

func codeSentOf(c app.CodeSent) codeSentResult {
	return codeSentResult{SentTo: c.To, Channel: string(c.Channel), ExpireAt: c.ExpiresAt.Format(time.RFC3339),
		ResendAfter: c.ResendAfter.Format(time.RFC3339)}
}

// answerSession answers with a started session: tokens, or the cookie.
func (s *Server) answerSession(w http.ResponseWriter, iss app.Issued) {
	httpx.NoStore(w)
	if iss.Kind == domain.SessionKindCookie {
		httpx.SetSessionCookie(w, s.cfg, iss)
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]any{}})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": tokenResultOf(iss)})
}

type emptyRequest struct{}

// verificationStart is POST /api/verification/start (and /resend): a code
// to the signed-in user's email or phone login ID.
func (s *Server) verificationStart(resend bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := s.signedIn(w, r, &emptyRequest{})
		if !ok {
			return
		}
		sent, err := s.Service.StartVerification(r.Context(), p, resend, s.CodeRequest(r))
		if err != nil {
			s.WriteAPIError(w, r, err)
			return
		}
		httpx.NoStore(w)
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": codeSentOf(sent)})
	}
}

type codeRequestBody struct {
	Code string `json:"code"`
}

// verificationVerify is POST /api/verification/verify {"code"}.
func (s *Server) verificationVerify(w http.ResponseWriter, r *http.Request) {
	var req codeRequestBody
	p, ok := s.signedIn(w, r, &req)
	if !ok {
		return
	}
	u, err := s.Service.CompleteVerification(r.Context(), p, req.Code, s.CodeRequest(r))
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]any{"is_verified": u.IsVerified()}})
}

type promoteByCodeRequest struct {
	LoginIDType string `json:"login_id_type,omitempty"`
	LoginID     string `json:"login_id"`
	// Password is optional: without one the promotion is passwordless
	// (the login ID type must offer oob_otp).
	Password string `json:"password,omitempty"`
	Code     string `json:"code,omitempty"`
}

// promoteByCodeStart is POST /api/anonymous_user/promote/start: the
// promotion is decided and a code goes to the login ID; nothing is
// written until /verify. A merge (conflict policy "login", the account's
// password) answers with the account's session at once.
func (s *Server) promoteByCodeStart(w http.ResponseWriter, r *http.Request) {
	var req promoteByCodeRequest
	p, id, ok := s.guestRequest(w, r, &req)
	if !ok {
		return
	}
	if req.Code != "" {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "code belongs to /api/anonymous_user/promote/verify"))
		return
	}
	cr := s.CodeRequest(r)
	st, err := s.Service.StartPromotionByCode(r.Context(), app.PromotionByCode{Locale: cr.Locale, PromoteInput: app.PromoteInput{
		UserID: p.User.UserID(), OldSessionID: p.Session.SessionID(), LoginID: id, Password: req.Password, IP: cr.IP, Meta: cr.Meta,
		NewSession: &app.NewSession{ClientID: p.Session.ClientID(), Kind: p.Session.Kind(), Method: domain.MethodPromotion, DPoPJKT: p.Session.DPoPKey()}}})
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if st.Merged != nil {
		s.answerSession(w, *st.Merged)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": codeSentOf(st.Sent)})
}

// promoteByCodeResend is POST /api/anonymous_user/promote/resend.
func (s *Server) promoteByCodeResend(w http.ResponseWriter, r *http.Request) {
	var req promoteByCodeRequest
	p, id, ok := s.guestRequest(w, r, &req)
	if !ok {
		return
	}
	sent, err := s.Service.ResendPromotionCode(r.Context(), p.User.UserID(), id, s.CodeRequest(r))
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": codeSentOf(sent)})
}

// promoteByCodeVerify is POST /api/anonymous_user/promote/verify
// {"login_id","code"}: the promotion, its verification and the new session
// in one append, answered as /api/anonymous_user/promote answers.
func (s *Server) promoteByCodeVerify(w http.ResponseWriter, r *http.Request) {
	var req promoteByCodeRequest
	p, id, ok := s.guestRequest(w, r, &req)
	if !ok {
		return
	}
	if !p.User.IsAnonymous() {
		s.WriteAPIError(w, r, domain.ErrNotAnonymous)
		return
	}
	iss, err := s.Service.CompletePromotionByCode(r.Context(), p.User.UserID(), p.Session.SessionID(), id, req.Code,
		&app.NewSession{ClientID: p.Session.ClientID(), Kind: p.Session.Kind(), Method: domain.MethodPromotion, DPoPJKT: p.Session.DPoPKey()}, s.CodeRequest(r))
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	s.answerSession(w, iss)
}

// guestRequest decodes a code request of the signed-in guest (or user) and
// its login ID; on failure it has answered.
func (s *Server) guestRequest(w http.ResponseWriter, r *http.Request, req *promoteByCodeRequest) (app.Principal, loginid.ID, bool) {
	p, ok := s.signedIn(w, r, req)
	if !ok {
		return app.Principal{}, loginid.ID{}, false
	}
	id, err := s.Service.ParseLoginID(req.LoginIDType, req.LoginID)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return app.Principal{}, loginid.ID{}, false
	}
	return p, id, true
}

type codeSignInRequest struct {
	ClientID    string `json:"client_id"`
	LoginIDType string `json:"login_id_type,omitempty"`
	LoginID     string `json:"login_id"`
	Code        string `json:"code,omitempty"`
	SessionType string `json:"session_type,omitempty"`
	NewPassword string `json:"new_password,omitempty"`
}

// anonymousAnswer is what the flows that start from a login ID alone
// answer, whether anybody holds it or not.
type anonymousAnswer struct {
	ExpireAt    string `json:"expire_at"`
	ResendAfter string `json:"resend_after"`
}

// codeSignInStart is POST /api/signin/code/start (and /resend): a sign-in
// code to the login ID, the same answer whether anybody holds it.
func (s *Server) codeSignInStart(w http.ResponseWriter, r *http.Request) {
	var req codeSignInRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	s.anonymousCodeStart(w, r, req, s.Service.StartCodeSignIn)
}

// passwordForgot is POST /api/password/forgot: a reset code to the login
// ID, the same answer whether anybody holds it.
func (s *Server) passwordForgot(w http.ResponseWriter, r *http.Request) {
	var req codeSignInRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	s.anonymousCodeStart(w, r, req, s.Service.StartPasswordReset)
}

func (s *Server) anonymousCodeStart(w http.ResponseWriter, r *http.Request, req codeSignInRequest,
	start func(ctx context.Context, clientID string, id loginid.ID, cr app.CodeRequest) (app.CodeSent, error)) {
	if req.ClientID == "" || req.Code != "" || req.SessionType != "" || req.NewPassword != "" {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "give client_id and login_id (and login_id_type) only"))
		return
	}
	id, err := s.Service.ParseLoginID(req.LoginIDType, req.LoginID)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	sent, err := start(r.Context(), req.ClientID, id, s.CodeRequest(r))
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": anonymousAnswer{ExpireAt: sent.ExpiresAt.Format(time.RFC3339),
		ResendAfter: sent.ResendAfter.Format(time.RFC3339)}})
}

// codeSignInVerify is POST /api/signin/code/verify: the code and a new
// session of session_type, answered as sign-up answers.
func (s *Server) codeSignInVerify(w http.ResponseWriter, r *http.Request) {
	var req codeSignInRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	kind := domain.SessionKind(req.SessionType)
	if req.ClientID == "" || !kind.Valid() || req.NewPassword != "" {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", `give client_id, login_id, code and session_type ("cookie" or "refresh_token")`))
		return
	}
	id, err := s.Service.ParseLoginID(req.LoginIDType, req.LoginID)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	iss, err := s.Service.CompleteCodeSignIn(r.Context(), req.ClientID, id, req.Code, app.NewSession{Kind: kind}, s.CodeRequest(r))
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	s.answerSession(w, iss)
}

// passwordReset is POST /api/password/reset {"client_id","login_id",
// "code","new_password"}: every session of the user ends.
func (s *Server) passwordReset(w http.ResponseWriter, r *http.Request) {
	var req codeSignInRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if req.ClientID == "" || req.SessionType != "" {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "give client_id, login_id, code and new_password"))
		return
	}
	id, err := s.Service.ParseLoginID(req.LoginIDType, req.LoginID)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if err := s.Service.CompletePasswordReset(r.Context(), req.ClientID, id, req.Code, req.NewPassword, s.CodeRequest(r)); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]any{}})
}
