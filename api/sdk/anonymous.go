package sdk

import (
	"net/http"
	"time"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
)

type signupRequest struct {
	ClientID     string `json:"client_id"`
	SessionType  string `json:"session_type"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

type tokenResult struct {
	TokenType    string `json:"token_type"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

func tokenResultOf(iss app.Issued) tokenResult {
	typ := "Bearer"
	if iss.DPoPBound {
		// RFC 9449 §5: a DPoP-bound access token (cnf.jkt).
		typ = "DPoP"
	}
	return tokenResult{TokenType: typ, AccessToken: iss.AccessToken, ExpiresIn: int(iss.ExpiresIn / time.Second), RefreshToken: iss.SessionToken,
		IDToken: iss.IDToken}
}

// anonymousSignup is POST /api/anonymous_user/signup, as the Authgear SDK's
// authenticateAnonymously() calls it.
func (s *Server) anonymousSignup(w http.ResponseWriter, r *http.Request) {
	var req signupRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if req.ClientID == "" {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "client_id is required"))
		return
	}
	kind := domain.SessionKind(req.SessionType)
	if !kind.Valid() {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", `session_type must be "cookie" or "refresh_token"`))
		return
	}
	if len(r.Header.Get("Idempotency-Key")) > 255 {
		s.WriteAPIError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "Idempotency-Key is longer than 255 characters"))
		return
	}
	httpx.NoStore(w)
	c := app.SignUpOrResume{SignUpAnonymous: app.SignUpAnonymous{ClientID: req.ClientID, Kind: kind,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Meta: httpx.Meta(r)}, IP: s.ClientIP(r)}
	if kind == domain.SessionKindRefreshToken {
		c.Bearer = httpx.Bearer(r)
	} else if ck, err := r.Cookie(s.cfg.Cookie.Name); err == nil {
		c.Cookie = ck.Value
	}
	iss, resumed, err := s.Service.SignUpOrResume(r.Context(), c)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if kind == domain.SessionKindCookie {
		if !resumed {
			httpx.SetSessionCookie(w, s.cfg, iss)
		}
		httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]any{}})
		return
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": tokenResultOf(iss)})
}
