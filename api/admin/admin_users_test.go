package admin_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/app"
)

func userIDs(r apitest.Response) []string {
	var ids []string
	us, _ := r.Body["users"].([]any)
	for _, u := range us {
		ids = append(ids, u.(map[string]any)["sub"].(string))
	}
	return ids
}

func TestAdminUserManagement(t *testing.T) {
	n, c := apitest.AdminNode(t)
	// Three guests, newest last; the first two promoted.
	var subs, ats, rts []string
	for i := range 3 {
		at, rt := apitest.Signup(t, c)
		sub := apitest.Str(c.Userinfo(at).Body, "sub")
		if i < 2 {
			r := c.Promote(at, []string{"ada@example.com", "bob@example.com"}[i], apitest.GoodPassword)
			if r.Status != 200 {
				t.Fatal(r.Raw)
			}
			at, rt = apitest.Str(r.Result(), "access_token"), apitest.Str(r.Result(), "refresh_token")
		}
		subs, ats, rts = append(subs, sub), append(ats, at), append(rts, rt)
		n.Clock.Advance(time.Second)
	}
	apitest.WaitProjected(t, c)

	// Listing: newest first, filters, cursor pages.
	if r := c.Admin(http.MethodGet, "/admin/users", ""); r.Status != 200 || len(userIDs(r)) != 3 || userIDs(r)[0] != subs[2] || r.Body["next_cursor"] != nil {
		t.Fatalf("list: %d %s", r.Status, r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users?is_anonymous=true", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[2] {
		t.Fatalf("anonymous filter: %s", r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users?login_id=ADA", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[0] {
		t.Fatalf("login ID search: %s", r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users?login_id=%25", ""); len(userIDs(r)) != 0 {
		t.Fatalf("a LIKE wildcard is matched literally: %s", r.Raw)
	}
	created := n.Clock.Now().Add(-1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	if r := c.Admin(http.MethodGet, "/admin/users?created_after="+url.QueryEscape(created[:19]+"Z"), ""); len(userIDs(r)) != 2 {
		t.Fatalf("created_after: %s", r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users?created_before=2000-01-01T00:00:00Z", ""); r.Status != 200 || len(userIDs(r)) != 0 {
		t.Fatalf("created_before: %s", r.Raw)
	}
	var paged []string
	cursor := ""
	for range 4 {
		r := c.Admin(http.MethodGet, "/admin/users?limit=1&cursor="+cursor, "")
		paged = append(paged, userIDs(r)...)
		cursor = apitest.Str(r.Body, "next_cursor")
		if cursor == "" {
			break
		}
	}
	if len(paged) != 3 || paged[0] != subs[2] || paged[1] != subs[1] || paged[2] != subs[0] {
		t.Fatalf("pages: %v, want %v reversed", paged, subs)
	}
	for _, q := range []string{"is_anonymous=maybe", "limit=0", "limit=501", "cursor=nonsense", "created_after=yesterday", "state=gone", "disabled=2"} {
		if r := c.Admin(http.MethodGet, "/admin/users?"+q, ""); r.Status != 400 {
			t.Fatalf("%s: %d %s", q, r.Status, r.Raw)
		}
	}

	// One user with identities and sessions.
	r := c.Admin(http.MethodGet, "/admin/users/"+subs[0], "")
	ids, _ := r.Body["identities"].([]any)
	sessions, _ := r.Body["sessions"].([]any)
	if r.Status != 200 || apitest.Str(r.Body, "login_id") != "ada@example.com" || len(ids) != 1 || len(sessions) != 2 {
		t.Fatalf("get user: %d %s", r.Status, r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users/00000000-0000-4000-8000-000000000000", ""); r.Status != 404 || r.Reason() != "UserNotFound" {
		t.Fatalf("unknown user: %d %s", r.Status, r.Raw)
	}

	// Revoking one session: its refresh token stops working; another user's
	// session cannot be revoked through this user.
	var live string
	for _, s := range sessions {
		if s.(map[string]any)["revoked_at"] == nil {
			live = s.(map[string]any)["id"].(string)
		}
	}
	if r := c.Admin(http.MethodPost, "/admin/users/"+subs[1]+"/sessions/"+live+"/revoke", ""); r.Status != 404 {
		t.Fatalf("revoke through another user: %d %s", r.Status, r.Raw)
	}
	if r := c.Admin(http.MethodPost, "/admin/users/"+subs[0]+"/sessions/"+live+"/revoke", ""); r.Status != 204 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, rts[0]); r.Status != 400 {
		t.Fatalf("refresh after admin revoke: %d %s", r.Status, r.Raw)
	}

	// Disable: tokens stop, password sign-in is refused; enable: sign-in works.
	ctx := context.Background()
	if r := c.Admin(http.MethodPost, "/admin/users/"+subs[1]+"/disable", `{"reason":"abuse report"}`); r.Status != 200 || r.Body["disabled"] != true {
		t.Fatalf("disable: %d %s", r.Status, r.Raw)
	}
	if r := c.Userinfo(ats[1]); r.Status != 401 && r.Status != 403 {
		t.Fatalf("access token of a disabled user: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, rts[1]); r.Status != 400 {
		t.Fatalf("refresh of a disabled user: %d %s", r.Status, r.Raw)
	}
	if _, err := n.Service.AuthenticatePassword(ctx, "email", "bob@example.com", apitest.GoodPassword, "192.0.2.1", app.Meta{}); !errors.Is(err, app.ErrInvalidCredentials) {
		t.Fatalf("sign-in of a disabled user: %v", err)
	}
	if r := c.Admin(http.MethodPost, "/admin/users/"+subs[1]+"/disable", `{"reason":"again"}`); r.Status != 200 {
		t.Fatalf("disable twice: %d %s", r.Status, r.Raw)
	}
	if r := c.Admin(http.MethodPost, "/admin/users/"+subs[1]+"/disable", `{"why":"x"}`); r.Status != 400 {
		t.Fatalf("unknown field: %d %s", r.Status, r.Raw)
	}
	apitest.WaitProjected(t, c)
	if r := c.Admin(http.MethodGet, "/admin/users?disabled=true", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[1] {
		t.Fatalf("disabled filter: %s", r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users/"+subs[1], ""); countLive(r) != 0 {
		t.Fatalf("a disabled user keeps live sessions: %s", r.Raw)
	}
	if r := c.Admin(http.MethodPost, "/admin/users/"+subs[1]+"/enable", ""); r.Status != 200 || r.Body["disabled"] != false {
		t.Fatalf("enable: %d %s", r.Status, r.Raw)
	}
	if _, err := n.Service.AuthenticatePassword(ctx, "email", "bob@example.com", apitest.GoodPassword, "192.0.2.1", app.Meta{}); err != nil {
		t.Fatalf("sign-in after enable: %v", err)
	}

	// Delete: the login ID is released and can be claimed by someone else.
	if r := c.Admin(http.MethodDelete, "/admin/users/"+subs[0], `{"reason":"user asked"}`); r.Status != 200 || r.Body["deleted"] != true {
		t.Fatalf("delete: %d %s", r.Status, r.Raw)
	}
	if r := c.Admin(http.MethodDelete, "/admin/users/"+subs[0], ""); r.Status != 404 {
		t.Fatalf("delete twice: %d %s", r.Status, r.Raw)
	}
	if r := c.Userinfo(ats[0]); r.Status != 401 {
		t.Fatalf("access token of a deleted user: %d %s", r.Status, r.Raw)
	}
	if _, err := n.Service.AuthenticatePassword(ctx, "email", "ada@example.com", apitest.GoodPassword, "192.0.2.2", app.Meta{}); !errors.Is(err, app.ErrInvalidCredentials) {
		t.Fatalf("sign-in of a deleted user: %v", err)
	}
	at, _ := apitest.Signup(t, c)
	if r := c.Promote(at, "ada@example.com", apitest.GoodPassword); r.Status != 200 {
		t.Fatalf("released login ID: %d %s", r.Status, r.Raw)
	}
	apitest.WaitProjected(t, c)
	if r := c.Admin(http.MethodGet, "/admin/users?state=deleted", ""); len(userIDs(r)) != 1 || userIDs(r)[0] != subs[0] {
		t.Fatalf("state filter: %s", r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users/"+subs[0], ""); r.Body["login_id"] != nil || len(r.Body["identities"].([]any)) != 0 {
		t.Fatalf("deleted user keeps its login ID: %s", r.Raw)
	}
	if r := c.Admin(http.MethodGet, "/admin/users?login_id=ada", ""); len(userIDs(r)) != 1 || userIDs(r)[0] == subs[0] {
		t.Fatalf("the new owner of the login ID: %s", r.Raw)
	}
	// The timeline (from the log) ends with the deletion, recorded with the
	// operator's key fingerprint (never the key).
	r = c.Admin(http.MethodGet, "/admin/users/"+subs[0]+"/timeline", "")
	evs, _ := r.Body["events"].([]any)
	var deleted map[string]any
	for _, e := range evs {
		if e.(map[string]any)["type"] == "user.deleted.v1" {
			deleted = e.(map[string]any)
		}
	}
	if r.Status != 200 || deleted == nil || !strings.HasPrefix(apitest.Str(deleted, "actor"), "admin-key:") || strings.Contains(r.Raw, apitest.AdminKey) {
		t.Fatalf("timeline of a deleted user: %s", r.Raw)
	}
}

func countLive(r apitest.Response) int {
	n := 0
	ss, _ := r.Body["sessions"].([]any)
	for _, s := range ss {
		if s.(map[string]any)["revoked_at"] == nil {
			n++
		}
	}
	return n
}
