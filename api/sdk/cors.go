package sdk

import (
	"net/http"
	"strings"
)

// corsEndpoints are the non-/api paths the Authgear SDKs call with fetch
// from an application's origin.
var corsEndpoints = map[string]bool{
	"/oauth2/token": true, "/oauth2/userinfo": true, "/oauth2/revoke": true, "/oauth2/challenge": true,
	"/.well-known/openid-configuration": true, "/oauth2/jwks": true,
}

// corsPath reports whether CORS applies to the path: only the endpoints the
// SDKs call. The portal, hosted pages, admin API, docs and metrics never
// answer CORS, so no page on a client's origin can read them (and their
// CSRF tokens) with the visitor's cookies.
func corsPath(path string) bool {
	return strings.HasPrefix(path, "/api/") || corsEndpoints[path]
}

// CORS answers preflights and sets CORS headers for origins some client
// allows, on the SDK endpoints only; it reports whether the request was
// fully answered.
func (s *Server) CORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !corsPath(r.URL.Path) {
		return false
	}
	w.Header().Add("Vary", "Origin")
	allowed := false
	for _, cl := range s.Service.Settings().Clients {
		if cl.AllowsOrigin(origin) {
			allowed = true
			break
		}
	}
	if !allowed {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		methods := "GET, POST, OPTIONS"
		if strings.HasPrefix(r.URL.Path, "/api/external_identities/") {
			methods = "GET, POST, DELETE, OPTIONS" // unlinking (external.go)
		}
		h.Set("Access-Control-Allow-Methods", methods)
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, DPoP, Idempotency-Key, X-Request-Id")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	h.Set("Access-Control-Expose-Headers", "X-Request-Id, DPoP-Nonce, WWW-Authenticate")
	return false
}
