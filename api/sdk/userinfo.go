package sdk

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/idstream/idstream/api/httpx"
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
	httpx.NoStore(w)
	var (
		p   app.Principal
		err error
	)
	if at, dpop := httpx.AccessToken(r); at != "" {
		p, err = s.Service.AuthenticateAccess(r.Context(), app.AccessRequest{Token: at, DPoPScheme: dpop, DPoP: s.dpopRequest(r)})
	} else if c, cerr := r.Cookie(s.cfg.Cookie.Name); cerr == nil && c.Value != "" {
		p, err = s.Service.AuthenticateCookie(r.Context(), c.Value)
	} else {
		err = httpx.ErrMissingToken
	}
	if err != nil {
		e := httpx.Classify(err)
		if e.Status < 500 {
			// RFC 6750: an unusable token is 401 invalid_token; RFC 9449
			// §7.1: a bad or missing proof for a bound token is 401
			// invalid_dpop_proof, with the DPoP challenge.
			oauth, challenge := "invalid_token", `Bearer error="invalid_token"`
			if e.OAuth == "invalid_dpop_proof" {
				oauth = e.OAuth
				challenge = `DPoP error="invalid_dpop_proof", algs="` + strings.Join(dpopAlgorithms(), " ") + `"`
			}
			e = (&httpx.Error{Status: http.StatusUnauthorized, Name: e.Name, Reason: e.Reason, Message: e.Message, OAuth: oauth}).WithCause(err)
			s.LogError(r, e)
			w.Header().Set("WWW-Authenticate", challenge)
			httpx.WriteJSON(w, e.Status, map[string]string{"error": e.OAuth, "error_description": e.Message, "reason": e.Reason})
			return
		}
		s.WriteOAuthError(w, r, err)
		return
	}
	u := p.User
	out := map[string]any{
		"sub":          u.UserID(),
		"is_anonymous": u.IsAnonymous(),
		"is_verified":  false,
		"updated_at":   u.CreatedAt().Unix(),
	}
	// The Authgear claims and, by the session's scope, email, phone_number
	// and preferred_username: the ID token's rule (app.UserClaims).
	raw, _ := json.Marshal(app.UserClaims(u, p.Session))
	_ = json.Unmarshal(raw, &out)
	httpx.WriteJSON(w, http.StatusOK, out)
}
