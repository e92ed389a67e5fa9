package httpx

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ClientIP is the address rate limits count under: the socket's peer, unless
// the peer is a configured trusted proxy, in which case X-Forwarded-For is
// read from the right, skipping trusted proxies, and the first other address
// is the client. A malformed header, or one from an untrusted peer, is
// ignored: a client cannot choose its own address.
func (b *Base) ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !b.trusted(peer) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	var all []string
	for _, h := range hops {
		all = append(all, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(all) - 1; i >= 0; i-- {
		a, ok := parseHop(all[i])
		if !ok {
			break
		}
		client = a
		if !b.trusted(client) {
			break
		}
	}
	return client.String()
}

// parseHop reads one X-Forwarded-For entry: ip, ip:port, [ipv6] or
// [ipv6]:port (proxies differ in which they write). The port and any zone
// are dropped, so that one client is one rate-limit bucket whatever port it
// came from.
func parseHop(h string) (netip.Addr, bool) {
	h = strings.TrimSpace(h)
	a, err := netip.ParseAddr(h)
	if err != nil {
		if inner, ok := strings.CutPrefix(h, "["); ok && strings.HasSuffix(inner, "]") {
			a, err = netip.ParseAddr(strings.TrimSuffix(inner, "]"))
		} else {
			var ap netip.AddrPort
			ap, err = netip.ParseAddrPort(h)
			a = ap.Addr()
		}
	}
	if err != nil || !a.IsValid() {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

func (b *Base) trusted(a netip.Addr) bool {
	for _, p := range b.proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
