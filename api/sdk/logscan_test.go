package sdk_test

import (
	"testing"

	"github.com/idstream/idstream/api/apitest"
)

// TestMain scans the logs of every node the package's tests start for the
// secrets they saw (see apitest.Main).
// A full run writes about 3,200 log lines (one per request at debug level,
// plus rejections and node events) and records about 3,400 distinct
// secrets, of every kind; a broken capture or recorder gives far fewer.
func TestMain(m *testing.M) {
	apitest.Main(m, apitest.Floors{LogLines: 1000, Secrets: 1000, Kinds: apitest.SecretKinds})
}
