package sdk_test

import (
	"context"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/testenv"
)

func TestSignupLimitSharedAcrossNodes(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: apitest.Limits(5)})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: apitest.Limits(5), Clock: a.Clock})
	ca, cb := apitest.NewClient(t, a), apitest.NewClient(t, b)
	// Nodes decide locally and settle every 50 ms; flushing by hand makes
	// the settling explicit here.
	sync := func() {
		for _, n := range []*testenv.Node{a, b, a} {
			if err := n.Limiter.Flush(context.Background(), a.Clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i := range 5 {
		c := ca
		if i >= 3 {
			c = cb
		}
		if r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil); r.Status != 200 {
			t.Fatalf("sign-up %d: %d %s", i, r.Status, r.Raw)
		}
		if i == 2 {
			sync()
		}
	}
	sync()
	before := apitest.LastSeq(t, a)
	for _, c := range []*apitest.Client{ca, cb} {
		r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil)
		if r.Status != 429 || r.Reason() != "RateLimited" || r.Header.Get("Retry-After") == "" {
			t.Fatalf("over the shared budget: %d %v %s", r.Status, r.Header, r.Raw)
		}
	}
	if apitest.LastSeq(t, a) != before {
		t.Fatal("a limited sign-up wrote events")
	}
	// The bucket refills: one more after 12 s (60 s / 5).
	a.Clock.Advance(12 * time.Second)
	sync()
	if r := cb.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil); r.Status != 200 {
		t.Fatalf("after refill: %d %s", r.Status, r.Raw)
	}
	// The challenge endpoint has its own budget.
	for range 5 {
		cb.Challenge()
	}
	sync()
	if r := ca.PostJSON("/oauth2/challenge", `{"purpose":"anonymous_request"}`, nil); r.Status != 429 {
		t.Fatalf("challenge limit: %d", r.Status)
	}
}

func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	// Untrusted peer: X-Forwarded-For is ignored, so spoofing it does not
	// buy a new budget.
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.Limits(2)})
	c := apitest.NewClient(t, n)
	for i, ip := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		r := c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"X-Forwarded-For": ip})
		if (i < 2) != (r.Status == 200) {
			t.Fatalf("untrusted peer, spoofed %s: %d", ip, r.Status)
		}
	}
	// Behind a trusted proxy (loopback here), each client has its own budget.
	p := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.Limits(2, "127.0.0.0/8", "::1/128")})
	cp := apitest.NewClient(t, p)
	for range 2 {
		if r := cp.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"X-Forwarded-For": "203.0.113.7"}); r.Status != 200 {
			t.Fatalf("client behind proxy: %d", r.Status)
		}
	}
	if r := cp.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"X-Forwarded-For": "203.0.113.7"}); r.Status != 429 {
		t.Fatalf("client behind proxy over budget: %d", r.Status)
	}
	// A client cannot prepend its own choice: the rightmost untrusted hop counts.
	if r := cp.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"X-Forwarded-For": "192.0.2.99, 203.0.113.7"}); r.Status != 429 {
		t.Fatalf("prepended address accepted: %d", r.Status)
	}
	if r := cp.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"X-Forwarded-For": "203.0.113.8"}); r.Status != 200 {
		t.Fatalf("another client behind the proxy: %d", r.Status)
	}
}

// TestForwardedForWithPorts: behind a trusted proxy that writes ports (or
// bracketed IPv6), each client still has its own budget; its port does not
// give it a new one.
func TestForwardedForWithPorts(t *testing.T) {
	p := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.Limits(2, "127.0.0.0/8", "::1/128")})
	c := apitest.NewClient(t, p)
	signupFrom := func(xff string) int {
		return c.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, map[string]string{"X-Forwarded-For": xff}).Status
	}
	for _, xff := range []string{"203.0.113.7:51234", "203.0.113.7:51235"} {
		if st := signupFrom(xff); st != 200 {
			t.Fatalf("%s: %d", xff, st)
		}
	}
	if st := signupFrom("203.0.113.7:6000"); st != 429 {
		t.Fatalf("same client, another port, over budget: %d", st)
	}
	// The proxy's own bucket, and other clients', are untouched.
	for _, xff := range []string{"[2001:db8::1]:443", "[2001:db8::1]", "198.51.100.20:1"} {
		if st := signupFrom(xff); st != 200 {
			t.Fatalf("%s: %d (fell back to the proxy's bucket?)", xff, st)
		}
	}
	if st := signupFrom("2001:db8::1"); st != 429 {
		t.Fatalf("[2001:db8::1] and 2001:db8::1 are one client: %d", st)
	}
}
