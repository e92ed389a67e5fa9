package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

const adminKey = "test-admin-key-0123456789abcdef0123456789"

func TestAdminAPI(t *testing.T) {
	off := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	if r := newClient(t, off).do(http.MethodGet, "/admin/projections", "", "", map[string]string{"Authorization": "Bearer " + adminKey}); r.status != 404 || r.reason() != "AdminAPIDisabled" {
		t.Fatalf("admin API without keys: %d %s", r.status, r.raw)
	}
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		c.AdminAPIKeys = []string{adminKey}
	}})
	c := newClient(t, n)
	for _, h := range []map[string]string{nil, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer " + adminKey + "x"}} {
		if r := c.do(http.MethodGet, "/admin/projections", "", "", h); r.status != 401 || r.reason() != "InvalidAdminKey" {
			t.Fatalf("admin with %v: %d %s", h, r.status, r.raw)
		}
	}
	at, _ := signup(t, c)
	sub := str(c.userinfo(at).body, "sub")
	if r := c.promote(at, "timeline@example.com", goodPassword); r.status != 200 {
		t.Fatal(r.raw)
	}
	auth := map[string]string{"Authorization": "Bearer " + adminKey}
	waitProjected(t, c)
	r := c.do(http.MethodGet, "/admin/users/"+sub+"/timeline", "", "", auth)
	var types []string
	evs, _ := r.body["events"].([]any)
	for _, e := range evs {
		types = append(types, e.(map[string]any)["type"].(string))
	}
	want := "user.anonymous.created.v1 session.started.v1 login_id.claimed.v1 user.promoted.v2 user.password.set.v1 session.revoked.v1 user.signed_in.v1 session.started.v1"
	if r.status != 200 || strings.Join(types, " ") != want {
		t.Fatalf("timeline: %d %v", r.status, types)
	}
	if strings.Contains(r.raw, "$argon2id$") || !strings.Contains(r.raw, "[redacted]") {
		t.Fatal("credential hashes are not redacted in the timeline")
	}
	if r := c.do(http.MethodGet, "/admin/users/not-a-uuid/timeline", "", "", auth); r.status != 400 {
		t.Fatalf("bad id: %d", r.status)
	}
	if r := c.do(http.MethodGet, "/admin/users/00000000-0000-4000-8000-000000000000/timeline", "", "", auth); r.status != 404 {
		t.Fatalf("unknown user: %d", r.status)
	}
}
