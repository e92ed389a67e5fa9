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
}

func tokenResultOf(iss app.Issued) tokenResult {
	return tokenResult{TokenType: "Bearer", AccessToken: iss.AccessToken, ExpiresIn: int(iss.ExpiresIn / time.Second), RefreshToken: iss.SessionToken}
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
	ctx := r.Context()
	noStore(w)

	// A guest that already has a session gets it back, as Authgear does: in
	// cookie mode nothing changes; in token mode a fresh access token.
	if p, ok, err := s.existingPrincipal(r, kind); err != nil {
		s.writeAPIError(w, r, err)
		return
	} else if ok {
		if !p.User.IsAnonymous() {
			s.writeAPIError(w, r, newError(400, "Invalid", "NotAnonymous", "invalid_request", "the signed-in user is not anonymous"))
			return
		}
		if kind == domain.SessionKindCookie {
			writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{}})
			return
		}
		iss, err := s.Service.AccessTokenFor(ctx, p)
		if err != nil {
			s.writeAPIError(w, r, err)
			return
		}
		iss.SessionToken = ""
		writeJSON(w, http.StatusOK, map[string]any{"result": tokenResultOf(iss)})
		return
	}

	if err := s.Service.AllowAnonymousSignup(ctx, s.clientIP(r)); err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	iss, err := s.Service.SignUpAnonymous(ctx, app.SignUpAnonymous{
		ClientID: req.ClientID, Kind: kind, IdempotencyKey: r.Header.Get("Idempotency-Key"), Meta: meta(r),
	})
	if err != nil {
		s.writeAPIError(w, r, err)
		return
	}
	if kind == domain.SessionKindCookie {
		s.setSessionCookie(w, iss)
		writeJSON(w, http.StatusOK, map[string]any{"result": map[string]any{}})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"result": tokenResultOf(iss)})
}

// existingPrincipal finds the session a sign-up request already carries: a
// bearer token in token mode, the cookie in cookie mode. A cookie that no
// longer works is ignored (a new guest is made); a bad bearer is an error.
func (s *Server) existingPrincipal(r *http.Request, kind domain.SessionKind) (app.Principal, bool, error) {
	if kind == domain.SessionKindRefreshToken {
		at := bearer(r)
		if at == "" {
			return app.Principal{}, false, nil
		}
		p, err := s.Service.AuthenticateBearer(r.Context(), at)
		return p, err == nil, err
	}
	c, err := r.Cookie(s.cfg.Cookie.Name)
	if err != nil || c.Value == "" {
		return app.Principal{}, false, nil
	}
	p, err := s.Service.AuthenticateCookie(r.Context(), c.Value)
	if err != nil {
		var e *Error
		if e = classify(err); e.Status >= 500 {
			return app.Principal{}, false, err
		}
		return app.Principal{}, false, nil
	}
	return p, true, nil
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
