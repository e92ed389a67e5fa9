package sdk

import (
	"net/http"
	"net/url"
	"time"

	"github.com/idstream/idstream/api/httpx"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
)

// dpopRequest is what the request says about DPoP: its DPoP header and the
// public URL it was sent to (the proof's htu is the URL the client called,
// this service's public URL, whatever proxies are in between).
func (s *Server) dpopRequest(r *http.Request) app.DPoPRequest {
	proofs := r.Header.Values("DPoP")
	d := app.DPoPRequest{Method: r.Method, URL: s.cfg.PublicURL + r.URL.EscapedPath(), Several: len(proofs) > 1}
	if len(proofs) == 1 {
		d.Proof = proofs[0]
	}
	return d
}

// nonceRequired reports whether a client the token request names must send
// DPoP nonces. It fails closed: any client the request names (the form's
// client_id, the HTTP Basic user), whether or not its authentication is
// valid, since a grant may go by the form's client_id alone.
func (s *Server) nonceRequired(r *http.Request, form url.Values) bool {
	ids := []string{form.Get("client_id")}
	if user, _, ok := r.BasicAuth(); ok {
		ids = append(ids, user)
		if id, err := url.QueryUnescape(user); err == nil {
			ids = append(ids, id)
		}
	}
	for _, id := range ids {
		if id != "" && s.Service.NonceRequired(id) {
			return true
		}
	}
	return false
}

// grantAnonymousRequest is Authgear's key-pair grant.
const grantAnonymousRequest = "urn:authgear:params:oauth:grant-type:anonymous-request"

// token is the OAuth token endpoint. Grants: authorization_code,
// refresh_token (both authenticate the client by its
// token_endpoint_auth_method) and the anonymous-request (key-pair) grant.
// A session granted openid gets an ID token with each answer.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	httpx.NoStore(w)
	form, err := httpx.ParseForm(r)
	if err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	// A DPoP proof (the mobile SDKs send one on every request) binds what
	// is issued to its key; a bad one is refused before anything else, and
	// its jti is spent once the grant's credential has checked out
	// (app.Sessions.CheckDPoP). A client that must send server-provided
	// nonces gets the current one with every answer, refusals included
	// (RFC 9449 §8).
	m := httpx.Meta(r)
	dr := s.dpopRequest(r)
	if s.nonceRequired(r, form) {
		dr.NonceRequired = true
		w.Header().Set("DPoP-Nonce", s.Service.DPoPNonce(r.Context()))
	}
	// The key-pair grant is a public client's (the SDKs send client_id
	// alone): credentials beside it are refused, not ignored, before the
	// proof's jti is spent.
	if form.Get("grant_type") == grantAnonymousRequest {
		if _, method, _, err := clientCredentials(r, form); err != nil && form.Get("client_id") != "" {
			s.WriteOAuthError(w, r, err)
			return
		} else if err == nil && method != domain.AuthMethodNone {
			s.WriteOAuthError(w, r, app.ErrConfidentialClient)
			return
		}
	}
	if m, err = s.Service.CheckDPoP(r.Context(), dr, m); err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	// answer sends a grant's tokens once the proof is spent: by the grant's
	// first append, or here for a grant that wrote nothing (or was refused
	// other than for its credential).
	answer := func(iss app.Issued, err error) {
		if err = s.Service.SettleProof(r.Context(), m, err); err != nil {
			s.WriteOAuthError(w, r, err)
			return
		}
		httpx.WriteJSON(w, http.StatusOK, tokenResultOf(iss))
	}
	switch form.Get("grant_type") {
	case "refresh_token":
		rt := form.Get("refresh_token")
		if rt == "" {
			s.WriteOAuthError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "client_id and refresh_token are required"))
			return
		}
		cl, err := s.authenticateClient(r, form)
		if err != nil {
			s.WriteOAuthError(w, r, err)
			return
		}
		answer(s.Service.Refresh(r.Context(), cl.ClientID, rt, m))
	case "authorization_code":
		cl, err := s.authenticateClient(r, form)
		if err != nil {
			s.WriteOAuthError(w, r, err)
			return
		}
		answer(s.Service.ExchangeAuthorizationCode(r.Context(), cl.ClientID, form.Get("code"),
			form.Get("redirect_uri"), form.Get("code_verifier"), form.Get("x_device_info"), m))
	case grantAnonymousRequest:
		if form.Get("client_id") == "" || form.Get("jwt") == "" {
			s.WriteOAuthError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "client_id and jwt are required"))
			return
		}
		answer(s.Service.SignInWithKey(r.Context(), form.Get("client_id"), form.Get("jwt"), form.Get("x_device_info"), m))
	case "":
		s.WriteOAuthError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "grant_type is required"))
	default:
		s.WriteOAuthError(w, r, httpx.BadRequest("UnsupportedGrantType", "unsupported_grant_type", "this grant type is not supported"))
	}
}

type challengeRequest struct {
	Purpose string `json:"purpose"`
}

// challenge issues a single-use challenge for the key-pair protocol.
func (s *Server) challenge(w http.ResponseWriter, r *http.Request) {
	var req challengeRequest
	if err := httpx.DecodeJSON(r, &req); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	if err := s.Service.AllowChallenge(r.Context(), s.ClientIP(r)); err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	token, exp, err := s.Service.IssueChallenge(r.Context(), req.Purpose)
	if err != nil {
		s.WriteAPIError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"result": map[string]string{"token": token, "expire_at": exp.Format(time.RFC3339)}})
}

// revoke is RFC 7009 token revocation: a refresh token (or session cookie
// value) ends its session; a confidential client's only when the request
// authenticated as that client. The answer is 200 whatever the token was.
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	form, err := httpx.ParseForm(r)
	if err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	tok := form.Get("token")
	if tok == "" {
		s.WriteOAuthError(w, r, httpx.BadRequest("InvalidRequest", "invalid_request", "token is required"))
		return
	}
	// A confidential client authenticates (RFC 7009 §2.1); a public one
	// need not.
	var caller *domain.ClientSettings
	if _, _, basic := r.BasicAuth(); basic || form.Get("client_secret") != "" {
		cl, err := s.authenticateClient(r, form)
		if err != nil {
			s.WriteOAuthError(w, r, err)
			return
		}
		caller = &cl
	}
	if err := s.Service.RevokeClientToken(r.Context(), caller, tok, httpx.Meta(r)); err != nil {
		s.WriteOAuthError(w, r, err)
		return
	}
	httpx.NoStore(w)
	httpx.WriteJSON(w, http.StatusOK, map[string]any{})
}
