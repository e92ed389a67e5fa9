package hosted_test

import (
	"testing"

	"github.com/idstream/idstream/api/apitest"
)

// TestMain scans the logs of every node the package's tests start for the
// secrets they saw (see apitest.Main).
// A full run writes about 80 log lines and records about 80 secrets, of
// every kind.
func TestMain(m *testing.M) {
	apitest.Main(m, apitest.Floors{LogLines: 40, Secrets: 40, Kinds: apitest.SecretKinds})
}
