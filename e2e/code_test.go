package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
)

// TestAuthgearWebSDKPromotionWithCode runs e2e/browser/code.mjs: the SDK's
// startPromoteAnonymousUser, unmodified, through the hosted "Enter the code
// we sent to …" page of a project that requires verification, in both
// session modes and passwordless ("Create account with a code instead"),
// with the development outbox as the mail.
func TestAuthgearWebSDKPromotionWithCode(t *testing.T) {
	dir := browserDir(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Host: "localhost", Delivery: delivery.Router{
		Email: &delivery.Outbox{Dir: outbox}}, Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
		c.Verification.Promotion = domain.VerifyRequired
		c.Verification.Authenticators = map[string][]string{"email": {domain.AuthenticatorPassword, domain.AuthenticatorCode},
			"phone": {domain.AuthenticatorPassword}, "username": {domain.AuthenticatorPassword}}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "code.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IDSTREAM_URL="+n.URL, "CLIENT_ID=idstream-dev", "OUTBOX_DIR="+outbox)
	out, err := cmd.CombinedOutput()
	t.Logf("browser run:\n%s", out)
	if err != nil {
		t.Fatalf("browser scenarios failed: %v", err)
	}
}
