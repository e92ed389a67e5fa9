package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

const metricsToken = "metrics-token-0123456789abcdefghijklmnop"

func getMetrics(t *testing.T, url, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw), resp.Header
}

// isMetrics reports whether an answer is the Prometheus exposition.
func isMetrics(body string) bool {
	return strings.Contains(body, "# TYPE go_goroutines gauge")
}

// TestMetricsAccess: /metrics is open on the main listener in development
// mode only; outside it, the main listener asks for the metrics token
// (compared whole), or serves no metrics when they have a listener of
// their own.
func TestMetricsAccess(t *testing.T) {
	testenv.RecordSecret("metrics token", metricsToken) // never in a log
	ns := testenv.StartNATS(t)
	production := func(more func(*config.Config)) testenv.NodeOptions {
		return testenv.NodeOptions{Configure: func(c *config.Config) {
			c.Dev = false
			if more != nil {
				more(c)
			}
		}}
	}

	// Development mode: open.
	dev := testenv.StartNode(t, ns, testenv.NodeOptions{})
	if st, body, _ := getMetrics(t, dev.URL+"/metrics", ""); st != 200 || !isMetrics(body) {
		t.Fatalf("development mode: %d", st)
	}

	// Production without a token: refused, and the log says how to turn
	// metrics on.
	closed := testenv.StartNode(t, ns, production(nil))
	for _, auth := range []string{"", "Bearer ", "Bearer x"} {
		if st, body, h := getMetrics(t, closed.URL+"/metrics", auth); st != 401 || isMetrics(body) || h.Get("WWW-Authenticate") == "" ||
			!strings.Contains(body, `"reason":"InvalidToken"`) {
			t.Fatalf("production, no token configured, %q: %d %s", auth, st, body)
		}
	}
	if !strings.Contains(closed.Logs.String(), "IDSTREAM_METRICS_TOKEN") {
		t.Error("no warning that metrics are closed")
	}

	// Production with a token: only the whole token opens it.
	tok := testenv.StartNode(t, ns, production(func(c *config.Config) { c.MetricsToken = metricsToken }))
	for _, auth := range []string{"", "Bearer " + metricsToken[:len(metricsToken)-1], "Bearer " + metricsToken + "x",
		"Bearer " + strings.ToUpper(metricsToken), "Basic " + metricsToken, metricsToken} {
		if st, body, _ := getMetrics(t, tok.URL+"/metrics", auth); st != 401 || isMetrics(body) {
			t.Fatalf("production, token %q: %d", auth, st)
		}
	}
	for _, auth := range []string{"Bearer " + metricsToken, "bearer " + metricsToken} {
		if st, body, _ := getMetrics(t, tok.URL+"/metrics", auth); st != 200 || !isMetrics(body) {
			t.Fatalf("production, the token: %d", st)
		}
	}

	// A token configured in development mode is required there too.
	devTok := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: func(c *config.Config) { c.MetricsToken = metricsToken }})
	if st, _, _ := getMetrics(t, devTok.URL+"/metrics", ""); st != 401 {
		t.Fatalf("development mode with a token, none sent: %d", st)
	}

	// A listener of their own: metrics there, none on the main listener.
	own := testenv.StartNode(t, ns, production(func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0" }))
	if own.MetricsURL == "" || own.MetricsURL == own.URL {
		t.Fatalf("metrics URL %q", own.MetricsURL)
	}
	if st, body, _ := getMetrics(t, own.URL+"/metrics", ""); st != 404 || isMetrics(body) {
		t.Fatalf("main listener with metrics_addr: %d", st)
	}
	if st, body, _ := getMetrics(t, own.MetricsURL+"/metrics", ""); st != 200 || !isMetrics(body) {
		t.Fatalf("metrics listener: %d", st)
	}
	for _, path := range []string{"/", "/healthz", "/api/anonymous_user/signup", "/portal"} {
		if st, _, _ := getMetrics(t, own.MetricsURL+path, ""); st != 404 {
			t.Fatalf("metrics listener serves %s: %d", path, st)
		}
	}
	// ... where a configured token is required as well.
	both := testenv.StartNode(t, ns, production(func(c *config.Config) { c.MetricsAddr = "127.0.0.1:0"; c.MetricsToken = metricsToken }))
	if st, _, _ := getMetrics(t, both.MetricsURL+"/metrics", ""); st != 401 {
		t.Fatalf("metrics listener with a token, none sent: %d", st)
	}
	if st, body, _ := getMetrics(t, both.MetricsURL+"/metrics", "Bearer "+metricsToken); st != 200 || !isMetrics(body) {
		t.Fatalf("metrics listener with the token: %d", st)
	}
}
