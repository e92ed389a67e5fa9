package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// TestPortalInBrowser runs e2e/browser/portal.mjs against two nodes on one
// NATS server and one database: the portal turns anonymous users off and on
// (the SDK's authenticateAnonymously fails and works on both nodes), changes
// a client's refresh-token lifetime, refuses bad input, and is walked by
// keyboard with a screenshot of every page, shows the guest funnel (a
// promotion scripted here; artifacts/portal-funnel.png) and starts a user
// export from the Operations page. The refresh tokens it leaves
// are then aged here with the shared fake clock.
func TestPortalInBrowser(t *testing.T) {
	dir := browserDir(t)
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	fake := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	operator := func(c *config.Config) {
		c.Portal.Operators = []config.Operator{{Username: "ops", Password: "portal password for the browser test"}}
		testenv.CheapHashes(c)
	}
	a := testenv.StartNode(t, ns, testenv.NodeOptions{Host: "localhost", DatabaseURL: dbURL, Clock: fake, Configure: operator})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{Host: "localhost", DatabaseURL: dbURL, Clock: fake, Configure: operator})
	outFile := filepath.Join(t.TempDir(), "tokens.json")
	// Guests for the funnel page: one of them promoted five minutes later.
	guest := postJSON(t, a.URL+"/api/anonymous_user/signup", "", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, 200)
	postJSON(t, a.URL+"/api/anonymous_user/signup", "", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, 200)
	fake.Advance(5 * time.Minute)
	postJSON(t, a.URL+"/api/anonymous_user/promote", "Bearer "+guest["result"].(map[string]any)["access_token"].(string),
		`{"login_id":"funnel@example.com","password":"violet-tangerine-42"}`, 200)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "portal.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IDSTREAM_URL="+a.URL, "IDSTREAM_URL_B="+b.URL, "CLIENT_ID=idstream-dev",
		"PORTAL_USER=ops", "PORTAL_PASSWORD=portal password for the browser test", "OUT_FILE="+outFile)
	out, err := cmd.CombinedOutput()
	t.Logf("browser run:\n%s", out)
	t.Logf("screenshots (the funnel page: portal-funnel.png) in %s", filepath.Join(dir, "artifacts"))
	if err != nil {
		t.Fatalf("portal scenarios failed: %v", err)
	}

	// The lifetime set in the portal (idle 1h, lifetime 2h) governs the
	// session started after the change, not the one started before it.
	var toks struct{ OldRefreshToken, NewRefreshToken string }
	raw, err := os.ReadFile(outFile)
	if err != nil || json.Unmarshal(raw, &toks) != nil || toks.OldRefreshToken == "" || toks.NewRefreshToken == "" {
		t.Fatalf("tokens from the browser run: %s %v", raw, err)
	}
	rt := toks.NewRefreshToken
	for range 2 {
		fake.Advance(59 * time.Minute)
		status, body := refresh(t, a.URL, rt)
		if status != 200 {
			t.Fatalf("refresh within the new idle timeout: %d %v", status, body)
		}
		rt = body["refresh_token"].(string)
	}
	fake.Advance(3 * time.Minute) // 2h01m after the session started
	if status, body := refresh(t, b.URL, rt); status != 400 || body["reason"] != "SessionExpired" {
		t.Fatalf("a session past the lifetime set in the portal: %d %v", status, body)
	}
	if status, body := refresh(t, b.URL, toks.OldRefreshToken); status != 200 {
		t.Fatalf("a session started before the change lost its lifetime: %d %v", status, body)
	}
}

func refresh(t *testing.T, base, rt string) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(base+"/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

// browserDir checks that chromium and the npm packages are there.
func browserDir(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("chromium"); err != nil {
		t.Fatal("chromium is not installed: run ./scripts/test.sh, which installs it")
	}
	dir, err := filepath.Abs("browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@authgear", "web")); err != nil {
		t.Fatal("e2e/browser/node_modules is missing: run ./scripts/test.sh, which runs npm ci")
	}
	return dir
}
