package webhooks_test

import (
	"context"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/workers/webhooks"
)

// TestConfiguredEndpointFollowsTheFile: an endpoint of the configuration
// file is delivered to while the file lists it; restarted without it, the
// node disables it (a receiver taken out of the file, its domain perhaps
// given up, gets nothing more), keeping its position; listed again, it is
// enabled and catches up from where it was.
func TestConfiguredEndpointFollowsTheFile(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	configured := newReceiver(t, nil, 0)
	secret, err := webhooks.NewSecret(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	testenv.RecordSecret("webhook secret", secret)
	const id = "5b0c9a4e-9d0e-4a43-9a55-2f7a3c1e6b10"
	withEndpoint := func(c *config.Config) {
		configure(time.Hour)(c)
		c.Webhooks.Endpoints = []config.WebhookEndpoint{{ID: id, URL: configured.srv.URL, EventTypes: []string{"user.anonymous.created"}, Secret: secret}}
	}
	delivered := func(sub string) bool {
		firsts, _, _ := configured.accepted()
		for _, d := range firsts {
			if d.p.Sub == sub {
				return true
			}
		}
		return false
	}

	a := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: withEndpoint, DatabaseURL: dbURL})
	first := signUp(t, a.URL)
	testenv.WaitFor(t, "a delivery while the file lists the endpoint", 30*time.Second, func() bool { return delivered(first.sub) })
	a.Close(context.Background())

	// Taken out of the file: disabled, and another endpoint (made through
	// the API) gets the next event while this one does not.
	b := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: configure(time.Hour), DatabaseURL: dbURL})
	if ep := getEndpoint(t, b.URL, id); ep["state"] != "disabled" || ep["state_reason"] != "no longer in the configuration file" {
		t.Fatalf("after the file dropped it: %v", ep)
	}
	other := newReceiver(t, nil, 0)
	createEndpoint(t, b.URL, map[string]any{"url": other.srv.URL, "event_types": []string{"user.anonymous.created"}})
	second := signUp(t, b.URL)
	testenv.WaitFor(t, "the API endpoint's delivery", 30*time.Second, func() bool {
		firsts, _, _ := other.accepted()
		return len(firsts) > 0 && firsts[len(firsts)-1].p.Sub == second.sub
	})
	if delivered(second.sub) {
		t.Fatal("an endpoint the file no longer lists received an event")
	}
	b.Close(context.Background())

	// Listed again: enabled, and what it missed arrives.
	c := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: withEndpoint, DatabaseURL: dbURL})
	if ep := getEndpoint(t, c.URL, id); ep["state"] != "enabled" || ep["state_reason"] != nil && ep["state_reason"] != "" {
		t.Fatalf("listed again: %v", ep)
	}
	testenv.WaitFor(t, "the event it missed", 30*time.Second, func() bool { return delivered(second.sub) })

	// Paused by the operator, taken out and listed again: paused still.
	if a := call(t, http.MethodPatch, c.URL+"/admin/webhooks/"+id, "application/json", `{"state":"paused"}`, adminKey); a.status != 200 {
		t.Fatalf("pause: %d %s", a.status, a.raw)
	}
	c.Close(context.Background())
	d := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: configure(time.Hour), DatabaseURL: dbURL})
	if ep := getEndpoint(t, d.URL, id); ep["state"] != "disabled" {
		t.Fatalf("a paused endpoint the file dropped: %v", ep)
	}
	d.Close(context.Background())
	e := testenv.StartNode(t, ns, testenv.NodeOptions{Configure: withEndpoint, DatabaseURL: dbURL})
	if ep := getEndpoint(t, e.URL, id); ep["state"] != "paused" {
		t.Fatalf("a paused endpoint listed again: %v", ep)
	}
}
