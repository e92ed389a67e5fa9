package webhooks

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Header names of a delivery.
const (
	HeaderID                = "webhook-id"
	HeaderTimestamp         = "webhook-timestamp"
	HeaderSignature         = "webhook-signature"
	HeaderAuthgearSignature = "x-authgear-body-signature"
)

// signHeaders sets the Standard Webhooks headers (one v1 signature per
// secret, space separated) and Authgear's body signature (hex HMAC-SHA256
// of the body, keyed by the current secret string as shown).
func signHeaders(h http.Header, id string, ts time.Time, body []byte, secrets []string) error {
	unix := strconv.FormatInt(ts.Unix(), 10)
	signed := make([]byte, 0, len(id)+len(unix)+len(body)+2)
	signed = append(append(append(append(append(signed, id...), '.'), unix...), '.'), body...)
	var sigs []string
	for _, s := range secrets {
		k, err := secretKey(s)
		if err != nil {
			return err
		}
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(signWith(k, signed)))
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, unix)
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	h.Set(HeaderAuthgearSignature, hex.EncodeToString(signWith([]byte(secrets[0]), body)))
	return nil
}

// deliveryError is a failed attempt: what the receiver answered, or why
// there was no answer.
type deliveryError struct {
	status     int
	retryAfter time.Duration
	err        error
}

func (e *deliveryError) Error() string {
	if e.status != 0 {
		return fmt.Sprintf("receiver answered %d", e.status)
	}
	return e.err.Error()
}

func (e *deliveryError) Unwrap() error { return e.err }

// ErrGone: the receiver answered 410 Gone; the endpoint is disabled.
var ErrGone = errors.New("webhooks: receiver answered 410 Gone")

// ErrRefusedAddress: the URL resolved to an address deliveries may not go to.
var ErrRefusedAddress = errors.New("webhooks: address refused")

// maxResponseBytes bounds how much of a receiver's answer is read.
const maxResponseBytes = 64 << 10

// newClient is the HTTP client of deliveries: no proxy from the
// environment, no redirects followed, and, unless allowPrivate, a dial that
// refuses loopback, private, link-local and other non-public addresses as
// resolved at connect time (so DNS cannot point a public name inward).
func newClient(allowPrivate bool, timeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = refuseNonPublic
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// refuseNonPublic is a net.Dialer Control: it sees the address actually
// dialled.
func refuseNonPublic(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrRefusedAddress, address)
	}
	if !publicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s is not a public address", ErrRefusedAddress, ap.Addr())
	}
	return nil
}

var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range []string{"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "240.0.0.0/4", "64:ff9b::/96", "64:ff9b:1::/48", "2001:db8::/32", "100::/64",
		// IPv6 forms that carry an IPv4 address (IPv4-compatible, 6to4,
		// Teredo): what they reach depends on the routes, so none is
		// taken as public.
		"::/96", "2002::/16", "2001::/32"} {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}()

func publicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() || a.IsMulticast() ||
		a.IsUnspecified() || a.IsInterfaceLocalMulticast() || !a.IsValid() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// post sends one delivery and reads at most maxResponseBytes of the answer.
func post(ctx context.Context, c *http.Client, url string, h http.Header, body []byte, now time.Time) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return &deliveryError{err: err}
	}
	req.Header = h
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "idstream-webhooks/1")
	resp, err := c.Do(req)
	if err != nil {
		return &deliveryError{err: scrub(err)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		return &deliveryError{status: resp.StatusCode, err: ErrGone}
	}
	return &deliveryError{status: resp.StatusCode, retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), now),
		err: fmt.Errorf("receiver answered %d", resp.StatusCode)}
}

// scrub keeps the cause of a transport error without the URL, which may
// carry a receiver's token in its query.
func scrub(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or
// unreadable.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
