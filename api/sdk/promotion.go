package sdk

import (
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
)

type sessionRequest struct {
	SessionType  string `json:"session_type"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// principal finds who a JSON API request acts for: the bearer access token,
// else the session cookie.
func (s *Server) principal(r *http.Request) (app.Principal, error) {
	if at, dpop := httpx.AccessToken(r); at != "" {
		return s.Service.AuthenticateAccess(r.Context(), app.AccessRequest{Token: at, DPoPScheme: dpop, DPoP: s.dpopRequest(r)})
	}
	if c, err := r.Cookie(s.cfg.Cookie.Name); err == nil && c.Value != "" {
		return s.Service.AuthenticateCookie(r.Context(), c.Value)
	}
	return app.Principal{}, httpx.ErrMissingToken
}

// signedIn decodes a JSON API request's body into req and finds who it acts
// for (principal); on failure it has answered.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, req any) (app.Principal, bool) {
	if err := httpx.DecodeJSON(r, req); err != nil {
		s.WriteAPIError(w, r, err)
		return app.Principal{}, false
	}
	p, err := s.principal(r)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return app.Principal{}, false
	}
	return p, true
}

// promotionCode is POST /api/anonymous_user/promotion_code, as the SDK's
// startPromoteAnonymousUser() calls it.
func (s *Server) promotionCode(w http.ResponseWriter, r *http.Request) {
	var req sessionRequest
	p, ok := s.signedIn(w, r, &req)
	if !ok {
		return
	}
	// Each code is an entry in the codes bucket for its lifetime, and
	// leads to a hosted flow: under the flows' limit per address.
	if err := s.Service.AllowAuthorize(r.Context(), s.ClientIP(r)); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	code, exp, err := s.Service.IssuePromotionCode(r.Context(), p)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]string{"promotion_code": code, "expire_at": exp.Format(time.RFC3339)}})
}

type promoteRequest struct {
	LoginIDType string `json:"login_id_type,omitempty"`
	LoginID     string `json:"login_id"`
	Password    string `json:"password"`
}

// promote is the headless promotion for first-party apps that draw their own
// UI: POST /api/anonymous_user/promote with the guest's access token (or
// cookie) and {"login_id","password"}. The guest keeps its sub, its session
// is replaced by a regular one of the same kind, returned as from sign-up.
func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	var req promoteRequest
	p, ok := s.signedIn(w, r, &req)
	if !ok {
		return
	}
	iss, err := s.Service.PromoteGuestHeadless(r.Context(), app.PromoteGuest{Guest: p, LoginIDType: req.LoginIDType, LoginID: req.LoginID,
		Password: req.Password, IP: s.ClientIP(r), Meta: httpx.Meta(r)})
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	s.answerSession(w, iss)
}
