package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// corsHeaders lists the Access-Control-* headers of an answer.
func corsHeaders(h http.Header) []string {
	var out []string
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "access-control-") {
			out = append(out, k+": "+h.Get(k))
		}
	}
	return out
}

// TestCORSOnlyOnSDKEndpoints: an origin a client allows (any localhost page
// in development mode) gets CORS on the endpoints the SDKs call, and none on
// the portal, the hosted pages, the admin API, docs and metrics, so such a
// page cannot read them (or their CSRF tokens) with the visitor's cookies.
func TestCORSOnlyOnSDKEndpoints(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		withOperator(c)
		c.AdminAPIKeys = []string{adminKey}
	}})
	c := portalClient(t, n)
	const origin = "http://localhost:5173"
	preflight := func(path, method string) response {
		return c.do(http.MethodOptions, path, "", "", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type,authorization"})
	}
	withOrigin := map[string]string{"Origin": origin}

	for _, path := range []string{"/api/anonymous_user/signup", "/api/anonymous_user/promotion_code", "/api/anonymous_user/promote",
		"/oauth2/token", "/oauth2/userinfo", "/oauth2/revoke", "/oauth2/challenge", "/.well-known/openid-configuration", "/oauth2/jwks"} {
		r := preflight(path, http.MethodPost)
		if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != origin || r.header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("SDK endpoint %s: preflight %d %v", path, r.status, r.header)
		}
	}
	for _, path := range []string{"/.well-known/openid-configuration", "/oauth2/jwks", "/oauth2/userinfo"} {
		if r := c.do(http.MethodGet, path, "", "", withOrigin); r.header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("SDK endpoint GET %s: %d %v", path, r.status, r.header)
		}
	}
	if r := c.postJSON("/api/anonymous_user/signup", tokenSignup, withOrigin); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("sign-up with an Origin: %d %v", r.status, r.header)
	}

	// The portal answers its signed-in operator, but never with CORS.
	if r := c.do(http.MethodGet, "/portal/operations", "", "", withOrigin); r.status != 200 || len(corsHeaders(r.header)) > 0 {
		t.Errorf("portal page: %d %v", r.status, corsHeaders(r.header))
	}
	if r := c.do(http.MethodGet, "/admin/users", "", "", map[string]string{"Origin": origin, "Authorization": "Bearer " + adminKey}); r.status != 200 ||
		len(corsHeaders(r.header)) > 0 {
		t.Errorf("admin API: %d %v", r.status, corsHeaders(r.header))
	}
	for _, path := range []string{"/portal", "/portal/operations", "/portal/signin", "/portal/applications", "/admin/users", "/admin/projections",
		"/admin/users/export", "/oauth2/authorize", "/oauth2/end_session", "/flows/abc", "/docs", "/openapi.json", "/metrics",
		"/healthz", "/readyz", "/static/idstream.css", "/nope"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if r := preflight(path, m); len(corsHeaders(r.header)) > 0 || r.status == 204 {
				t.Errorf("preflight %s %s: %d %v", m, path, r.status, corsHeaders(r.header))
			}
		}
		if r := c.do(http.MethodGet, path, "", "", withOrigin); len(corsHeaders(r.header)) > 0 {
			t.Errorf("GET %s: %d %v", path, r.status, corsHeaders(r.header))
		}
	}
}
