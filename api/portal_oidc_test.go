package api_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/idstream/idstream/testenv"
)

var (
	shownSecret = regexp.MustCompile(`id="client_secret" value="([^"]+)"`)
	revokeForm  = regexp.MustCompile(`action="(/portal/applications/server-app/secrets/[^"]+/revoke)"`)
)

// TestPortalConfidentialClient: an operator makes a confidential client in
// the portal, creates its secret (shown once), which then authenticates at
// introspection; editing the application keeps its method and post-logout
// URIs; revoking the secret in the portal stops it.
func TestPortalConfidentialClient(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: withOperator})
	p, c := portalClient(t, n), newClient(t, n)
	if r := p.save("/portal/applications/new", map[string]string{"client_id": "server-app", "name": "Server app",
		"session_type": "refresh_token", "redirect_uris": "https://app.example.com/cb", "token_endpoint_auth_method": "client_secret_jwt"}); r.status != 400 ||
		!strings.Contains(r.raw, "client_secret_basic") {
		t.Fatalf("an unsupported method: %d %s", r.status, r.raw)
	}
	if r := p.save("/portal/applications/new", map[string]string{"client_id": "server-app", "name": "Server app",
		"session_type": "refresh_token", "redirect_uris": "https://app.example.com/cb", "token_endpoint_auth_method": "client_secret_basic",
		"post_logout_redirect_uris": "https://app.example.com/bye"}); r.status != 303 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	page := p.get("/portal/applications/server-app")
	f := formOf(t, page)
	if f.Get("token_endpoint_auth_method") != "client_secret_basic" || f.Get("post_logout_redirect_uris") != "https://app.example.com/bye" ||
		!strings.Contains(page.raw, "No secrets.") {
		t.Fatalf("application page: %v", f)
	}
	r := p.postForm("/portal/applications/server-app/secrets", url.Values{"csrf_token": {f.Get("csrf_token")}, "overlap": {"1h"}})
	m := shownSecret.FindStringSubmatch(r.raw)
	if r.status != 200 || m == nil {
		t.Fatalf("new secret: %d %s", r.status, r.raw)
	}
	secret := html.UnescapeString(m[1])
	testenv.RecordSecret("client secret", secret)
	introspect := func() int {
		return c.do(http.MethodPost, "/oauth2/introspect", "application/x-www-form-urlencoded", "token=x",
			map[string]string{"Authorization": "Basic " + basicAuth("server-app", secret)}).status
	}
	if st := introspect(); st != 200 {
		t.Fatalf("the portal's secret at introspection: %d", st)
	}
	// The secret is not on the application page, only its id.
	page = p.get("/portal/applications/server-app")
	if strings.Contains(page.raw, secret) || !strings.Contains(page.raw, "Active") {
		t.Fatalf("secrets table: %s", page.raw)
	}
	if r := p.save("/portal/applications/server-app", map[string]string{"name": "Server app 2"}); r.status != 303 {
		t.Fatalf("edit: %d %s", r.status, r.raw)
	}
	if f := formOf(t, p.get("/portal/applications/server-app")); f.Get("token_endpoint_auth_method") != "client_secret_basic" ||
		f.Get("post_logout_redirect_uris") != "https://app.example.com/bye" {
		t.Fatalf("an edit lost the OpenID settings: %v", f)
	}
	rv := revokeForm.FindStringSubmatch(page.raw)
	if rv == nil {
		t.Fatalf("no revoke form: %s", page.raw)
	}
	if r := p.postForm(rv[1], url.Values{"csrf_token": {f.Get("csrf_token")}}); r.status != 303 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if st := introspect(); st != 401 {
		t.Fatalf("a revoked secret at introspection: %d", st)
	}
}
