package httpx

import (
	"net/http"
	"net/netip"
	"testing"
)

// TestClientIPForwardedForForms: behind a trusted proxy, an X-Forwarded-For
// entry with a port (or an IPv6 one in brackets) is the client, not a
// reason to fall back to the proxy, which would put every client in one
// rate-limit bucket.
func TestClientIPForwardedForForms(t *testing.T) {
	s := &Base{proxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	for _, tc := range []struct{ peer, xff, want string }{
		{"10.0.0.1:4000", "203.0.113.7", "203.0.113.7"},
		{"10.0.0.1:4000", "203.0.113.7:51234", "203.0.113.7"},
		{"10.0.0.1:4000", " 203.0.113.7:51234 ", "203.0.113.7"},
		{"10.0.0.1:4000", "2001:db8::1", "2001:db8::1"},
		{"10.0.0.1:4000", "[2001:db8::1]", "2001:db8::1"},
		{"10.0.0.1:4000", "[2001:db8::1]:443", "2001:db8::1"},
		{"10.0.0.1:4000", "[::ffff:203.0.113.7]:443", "203.0.113.7"},
		{"10.0.0.1:4000", "fe80::1%eth0", "fe80::1"},
		{"[fd00::2]:4000", "[2001:db8::1]:443", "2001:db8::1"},
		// Rightmost untrusted hop, with or without ports on the way.
		{"10.0.0.1:4000", "192.0.2.99:1, 203.0.113.7:51234, 10.0.0.9:80", "203.0.113.7"},
		{"10.0.0.1:4000", "192.0.2.99, [2001:db8::1]:443, [fd00::9]:80", "2001:db8::1"},
		// Malformed: the last good hop (here the proxy itself) counts.
		{"10.0.0.1:4000", "203.0.113.7:port", "10.0.0.1"},
		{"10.0.0.1:4000", "[2001:db8::1", "10.0.0.1"},
		{"10.0.0.1:4000", "2001:db8::1]:443", "10.0.0.1"},
		{"10.0.0.1:4000", "unknown", "10.0.0.1"},
		{"10.0.0.1:4000", "", "10.0.0.1"},
		{"10.0.0.1:4000", "203.0.113.7, garbage, 10.0.0.5", "10.0.0.5"},
		// An untrusted peer's header is ignored.
		{"198.51.100.1:4000", "203.0.113.7:51234", "198.51.100.1"},
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := s.ClientIP(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}
