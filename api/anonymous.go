package api

import (
	"net/http"
	"time"

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
	return tokenResult{TokenType: "Bearer", AccessToken: iss.AccessToken, ExpiresIn: int(iss.ExpiresIn / time.Second), RefreshToken: iss.SessionToken,
		IDToken: iss.IDToken}
}

// anonymousSignup is POST /api/anonymous_user/signup, as the Authgear SDK's
// authenticateAnonymously() calls it.
func (s *Server) anonymousSignup(w http.ResponseWriter, r *http.Request) {
	var req signupRequest
	if err := decodeJSON(r, &req); err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	if req.ClientID == "" {
		s.writeAPIError(w, r, badRequest("InvalidRequest", "invalid_request", "client_id is required"))
		return
	}
	kind := domain.SessionKind(req.SessionType)
	if !kind.Valid() {
		s.writeAPIError(w, r, badRequest("InvalidRequest", "invalid_request", `session_type must be "cookie" or "refresh_token"`))
		return
	}
	if len(r.Header.Get("Idempotency-Key")) > 255 {
		s.writeAPIError(w, r, badRequest("InvalidRequest", "invalid_request", "Idempotency-Key is longer than 255 characters"))
		return
	}
	noStore(w)
	c := app.SignUpOrResume{SignUpAnonymous: app.SignUpAnonymous{ClientID: req.ClientID, Kind: kind,
		IdempotencyKey: r.Header.Get("Idempotency-Key"), Meta: meta(r)}, IP: s.clientIP(r)}
	if kind == domain.SessionKindRefreshToken {
		c.Bearer = bearer(r)
	} else if ck, err := r.Cookie(s.cfg.Cookie.Name); err == nil {
		c.Cookie = ck.Value
	}
	iss, resumed, err := s.Service.SignUpOrResume(r.Context(), c)
	if err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	if kind == domain.SessionKindCookie {
		if !resumed {
			s.setSessionCookie(w, iss)
		}
		writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": tokenResultOf(iss)})
}

// setSessionCookie sets the session cookie: HttpOnly, SameSite=Lax, Secure
// unless configured off for plain-http development.
func (s *Server) setSessionCookie(w http.ResponseWriter, iss app.Issued) {
	http.SetCookie(w, &http.Cookie{
		Name:     s.cfg.Cookie.Name,
		Value:    iss.SessionToken,
		Path:     "/",
		HttpOnly: true,
		Secure:   *s.cfg.Cookie.Secure,
		SameSite: http.SameSiteLaxMode,
		Expires:  iss.SessionExpiresAt,
	})
}

func (s *Server) clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: s.cfg.Cookie.Name, Value: "", Path: "/", HttpOnly: true, Secure: *s.cfg.Cookie.Secure,
		SameSite: http.SameSiteLaxMode, MaxAge: -1,
	})
}
