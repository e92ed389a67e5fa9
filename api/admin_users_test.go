package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// waitProjected waits until every projection has applied the whole log.
func waitProjected(t *testing.T, c *client) {
	t.Helper()
	auth := map[string]string{"Authorization": "Bearer " + adminKey}
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := c.do(http.MethodGet, "/admin/projections", "", "", auth)
		ps, _ := r.body["projections"].([]any)
		caught := len(ps) == len(projections.All())
		for _, p := range ps {
			if p.(map[string]any)["lag_events"].(float64) != 0 || p.(map[string]any)["state"] != "running" {
				caught = false
			}
		}
		if r.status == 200 && caught {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("projection status: %s", r.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func adminNode(t *testing.T) (*testenv.Node, *client) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		cheapHashes(c)
		c.AdminAPIKeys = []string{adminKey}
	}})
	return n, newClient(t, n)
}

func (c *client) admin(method, path, body string) response {
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return c.do(method, path, ct, body, map[string]string{"Authorization": "Bearer " + adminKey})
}

func userIDs(r response) []string {
	var ids []string
	us, _ := r.body["users"].([]any)
	for _, u := range us {
		ids = append(ids, u.(map[string]any)["sub"].(string))
	}
	return ids
}

func TestAdminUserManagement(t *testing.T) {
	n, c := adminNode(t)
	// Three guests, newest last; the first two promoted.
	var subs, ats, rts []string
	for i := range 3 {
		at, rt := signup(t, c)
		sub := str(c.userinfo(at).body, "sub")
		if i < 2 {
			r := c.promote(at, []string{"ada@example.com", "bob@example.com"}[i], goodPassword)
			if r.status != 200 {
				t.Fatal(r.raw)
			}
			at, rt = str(r.result(), "access_token"), str(r.result(), "refresh_token")
		}
		subs, ats, rts = append(subs, sub), append(ats, at), append(rts, rt)
		n.Clock.Advance(time.Second)
	}
	waitProjected(t, c)

	// Listing: newest first, filters, cursor pages.
	if r := c.admin(http.MethodGet, "/admin/users", ""); r.status != 200 || len(userIDs(r)) != 3 || userIDs(r)[0] != subs[2] || r.body["next_cursor"] != nil {
		t.Fatalf("list: %d %s", r.status, r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users?is_anonymous=true", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[2] {
		t.Fatalf("anonymous filter: %s", r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users?login_id=ADA", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[0] {
		t.Fatalf("login ID search: %s", r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users?login_id=%25", ""); len(userIDs(r)) != 0 {
		t.Fatalf("a LIKE wildcard is matched literally: %s", r.raw)
	}
	created := n.Clock.Now().Add(-1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	if r := c.admin(http.MethodGet, "/admin/users?created_after="+url.QueryEscape(created[:19]+"Z"), ""); len(userIDs(r)) != 2 {
		t.Fatalf("created_after: %s", r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users?created_before=2000-01-01T00:00:00Z", ""); r.status != 200 || len(userIDs(r)) != 0 {
		t.Fatalf("created_before: %s", r.raw)
	}
	var paged []string
	cursor := ""
	for range 4 {
		r := c.admin(http.MethodGet, "/admin/users?limit=1&cursor="+cursor, "")
		paged = append(paged, userIDs(r)...)
		cursor = str(r.body, "next_cursor")
		if cursor == "" {
			break
		}
	}
	if len(paged) != 3 || paged[0] != subs[2] || paged[1] != subs[1] || paged[2] != subs[0] {
		t.Fatalf("pages: %v, want %v reversed", paged, subs)
	}
	for _, q := range []string{"is_anonymous=maybe", "limit=0", "limit=501", "cursor=nonsense", "created_after=yesterday", "state=gone", "disabled=2"} {
		if r := c.admin(http.MethodGet, "/admin/users?"+q, ""); r.status != 400 {
			t.Fatalf("%s: %d %s", q, r.status, r.raw)
		}
	}

	// One user with identities and sessions.
	r := c.admin(http.MethodGet, "/admin/users/"+subs[0], "")
	ids, _ := r.body["identities"].([]any)
	sessions, _ := r.body["sessions"].([]any)
	if r.status != 200 || str(r.body, "login_id") != "ada@example.com" || len(ids) != 1 || len(sessions) != 2 {
		t.Fatalf("get user: %d %s", r.status, r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users/00000000-0000-4000-8000-000000000000", ""); r.status != 404 || r.reason() != "UserNotFound" {
		t.Fatalf("unknown user: %d %s", r.status, r.raw)
	}

	// Revoking one session: its refresh token stops working; another user's
	// session cannot be revoked through this user.
	var live string
	for _, s := range sessions {
		if s.(map[string]any)["revoked_at"] == nil {
			live = s.(map[string]any)["id"].(string)
		}
	}
	if r := c.admin(http.MethodPost, "/admin/users/"+subs[1]+"/sessions/"+live+"/revoke", ""); r.status != 404 {
		t.Fatalf("revoke through another user: %d %s", r.status, r.raw)
	}
	if r := c.admin(http.MethodPost, "/admin/users/"+subs[0]+"/sessions/"+live+"/revoke", ""); r.status != 204 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := refresh(c, rts[0]); r.status != 400 {
		t.Fatalf("refresh after admin revoke: %d %s", r.status, r.raw)
	}

	// Disable: tokens stop, password sign-in is refused; enable: sign-in works.
	ctx := context.Background()
	if r := c.admin(http.MethodPost, "/admin/users/"+subs[1]+"/disable", `{"reason":"abuse report"}`); r.status != 200 || r.body["disabled"] != true {
		t.Fatalf("disable: %d %s", r.status, r.raw)
	}
	if r := c.userinfo(ats[1]); r.status != 401 && r.status != 403 {
		t.Fatalf("access token of a disabled user: %d %s", r.status, r.raw)
	}
	if r := refresh(c, rts[1]); r.status != 400 {
		t.Fatalf("refresh of a disabled user: %d %s", r.status, r.raw)
	}
	if _, err := n.Service.AuthenticatePassword(ctx, "email", "bob@example.com", goodPassword, "192.0.2.1", app.Meta{}); !errors.Is(err, app.ErrInvalidCredentials) {
		t.Fatalf("sign-in of a disabled user: %v", err)
	}
	if r := c.admin(http.MethodPost, "/admin/users/"+subs[1]+"/disable", `{"reason":"again"}`); r.status != 200 {
		t.Fatalf("disable twice: %d %s", r.status, r.raw)
	}
	if r := c.admin(http.MethodPost, "/admin/users/"+subs[1]+"/disable", `{"why":"x"}`); r.status != 400 {
		t.Fatalf("unknown field: %d %s", r.status, r.raw)
	}
	waitProjected(t, c)
	if r := c.admin(http.MethodGet, "/admin/users?disabled=true", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[1] {
		t.Fatalf("disabled filter: %s", r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users/"+subs[1], ""); countLive(r) != 0 {
		t.Fatalf("a disabled user keeps live sessions: %s", r.raw)
	}
	if r := c.admin(http.MethodPost, "/admin/users/"+subs[1]+"/enable", ""); r.status != 200 || r.body["disabled"] != false {
		t.Fatalf("enable: %d %s", r.status, r.raw)
	}
	if _, err := n.Service.AuthenticatePassword(ctx, "email", "bob@example.com", goodPassword, "192.0.2.1", app.Meta{}); err != nil {
		t.Fatalf("sign-in after enable: %v", err)
	}

	// Delete: the login ID is released and can be claimed by someone else.
	if r := c.admin(http.MethodDelete, "/admin/users/"+subs[0], `{"reason":"user asked"}`); r.status != 200 || r.body["deleted"] != true {
		t.Fatalf("delete: %d %s", r.status, r.raw)
	}
	if r := c.admin(http.MethodDelete, "/admin/users/"+subs[0], ""); r.status != 404 {
		t.Fatalf("delete twice: %d %s", r.status, r.raw)
	}
	if r := c.userinfo(ats[0]); r.status != 401 {
		t.Fatalf("access token of a deleted user: %d %s", r.status, r.raw)
	}
	if _, err := n.Service.AuthenticatePassword(ctx, "email", "ada@example.com", goodPassword, "192.0.2.2", app.Meta{}); !errors.Is(err, app.ErrInvalidCredentials) {
		t.Fatalf("sign-in of a deleted user: %v", err)
	}
	at, _ := signup(t, c)
	if r := c.promote(at, "ada@example.com", goodPassword); r.status != 200 {
		t.Fatalf("released login ID: %d %s", r.status, r.raw)
	}
	waitProjected(t, c)
	if r := c.admin(http.MethodGet, "/admin/users?state=deleted", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[0] {
		t.Fatalf("state filter: %s", r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users/"+subs[0], ""); r.body["login_id"] != nil || len(r.body["identities"].([]any)) != 0 {
		t.Fatalf("deleted user keeps its login ID: %s", r.raw)
	}
	if r := c.admin(http.MethodGet, "/admin/users?login_id=ada", ""); len(userIDs(r)) != 1 || userIDs(r)[0] == subs[0] {
		t.Fatalf("the new owner of the login ID: %s", r.raw)
	}
	// The timeline (from the log) ends with the deletion, recorded with the
	// operator's key fingerprint (never the key).
	r = c.admin(http.MethodGet, "/admin/users/"+subs[0]+"/timeline", "")
	evs, _ := r.body["events"].([]any)
	var deleted map[string]any
	for _, e := range evs {
		if e.(map[string]any)["type"] == "user.deleted.v1" {
			deleted = e.(map[string]any)
		}
	}
	if r.status != 200 || deleted == nil || !strings.HasPrefix(str(deleted, "actor"), "admin-key:") || strings.Contains(r.raw, adminKey) {
		t.Fatalf("timeline of a deleted user: %s", r.raw)
	}
}

func countLive(r response) int {
	n := 0
	ss, _ := r.body["sessions"].([]any)
	for _, s := range ss {
		if s.(map[string]any)["revoked_at"] == nil {
			n++
		}
	}
	return n
}
