package admin_test

import (
	"testing"

	"github.com/idstream/idstream/api/apitest"
)

// TestMain scans the logs of every node the package's tests start for the
// secrets they saw (see apitest.Main).
// A full run writes about 180 log lines and records about 90 secrets.
func TestMain(m *testing.M) {
	apitest.Main(m, apitest.Floors{LogLines: 90, Secrets: 40,
		Kinds: []string{"access token", "refresh token", "password", "signing key (JWK private member)", "admin API key"}})
}
