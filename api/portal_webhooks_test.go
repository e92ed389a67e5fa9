package api_test

import (
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// TestPortalWebhooks: an operator creates an endpoint in the portal (the
// secret shown once), sees its dead letters and replays them all.
func TestPortalWebhooks(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		withOperator(c)
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
	p, c := portalClient(t, n), newClient(t, n)
	f := formOf(t, p.get("/portal/webhooks"))
	f.Set("url", recv.URL+"/in")
	f.Set("event_types", "user.anonymous.created")
	created := p.postForm("/portal/webhooks", f)
	secret := regexp.MustCompile(`<code>(whsec_[^<]+)</code>`).FindStringSubmatch(created.raw)
	id := regexp.MustCompile(`action="/portal/webhooks/([0-9a-f-]{36})/state"`).FindStringSubmatch(created.raw)
	if created.status != 201 || secret == nil || id == nil {
		t.Fatalf("create: %d %s", created.status, created.raw)
	}
	secret[1] = html.UnescapeString(secret[1])
	testenv.RecordSecret("webhook secret", secret[1])
	signup(t, c)
	page := func() response { return p.get("/portal/webhooks/" + id[1]) }
	testenv.WaitFor(t, "a dead letter on the endpoint's page", 30*time.Second, func() bool {
		// The counters and last errors are written about once a second.
		pg := page().raw
		return strings.Contains(pg, "/dead_letters/replay") && strings.Contains(pg, "receiver answered 500")
	})
	pg := page()
	if strings.Contains(html.UnescapeString(pg.raw), secret[1]) || !strings.Contains(pg.raw, "receiver answered 500") || !strings.Contains(pg.raw, "user.anonymous.created.v1") {
		t.Fatalf("endpoint page: %s", pg.raw)
	}
	if list := p.get("/portal/webhooks"); !strings.Contains(list.raw, recv.URL+"/in") || strings.Contains(html.UnescapeString(list.raw), secret[1]) {
		t.Fatalf("list: %s", list.raw)
	}
	up.Store(true)
	if r := p.postForm("/portal/webhooks/"+id[1]+"/dead_letters/replay", formOf(t, pg)); r.status != 303 {
		t.Fatalf("replay all: %d %s", r.status, r.raw)
	}
	testenv.WaitFor(t, "the replayed delivery", 30*time.Second, func() bool { return accepted.Load() == 1 })
	testenv.WaitFor(t, "no dead letters left", 10*time.Second, func() bool { return strings.Contains(page().raw, "No dead letters.") })
}
