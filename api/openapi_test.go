package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/idstream/idstream/api"
	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/testenv"
)

// The API reference and the router must agree, route for route.
func TestOpenAPIMatchesRouter(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	routes, doc := n.API.Routes(), api.OpenAPIPaths()
	for _, r := range routes {
		if !slices.Contains(doc, r) {
			t.Errorf("served but not documented: %s", r)
		}
	}
	for _, d := range doc {
		if !slices.Contains(routes, d) {
			t.Errorf("documented but not served: %s", d)
		}
	}
	c := apitest.NewClient(t, n)
	r := c.Do(http.MethodGet, "/openapi.json", "", "", nil)
	var parsed map[string]any
	if r.Status != 200 || json.Unmarshal([]byte(r.Raw), &parsed) != nil || parsed["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.json: %d", r.Status)
	}
	page := c.Do(http.MethodGet, "/docs", "", "", nil)
	if page.Status != 200 || !strings.Contains(page.Raw, "POST /api/anonymous_user/promote") {
		t.Fatalf("/docs: %d", page.Status)
	}
}
