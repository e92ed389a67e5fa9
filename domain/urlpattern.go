package domain

import (
	"net/url"
	"strings"
)

// MatchURL reports whether a URL matches a pattern: exactly, or, for a
// pattern with port "*", with any port on the same scheme and host and, when
// the pattern has a path, the same path. Origins have no path.
func MatchURL(pattern, candidate string) bool {
	if pattern == candidate {
		return true
	}
	if !strings.Contains(pattern, ":*") {
		return false
	}
	pu, err1 := url.Parse(strings.Replace(pattern, ":*", ":1", 1))
	cu, err2 := url.Parse(candidate)
	if err1 != nil || err2 != nil || cu.Port() == "" || cu.User != nil {
		return false
	}
	if pu.Scheme != cu.Scheme || pu.Hostname() != cu.Hostname() {
		return false
	}
	// A pattern without a path allows any path on that origin (development).
	if pu.Path != "" && pu.Path != cu.Path {
		return false
	}
	return cu.RawQuery == "" && cu.Fragment == ""
}

// AllowsOrigin reports whether the client allows a CORS origin.
func (cl ClientSettings) AllowsOrigin(origin string) bool {
	for _, p := range cl.AllowedOrigins {
		if MatchURL(p, origin) {
			return true
		}
	}
	return false
}

// AllowsRedirect reports whether the client allows a redirect URI.
func (cl ClientSettings) AllowsRedirect(uri string) bool {
	for _, p := range cl.RedirectURIs {
		if MatchURL(p, uri) {
			return true
		}
	}
	return false
}
