package admin_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// TestAdminFunnel: two guests today, one promoted: the API reports the day
// and the rates; a bad range is refused with its reason.
func TestAdminFunnel(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
	}})
	c := apitest.NewClient(t, n)
	at, _ := apitest.Signup(t, c)
	apitest.Signup(t, c)
	if r := c.Promote(at, "funnel@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	testenv.Settle(t, n.Pool, n.Store, 30*time.Second)
	auth := map[string]string{"Authorization": "Bearer " + apitest.AdminKey}
	r := c.Do(http.MethodGet, "/admin/analytics/funnel", "", "", auth)
	days, _ := r.Body["days"].([]any)
	if r.Status != 200 || len(days) != 1 {
		t.Fatalf("funnel: %d %s", r.Status, r.Raw)
	}
	day := days[0].(map[string]any)
	tot := r.Body["totals"].(map[string]any)
	if day["day"] != n.Clock.Now().UTC().Format(time.DateOnly) || day["created"].(map[string]any)["web"] != 2.0 ||
		day["promoted"].(map[string]any)["web"] != 1.0 || day["still_anonymous"] != 1.0 ||
		tot["conversion_rate"] != 0.5 || tot["orphan_share"] != 0.5 ||
		tot["time_to_promotion"].(map[string]any)["median_seconds"] == nil {
		t.Fatalf("funnel: %s", r.Raw)
	}
	for _, q := range []string{"?from=2026-13-01", "?from=2026-03-02&to=2026-03-01", "?from=2020-01-01&to=2026-01-01"} {
		if r := c.Do(http.MethodGet, "/admin/analytics/funnel"+q, "", "", auth); r.Status != 400 || r.Reason() != "InvalidDateRange" {
			t.Fatalf("%s: %d %s", q, r.Status, r.Raw)
		}
	}
	if r := c.Do(http.MethodGet, "/admin/analytics/funnel?client_id=nobody", "", "", auth); r.Status != 200 || len(r.Body["days"].([]any)) != 0 {
		t.Fatalf("other client: %s", r.Raw)
	}
}
