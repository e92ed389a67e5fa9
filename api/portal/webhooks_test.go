package portal_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// TestPortalWebhooks: an operator creates an endpoint in the portal (the
// secret shown once), sees its dead letters and replays them all.
func TestPortalWebhooks(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.WithOperator(c)
		c.Webhooks.InitialBackoff = config.Duration(50 * time.Millisecond)
		c.Webhooks.MaxBackoff = config.Duration(200 * time.Millisecond)
		c.Webhooks.MaxRetryAge = config.Duration(time.Second)
		c.Webhooks.BreakerCooldown = config.Duration(500 * time.Millisecond)
	}})
	var up atomic.Bool
	var accepted atomic.Int32
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !up.Load() {
			w.WriteHeader(500)
			return
		}
		accepted.Add(1)
	}))
	defer recv.Close()
	p, c := apitest.PortalClient(t, n), apitest.NewClient(t, n)
	f := apitest.FormOf(t, p.Get("/portal/webhooks"))
	f.Set("url", recv.URL+"/in")
	f.Set("event_types", "user.anonymous.created")
	created := p.PostForm("/portal/webhooks", f)
	secret := regexp.MustCompile(`<code>(whsec_[^<]+)</code>`).FindStringSubmatch(created.Raw)
	id := regexp.MustCompile(`action="/portal/webhooks/([0-9a-f-]{36})/state"`).FindStringSubmatch(created.Raw)
	if created.Status != 201 || secret == nil || id == nil {
		t.Fatalf("create: %d %s", created.Status, created.Raw)
	}
	secret[1] = html.UnescapeString(secret[1])
	testenv.RecordSecret("webhook secret", secret[1])
	apitest.Signup(t, c)
	page := func() apitest.Response { return p.Get("/portal/webhooks/" + id[1]) }
	testenv.WaitFor(t, "a dead letter on the endpoint's page", 30*time.Second, func() bool {
		// The counters and last errors are written about once a second.
		pg := page().Raw
		return strings.Contains(pg, "/dead_letters/replay") && strings.Contains(pg, "receiver answered 500")
	})
	pg := page()
	if strings.Contains(html.UnescapeString(pg.Raw), secret[1]) || !strings.Contains(pg.Raw, "receiver answered 500") || !strings.Contains(pg.Raw, "user.anonymous.created.v1") {
		t.Fatalf("endpoint page: %s", pg.Raw)
	}
	if list := p.Get("/portal/webhooks"); !strings.Contains(list.Raw, recv.URL+"/in") || strings.Contains(html.UnescapeString(list.Raw), secret[1]) {
		t.Fatalf("list: %s", list.Raw)
	}
	up.Store(true)
	if r := p.PostForm("/portal/webhooks/"+id[1]+"/dead_letters/replay", apitest.FormOf(t, pg)); r.Status != 303 {
		t.Fatalf("replay all: %d %s", r.Status, r.Raw)
	}
	testenv.WaitFor(t, "the replayed delivery", 30*time.Second, func() bool { return accepted.Load() == 1 })
	testenv.WaitFor(t, "no dead letters left", 10*time.Second, func() bool { return strings.Contains(page().Raw, "No dead letters.") })
}
