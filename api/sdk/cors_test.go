package sdk_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/idstream/idstream/api/apitest"
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
		apitest.WithOperator(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
	}})
	c := apitest.PortalClient(t, n)
	const origin = "http://localhost:5173"
	preflight := func(path, method string) apitest.Response {
		return c.Do(http.MethodOptions, path, "", "", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type,authorization"})
	}
	withOrigin := map[string]string{"Origin": origin}

	for _, path := range []string{"/api/anonymous_user/signup", "/api/anonymous_user/promotion_code", "/api/anonymous_user/promote",
		"/oauth2/token", "/oauth2/userinfo", "/oauth2/revoke", "/oauth2/challenge", "/.well-known/openid-configuration", "/oauth2/jwks"} {
		r := preflight(path, http.MethodPost)
		if r.Status != 204 || r.Header.Get("Access-Control-Allow-Origin") != origin || r.Header.Get("Access-Control-Allow-Credentials") != "true" {
			t.Errorf("SDK endpoint %s: preflight %d %v", path, r.Status, r.Header)
		}
	}
	for _, path := range []string{"/.well-known/openid-configuration", "/oauth2/jwks", "/oauth2/userinfo"} {
		if r := c.Do(http.MethodGet, path, "", "", withOrigin); r.Header.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("SDK endpoint GET %s: %d %v", path, r.Status, r.Header)
		}
	}
	if r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, withOrigin); r.Status != 200 || r.Header.Get("Access-Control-Allow-Origin") != origin {
		t.Errorf("sign-up with an Origin: %d %v", r.Status, r.Header)
	}

	// The portal answers its signed-in operator, but never with CORS.
	if r := c.Do(http.MethodGet, "/portal/operations", "", "", withOrigin); r.Status != 200 || len(corsHeaders(r.Header)) > 0 {
		t.Errorf("portal page: %d %v", r.Status, corsHeaders(r.Header))
	}
	if r := c.Do(http.MethodGet, "/admin/users", "", "", map[string]string{"Origin": origin, "Authorization": "Bearer " + apitest.AdminKey}); r.Status != 200 ||
		len(corsHeaders(r.Header)) > 0 {
		t.Errorf("admin API: %d %v", r.Status, corsHeaders(r.Header))
	}
	for _, path := range []string{"/portal", "/portal/operations", "/portal/signin", "/portal/applications", "/admin/users", "/admin/projections",
		"/admin/users/export", "/oauth2/authorize", "/oauth2/end_session", "/flows/abc", "/docs", "/openapi.json", "/metrics",
		"/healthz", "/readyz", "/static/idstream.css", "/nope"} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if r := preflight(path, m); len(corsHeaders(r.Header)) > 0 || r.Status == 204 {
				t.Errorf("preflight %s %s: %d %v", m, path, r.Status, corsHeaders(r.Header))
			}
		}
		if r := c.Do(http.MethodGet, path, "", "", withOrigin); len(corsHeaders(r.Header)) > 0 {
			t.Errorf("GET %s: %d %v", path, r.Status, corsHeaders(r.Header))
		}
	}
}
