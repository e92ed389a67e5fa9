package sdk_test

import (
	"net/http"
	"testing"

	"github.com/idstream/idstream/api/apitest"
)

// TestJSONDuplicateAndCaseVariantKeys: a JSON body with a key twice (at any
// level) or a key that spells a field with other case is refused with 400
// InvalidJSON in the SDK's error shape, before anything is done; the
// bodies the SDKs send still work.
func TestJSONDuplicateAndCaseVariantKeys(t *testing.T) {
	n, c := apitest.AdminNode(t)
	at, _ := apitest.Signup(t, c)
	bearer := map[string]string{"Authorization": "Bearer " + at}
	before := apitest.LastSeq(t, n)
	for _, tc := range []struct{ name, path, body string }{
		{"duplicate client_id", "/api/anonymous_user/signup", `{"client_id":"nope","client_id":"idstream-dev","session_type":"refresh_token"}`},
		{"duplicate through an escape", "/api/anonymous_user/signup", `{"client_id":"idstream-dev","client\u005fid":"nope","session_type":"cookie"}`},
		{"case variant", "/api/anonymous_user/signup", `{"Client_ID":"idstream-dev","session_type":"refresh_token"}`},
		{"case variant next to the field", "/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"refresh_token","SESSION_TYPE":"cookie"}`},
		{"Unicode case folding", "/api/anonymous_user/signup", "{\"client_id\":\"idstream-dev\",\"\u017fession_type\":\"refresh_token\"}"},
		{"duplicate password", "/api/anonymous_user/promote", `{"login_id":"dup@example.com","password":"short","password":"violet-tangerine-42"}`},
		{"case variant password", "/api/anonymous_user/promote", `{"login_id":"dup@example.com","Password":"violet-tangerine-42"}`},
		{"duplicate purpose", "/oauth2/challenge", `{"purpose":"x","purpose":"anonymous_request"}`},
		{"duplicate session_type", "/api/anonymous_user/promotion_code", `{"session_type":"refresh_token","session_type":"cookie"}`},
	} {
		r := c.PostJSON(tc.path, tc.body, bearer)
		e, _ := r.Body["error"].(map[string]any)
		if r.Status != 400 || r.Reason() != "InvalidJSON" || e["name"] != "Invalid" || e["message"] == "" || e["code"] != float64(400) {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
		}
	}
	for _, tc := range []struct{ name, body string }{
		{"nested duplicate", `{"format":"csv","csv":{"fields":["sub"],"fields":["login_id"]}}`},
		{"nested case variant", `{"format":"csv","csv":{"Fields":["sub"]}}`},
		{"top-level case variant", `{"Format":"csv"}`},
	} {
		if r := c.Admin(http.MethodPost, "/admin/users/export", tc.body); r.Status != 400 || r.Reason() != "InvalidJSON" {
			t.Errorf("%s: %d %s", tc.name, r.Status, r.Raw)
		}
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("refused bodies wrote events")
	}
	// What the SDKs send is accepted.
	for _, tc := range []struct{ path, body string }{
		{"/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"cookie"}`},
		{"/api/anonymous_user/signup", `{"client_id":"idstream-dev","session_type":"refresh_token","refresh_token":"stale"}`},
		{"/api/anonymous_user/signup", `{"client\u005fid":"idstream-dev","session_type":"refresh_token"}`},
		{"/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`},
		{"/oauth2/challenge", `{"purpose":"anonymous_request"}`},
	} {
		h := map[string]string{}
		if tc.path == "/api/anonymous_user/promotion_code" {
			h = bearer
		}
		if r := c.PostJSON(tc.path, tc.body, h); r.Status != 200 {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, r.Status, r.Raw)
		}
	}
}
