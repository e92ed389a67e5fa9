package e2e

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/idstream/idstream/api/hosted"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/testenv/upstream"
)

// TestUpstreamPromotionInBrowser runs e2e/browser/upstream.mjs: a guest of
// the @authgear/web SDK promotes itself with "Continue with Acme" through
// a real OpenID provider on loopback (zitadel/oidc's op), in Chromium.
func TestUpstreamPromotionInBrowser(t *testing.T) {
	dir := browserDir(t)
	var op *upstream.Provider
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Host: "localhost", Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
		op = upstream.Start(t, upstream.Options{RedirectURI: c.PublicURL + hosted.CallbackPath})
		c.Providers = []config.Provider{{ID: "acme", Name: "Acme", Issuer: op.Issuer, ClientID: op.ClientID, Clients: []string{config.DevClientID}}}
		if err := c.PrepareProviders(func(k string) string {
			if k == "IDSTREAM_IDP_ACME_CLIENT_SECRET" {
				return op.ClientSecret
			}
			return ""
		}); err != nil {
			t.Fatal(err)
		}
	}})
	op.SetUser(upstream.User{Subject: "browser-user", Email: "browser@acme.test", EmailVerified: upstream.Verified(true)})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "upstream.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IDSTREAM_URL="+n.URL, "CLIENT_ID=idstream-dev")
	out, err := cmd.CombinedOutput()
	t.Logf("browser run:\n%s", out)
	if err != nil {
		t.Fatalf("browser scenarios failed: %v", err)
	}
}
