package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
)

const e2eAdminKey = "e2e-admin-key-0123456789abcdef0123456789"

// TestOpenIDClientInBrowser runs e2e/browser/rp.mjs: a server-side relying
// party built with openid-client 6 signs a regular user in through the
// hosted pages in headless Chromium, as two confidential clients
// (client_secret_basic and client_secret_post), with the ID token required
// and verified (nonce, max_age, at_hash), userinfo, introspection, refresh,
// prompt=login, response_mode=form_post, prompt=none and RP-initiated
// logout; and a framework login, Express with passport-openidconnect (which
// sends no PKCE: a confidential client may do without); and a public
// client with DPoP whose settings require nonces.
func TestOpenIDClientInBrowser(t *testing.T) {
	dir := browserDir(t)
	ln, err := net.Listen("tcp", "localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	rpPort := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close() // rp.mjs listens on it
	rpBase := fmt.Sprintf("http://localhost:%d", rpPort)
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Host: "localhost", Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
		c.AdminAPIKeys = []string{e2eAdminKey}
		for _, rp := range []struct{ id, method string }{{"rp-basic", domain.AuthMethodBasic}, {"rp-post", domain.AuthMethodPost}} {
			cl := c.Clients[0]
			cl.ClientID, cl.Name, cl.SessionType, cl.AllowedOrigins = rp.id, rp.id, domain.SessionTypeRefreshToken, nil
			cl.RedirectURIs, cl.PostLogoutRedirectURIs = []string{rpBase + "/callback", rpBase + "/passport/callback"}, []string{rpBase + "/logged-out"}
			cl.TokenEndpointAuthMethod = rp.method
			c.Clients = append(c.Clients, cl)
		}
		// A public client that must send DPoP nonces (issue 17).
		cl := c.Clients[0]
		cl.ClientID, cl.Name, cl.SessionType, cl.AllowedOrigins = "rp-dpop", "rp-dpop", domain.SessionTypeRefreshToken, nil
		cl.RedirectURIs, cl.DPoPNonceRequired = []string{rpBase + "/callback"}, true
		c.Clients = append(c.Clients, cl)
	}})
	const loginID, password = "openid-client@example.com", "violet-tangerine-42"
	guest := postJSON(t, n.URL+"/api/anonymous_user/signup", "", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, 200)
	at := guest["result"].(map[string]any)["access_token"].(string)
	postJSON(t, n.URL+"/api/anonymous_user/promote", "Bearer "+at, fmt.Sprintf(`{"login_id":%q,"password":%q}`, loginID, password), 200)
	basic := postJSON(t, n.URL+"/admin/clients/rp-basic/secrets", "Bearer "+e2eAdminKey, `{}`, 201)["client_secret"].(string)
	post := postJSON(t, n.URL+"/admin/clients/rp-post/secrets", "Bearer "+e2eAdminKey, `{}`, 201)["client_secret"].(string)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "rp.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IDSTREAM_URL="+n.URL, fmt.Sprintf("RP_PORT=%d", rpPort), "RP_BASIC_SECRET="+basic,
		"RP_POST_SECRET="+post, "LOGIN_ID="+loginID, "PASSWORD="+password)
	out, err := cmd.CombinedOutput()
	t.Logf("browser run:\n%s", out)
	if err != nil {
		t.Fatalf("openid-client scenarios failed: %v", err)
	}
}

func postJSON(t *testing.T, url, auth, body string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewBufferString(body))
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != want {
		t.Fatalf("POST %s: %d %v", url, resp.StatusCode, m)
	}
	return m
}
