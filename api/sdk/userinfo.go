package sdk

import (
	"encoding/json"
	"net/http"

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
	p, err := s.principal(r)
	if err != nil {
		s.WriteResourceError(w, r, err, dpopAlgorithms())
		return
	}
	if r.Header.Get("DPoP") != "" && s.Service.NonceRequired(p.Session.ClientID()) {
		// The nonce to sign the next proof with (RFC 9449 §9).
		w.Header().Set("DPoP-Nonce", s.Service.DPoPNonce(r.Context()))
	}
	u := p.User
	out := map[string]any{
		"sub":          u.UserID(),
		"is_anonymous": u.IsAnonymous(),
		"is_verified":  u.IsVerified(),
		"updated_at":   u.CreatedAt().Unix(),
	}
	// The Authgear claims and, by the session's scope, email, phone_number
	// and preferred_username: the ID token's rule (app.UserClaims).
	raw, _ := json.Marshal(app.UserClaims(u, p.Session))
	_ = json.Unmarshal(raw, &out)
	httpx.WriteJSON(w, http.StatusOK, out)
}
