package admin_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

func TestAdminAPI(t *testing.T) {
	off := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	if r := apitest.NewClient(t, off).Do(http.MethodGet, "/admin/projections", "", "", map[string]string{"Authorization": "Bearer " + apitest.AdminKey}); r.Status != 404 || r.Reason() != "AdminAPIDisabled" {
		t.Fatalf("admin API without keys: %d %s", r.Status, r.Raw)
	}
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
	}})
	c := apitest.NewClient(t, n)
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer " + apitest.AdminKey + "x"}} {
		if r := c.Do(http.MethodGet, "/admin/projections", "", "", h); r.Status != 401 || r.Reason() != "InvalidAdminKey" {
			t.Fatalf("admin with %v: %d %s", h, r.Status, r.Raw)
		}
	}
	at, _ := apitest.Signup(t, c)
	sub := apitest.Str(c.Userinfo(at).Body, "sub")
	if r := c.Promote(at, "timeline@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatal(r.Raw)
	}
	auth := map[string]string{"Authorization": "Bearer " + apitest.AdminKey}
	apitest.WaitProjected(t, c)
	r := c.Do(http.MethodGet, "/admin/users/"+sub+"/timeline", "", "", auth)
	var types []string
	evs, _ := r.Body["events"].([]any)
	for _, e := range evs {
		types = append(types, e.(map[string]any)["type"].(string))
	}
	want := "user.anonymous.created.v1 session.started.v1 login_id.claimed.v1 user.promoted.v2 user.password.set.v1 session.revoked.v1 user.signed_in.v1 session.started.v1"
	if r.Status != 200 || strings.Join(types, " ") != want {
		t.Fatalf("timeline: %d %v", r.Status, types)
	}
	if strings.Contains(r.Raw, "$argon2id$") || !strings.Contains(r.Raw, "[redacted]") {
		t.Fatal("credential hashes are not redacted in the timeline")
	}
	if r := c.Do(http.MethodGet, "/admin/users/not-a-uuid/timeline", "", "", auth); r.Status != 400 {
		t.Fatalf("bad id: %d", r.Status)
	}
	if r := c.Do(http.MethodGet, "/admin/users/00000000-0000-4000-8000-000000000000/timeline", "", "", auth); r.Status != 404 {
		t.Fatalf("unknown user: %d", r.Status)
	}
}
