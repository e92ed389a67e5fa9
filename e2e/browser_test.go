// Package e2e drives idstream from a real browser: headless Chromium runs
// the unmodified @authgear/web SDK from npm against a real server.
package e2e

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/idstream/idstream/testenv"
)

// TestAuthgearWebSDK runs e2e/browser/run.mjs (playwright-core with Debian's
// chromium) against a node served on localhost. scripts/test.sh installs
// chromium and the npm packages; without them this test fails, it does not
// skip.
func TestAuthgearWebSDK(t *testing.T) {
	dir := browserDir(t)
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Host: "localhost"})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "run.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "IDSTREAM_URL="+n.URL, "CLIENT_ID=idstream-dev")
	out, err := cmd.CombinedOutput()
	t.Logf("browser run:\n%s", out)
	if err != nil {
		t.Fatalf("browser scenarios failed: %v", err)
	}
}
