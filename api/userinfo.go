package api

import (
	"net/http"

	"github.com/idstream/idstream/app"
)

// Claim names the Authgear SDKs read.
const (
	claimIsAnonymous       = "https://authgear.com/claims/user/is_anonymous"
	claimIsVerified        = "https://authgear.com/claims/user/is_verified"
	claimCanReauthenticate = "https://authgear.com/claims/user/can_reauthenticate"
)

// userinfo answers with the signed-in user's claims, read from the log (not
// a projection), so it is right the moment a session starts.
func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	var (
		p   app.Principal
		err error
	)
	if at := bearer(r); at != "" {
		p, err = s.Service.AuthenticateBearer(r.Context(), at)
	} else if c, cerr := r.Cookie(s.cfg.Cookie.Name); cerr == nil && c.Value != "" {
		p, err = s.Service.AuthenticateCookie(r.Context(), c.Value)
	} else {
		err = errMissingToken
	}
	if err != nil {
		e := classify(err)
		if e.Status < 500 {
			// RFC 6750: an unusable token is 401 invalid_token.
			e = &Error{Status: http.StatusUnauthorized, Name: e.Name, Reason: e.Reason, Message: e.Message, OAuth: "invalid_token", cause: err}
			s.logError(r, e)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeJSON(w, e.Status, map[string]string{"error": e.OAuth, "error_description": e.Message, "reason": e.Reason})
			return
		}
		s.writeOAuthError(w, r, err)
		return
	}
	u := p.User
	claims := map[string]any{
		"sub":                  u.UserID(),
		"is_anonymous":         u.IsAnonymous(),
		"is_verified":          u.IsVerified(),
		claimIsAnonymous:       u.IsAnonymous(),
		claimIsVerified:        u.IsVerified(),
		claimCanReauthenticate: false,
		"updated_at":           u.CreatedAt().Unix(),
	}
	// OIDC's per-login-ID claims, for the kinds the user holds.
	for _, l := range u.LoginIDs() {
		switch l.Type {
		case "email":
			claims["email_verified"] = l.Verified
		case "phone":
			claims["phone_number_verified"] = l.Verified
		}
	}
	writeJSON(w, http.StatusOK, claims)
}
