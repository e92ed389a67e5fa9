package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// fuzzTargets are the endpoints that decode a request body.
var fuzzTargets = []struct{ method, path, contentType string }{
	{http.MethodPost, "/api/anonymous_user/signup", "application/json"},
	{http.MethodPost, "/api/anonymous_user/promotion_code", "application/json"},
	{http.MethodPost, "/api/anonymous_user/promote", "application/json"},
	{http.MethodPost, "/oauth2/challenge", "application/json"},
	{http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded"},
	{http.MethodPost, "/oauth2/revoke", "application/x-www-form-urlencoded"},
	{http.MethodPost, "/admin/users/export", "application/json"},
	{http.MethodPost, "/admin/users/00000000-0000-4000-8000-000000000000/disable", "application/json"},
}

// FuzzRequestDecoders sends arbitrary bodies to every endpoint that decodes
// one, on a real node: no body may cause a 5xx, and every error answer is
// JSON with a stable reason. Run it long with
//
//	go test ./api -run ^$ -fuzz FuzzRequestDecoders -fuzztime 10m -parallel 1
func FuzzRequestDecoders(f *testing.F) {
	n := testenv.StartNode(f, testenv.StartNATS(f), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
	}})
	for i, body := range []string{apitest.TokenSignup, apitest.CookieSignup, `{"session_type":"refresh_token"}`, `{"login_id":"a@example.com","password":"x"}`,
		`{"purpose":"anonymous_request"}`, "grant_type=refresh_token&client_id=idstream-dev&refresh_token=x", "token=abc",
		`{"format":"csv","csv":{"fields":["sub"]}}`, `{"reason":"r"}`, `{"client_id":"idstream-dev","session_type":"cookie","x":1}`,
		"grant_type=urn:authgear:params:oauth:grant-type:anonymous-request&client_id=idstream-dev&jwt=a.b.c", `[]`, `{"format":null}`} {
		f.Add(uint8(i), body)
	}
	hc := &http.Client{}
	f.Fuzz(func(t *testing.T, i uint8, body string) {
		target := fuzzTargets[int(i)%len(fuzzTargets)]
		req, err := http.NewRequest(target.method, n.URL+target.path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", target.contentType)
		req.Header.Set("Authorization", "Bearer "+apitest.AdminKey)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %q: %d %s", target.path, body, resp.StatusCode, raw)
		}
		if resp.StatusCode >= 400 {
			var e struct {
				Error  any    `json:"error"`
				Reason string `json:"reason"`
			}
			if json.Unmarshal(raw, &e) != nil || e.Error == nil {
				t.Fatalf("%s %q: %d answer is not a JSON error: %s", target.path, body, resp.StatusCode, raw)
			}
			if m, ok := e.Error.(map[string]any); ok && m["reason"] == "" || !ok && e.Reason == "" {
				t.Fatalf("%s %q: error without a reason: %s", target.path, body, raw)
			}
		}
	})
}
