package portal_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/idstream/idstream/api/apitest"

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
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.WithOperator})
	p, c := apitest.PortalClient(t, n), apitest.NewClient(t, n)
	if r := p.Save("/portal/applications/new", map[string]string{"client_id": "server-app", "name": "Server app",
		"session_type": "refresh_token", "redirect_uris": "https://app.example.com/cb", "token_endpoint_auth_method": "client_secret_jwt"}); r.Status != 400 ||
		!strings.Contains(r.Raw, "client_secret_basic") {
		t.Fatalf("an unsupported method: %d %s", r.Status, r.Raw)
	}
	if r := p.Save("/portal/applications/new", map[string]string{"client_id": "server-app", "name": "Server app",
		"session_type": "refresh_token", "redirect_uris": "https://app.example.com/cb", "token_endpoint_auth_method": "client_secret_basic",
		"post_logout_redirect_uris": "https://app.example.com/bye"}); r.Status != 303 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	page := p.Get("/portal/applications/server-app")
	f := apitest.FormOf(t, page)
	if f.Get("token_endpoint_auth_method") != "client_secret_basic" || f.Get("post_logout_redirect_uris") != "https://app.example.com/bye" ||
		!strings.Contains(page.Raw, "No secrets.") {
		t.Fatalf("application page: %v", f)
	}
	r := p.PostForm("/portal/applications/server-app/secrets", url.Values{"csrf_token": {f.Get("csrf_token")}, "overlap": {"1h"}})
	m := shownSecret.FindStringSubmatch(r.Raw)
	if r.Status != 200 || m == nil {
		t.Fatalf("new secret: %d %s", r.Status, r.Raw)
	}
	secret := html.UnescapeString(m[1])
	testenv.RecordSecret("client secret", secret)
	introspect := func() int {
		return c.Do(http.MethodPost, "/oauth2/introspect", "application/x-www-form-urlencoded", "token=x",
			map[string]string{"Authorization": "Basic " + apitest.BasicAuth("server-app", secret)}).Status
	}
	if st := introspect(); st != 200 {
		t.Fatalf("the portal's secret at introspection: %d", st)
	}
	// The secret is not on the application page, only its id.
	page = p.Get("/portal/applications/server-app")
	if strings.Contains(page.Raw, secret) || !strings.Contains(page.Raw, "Active") {
		t.Fatalf("secrets table: %s", page.Raw)
	}
	if r := p.Save("/portal/applications/server-app", map[string]string{"name": "Server app 2"}); r.Status != 303 {
		t.Fatalf("edit: %d %s", r.Status, r.Raw)
	}
	if f := apitest.FormOf(t, p.Get("/portal/applications/server-app")); f.Get("token_endpoint_auth_method") != "client_secret_basic" ||
		f.Get("post_logout_redirect_uris") != "https://app.example.com/bye" {
		t.Fatalf("an edit lost the OpenID settings: %v", f)
	}
	rv := revokeForm.FindStringSubmatch(page.Raw)
	if rv == nil {
		t.Fatalf("no revoke form: %s", page.Raw)
	}
	if r := p.PostForm(rv[1], url.Values{"csrf_token": {f.Get("csrf_token")}}); r.Status != 303 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if st := introspect(); st != 401 {
		t.Fatalf("a revoked secret at introspection: %d", st)
	}
}
