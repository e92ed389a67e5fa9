package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/idstream/idstream/api"
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
	c := newClient(t, n)
	r := c.do(http.MethodGet, "/openapi.json", "", "", nil)
	var parsed map[string]any
	if r.status != 200 || json.Unmarshal([]byte(r.raw), &parsed) != nil || parsed["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.json: %d", r.status)
	}
	page := c.do(http.MethodGet, "/docs", "", "", nil)
	if page.status != 200 || !strings.Contains(page.raw, "POST /api/anonymous_user/promote") {
		t.Fatalf("/docs: %d", page.status)
	}
}
