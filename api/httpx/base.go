// Package httpx is the plumbing every HTTP package of idstream shares:
// the middleware chain (request id, recovery, access log, body limit,
// latency histogram), the client IP behind trusted proxies, strict request
// decoding, the one error table with its renderers (the Authgear JSON
// shape, the OAuth shape, and the sentence a page shows keyed by reason),
// bearer parsing and the envelope metadata of a request. It serves no
// route of its own.
package httpx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/eventstore"
)

// LogReader is what the HTTP packages read from the log directly (health,
// admin timeline, projection status).
type LogReader interface {
	LastSequence(ctx context.Context) (uint64, error)
	Get(ctx context.Context, seq uint64) (eventstore.Record, error)
	Load(ctx context.Context, subject string) ([]eventstore.Record, uint64, error)
	Subject(kind, id string) string
}

// Base is what every sub-server embeds: the logger errors are logged to
// and the trusted proxies client addresses are read behind.
type Base struct {
	Log     *slog.Logger
	proxies []netip.Prefix
}

// NewBase parses the trusted proxy prefixes.
func NewBase(log *slog.Logger, trustedProxies []string) (*Base, error) {
	if log == nil {
		return nil, errors.New("httpx: a logger is required")
	}
	b := &Base{Log: log}
	for _, p := range trustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, fmt.Errorf("api: trusted proxy %q: %w", p, err)
		}
		b.proxies = append(b.proxies, prefix)
	}
	return b, nil
}

type ctxKey int

const requestIDKey ctxKey = 0

// RequestID is the request's id (X-Request-Id, or one made up).
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// Bearer returns the access token of an Authorization header.
func Bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// AccessToken returns the access token of an Authorization header of
// either scheme, Bearer (RFC 6750) or DPoP (RFC 9449 §7.1), and which.
func AccessToken(r *http.Request) (token string, dpop bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 5 && strings.EqualFold(h[:5], "dpop ") {
		return strings.TrimSpace(h[5:]), true
	}
	return Bearer(r), false
}

// Meta is the envelope metadata of what the request causes: its request id
// as correlation id and the actor set by WithActor.
func Meta(r *http.Request) app.Meta {
	actor, _ := r.Context().Value(actorKey{}).(string)
	return app.Meta{CorrelationID: RequestID(r.Context()), Actor: actor}
}

// actorKey holds the operator a request acts for.
type actorKey struct{}

// WithActor names the operator a request acts for.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// CodeRequest is where a one-time code request comes from: the client's
// address, its language (Accept-Language, bounded) and the request's
// metadata.
func (b *Base) CodeRequest(r *http.Request) app.CodeRequest {
	loc := r.Header.Get("Accept-Language")
	if len(loc) > 100 {
		loc = loc[:100]
	}
	return app.CodeRequest{IP: b.ClientIP(r), Locale: loc, Meta: Meta(r)}
}
