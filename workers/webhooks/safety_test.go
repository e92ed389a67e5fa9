package webhooks

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPublicAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1": false, "127.3.4.5": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "100.64.0.1": false, "0.0.0.0": false, "::": false,
		"::ffff:127.0.0.1": false, "::127.0.0.1": false, "2002:7f00:1::1": false, "2002:a9fe:a9fe::1": false, "2001:0:4136:e378::1": false, "::ffff:10.0.0.1": false, "224.0.0.1": false, "192.0.2.1": false, "198.18.0.1": false,
		"240.0.0.1": false, "64:ff9b::a00:1": false,
		// Public addresses are only parsed here, never dialled.
		"8.8.8.8": true, "2606:4700::1111": true, "93.184.216.34": true,
	} {
		if got := publicAddr(netip.MustParseAddr(addr)); got != want {
			t.Errorf("publicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestRefusedAtDialTime: outside development mode a URL naming loopback,
// by address or by a name that resolves to it, is refused when the
// connection is made, and the receiver sees nothing.
func TestRefusedAtDialTime(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits.Add(1) }))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	c := newClient(false, 5*time.Second)
	for _, u := range []string{srv.URL, "http://localhost" + port, "http://[::1]" + port, "http://0.0.0.0" + port} {
		err := post(context.Background(), c, u, http.Header{}, []byte(`{}`), time.Now())
		if !errors.Is(err, ErrRefusedAddress) {
			t.Fatalf("%s: %v, want a refusal", u, err)
		}
	}
	if hits.Load() != 0 {
		t.Fatalf("the receiver got %d requests", hits.Load())
	}
	// The development allowance reaches it.
	if err := post(context.Background(), newClient(true, 5*time.Second), srv.URL, http.Header{}, []byte(`{}`), time.Now()); err != nil || hits.Load() != 1 {
		t.Fatalf("development mode: %v, %d hits", err, hits.Load())
	}
}

// TestNoRedirectsAndBoundedBody: a redirect is a failed attempt (not
// followed), and a huge answer is read only to the bound.
func TestNoRedirectsAndBoundedBody(t *testing.T) {
	var target atomic.Int32
	dst := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { target.Add(1) }))
	defer dst.Close()
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, dst.URL, http.StatusTemporaryRedirect)
	}))
	defer redirect.Close()
	c := newClient(true, 5*time.Second)
	err := post(context.Background(), c, redirect.URL, http.Header{}, []byte(`{}`), time.Now())
	var de *deliveryError
	if !errors.As(err, &de) || de.status != http.StatusTemporaryRedirect || target.Load() != 0 {
		t.Fatalf("redirect: %v, target hit %d times", err, target.Load())
	}
	var written atomic.Int64
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 32<<10)
		for range 1024 { // 32 MiB offered
			n, err := w.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer huge.Close()
	if err := post(context.Background(), c, huge.URL, http.Header{}, []byte(`{}`), time.Now()); err != nil {
		t.Fatalf("huge answer: %v", err)
	}
	huge.CloseClientConnections()
	// The server could push what the socket buffers held, far from 32 MiB.
	if w := written.Load(); w >= 16<<20 {
		t.Fatalf("%d bytes of the answer were taken", w)
	}
}

func TestRetryAfterAndPatterns(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{"": 0, "7": 7 * time.Second, "x": 0, "-1": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second, now.Add(-time.Hour).Format(http.TimeFormat): 0} {
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", v, got, want)
		}
	}
	for _, c := range []struct {
		p, typ string
		want   bool
	}{{"*", "user.deleted.v1", true}, {"user.*", "user.anonymous.created.v1", true}, {"user.*", "session.started.v1", false},
		{"user.promoted", "user.promoted.v2", true}, {"user.promoted", "user.promoted_x.v1", false},
		{"user.promoted.v1", "user.promoted.v2", false}, {"*.expired", "user.anonymous.expired.v1", true},
		{"session.started.v1", "session.started.v1", true}} {
		if got := matchType(c.p, c.typ); got != c.want {
			t.Errorf("matchType(%q, %q) = %v", c.p, c.typ, got)
		}
	}
	e := Endpoint{EventTypes: []string{"user.*"}, ClientIDs: []string{"web"}}
	if !e.Wants("user.deleted.v1", "web") || e.Wants("user.deleted.v1", "app") || e.Wants("user.deleted.v1", "") {
		t.Fatal("client filter")
	}
}

func TestSpecValidation(t *testing.T) {
	s := func(v string) *string { return &v }
	l := func(v ...string) *[]string { return &v }
	for _, sp := range []Spec{{}, {URL: s("ftp://x"), EventTypes: l("*")}, {URL: s("https://u:p@x"), EventTypes: l("*")},
		{URL: s("https://x"), EventTypes: l()}, {URL: s("https://x"), EventTypes: l("User.*")},
		{URL: s("https://x"), EventTypes: l("*"), State: s("disabled")}, {URL: s("https://x"), EventTypes: l("*"), StartFrom: s("yesterday")}} {
		if err := validateSpec(sp, true); !errors.Is(err, ErrInvalidEndpoint) {
			t.Errorf("%+v accepted", sp)
		}
	}
	if err := validateSpec(Spec{URL: s("https://x/h"), EventTypes: l("user.*"), StartFrom: s("2026-01-01T00:00:00Z")}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := secretKey("whsec_c2hvcnQ="); !errors.Is(err, ErrInvalidEndpoint) {
		t.Fatal("a short secret was taken")
	}
}
