package config

import (
	"fmt"
	"time"
)

// Webhooks configures event delivery to HTTP endpoints (issue 21). Zero
// values take the defaults.
type Webhooks struct {
	// Disabled turns delivery off on this node (the admin API still
	// registers endpoints; another node delivers).
	Disabled bool `yaml:"disabled"`
	// MaxRetryAge: how long a failing delivery is retried before it is
	// dead-lettered (default 24h).
	MaxRetryAge Duration `yaml:"max_retry_age"`
	// Timeout of one attempt (default 10s).
	Timeout Duration `yaml:"timeout"`
	// InitialBackoff and MaxBackoff shape the retries (default 1s, 10m).
	InitialBackoff Duration `yaml:"initial_backoff"`
	MaxBackoff     Duration `yaml:"max_backoff"`
	// Lanes: requests one endpoint has in flight at once (default 8).
	Lanes int `yaml:"lanes"`
	// MaxDeadLetters: dead letters kept per endpoint (default 100,000).
	// Once an endpoint has that many, a delivery that gives up waits (and
	// is tried again) instead of being dropped or dropping an older one.
	MaxDeadLetters int `yaml:"max_dead_letters"`
	// BreakerFailures consecutive failed attempts open an endpoint's
	// circuit for BreakerCooldown (default 10, 30s).
	BreakerFailures int      `yaml:"breaker_failures"`
	BreakerCooldown Duration `yaml:"breaker_cooldown"`
	// AllowPrivateAddresses lets deliveries reach loopback and private
	// addresses outside development mode (development mode always does).
	AllowPrivateAddresses bool `yaml:"allow_private_addresses"`
	// Endpoints registered by configuration (state and position are kept in
	// the database; URL, filters and secret follow this file).
	Endpoints []WebhookEndpoint `yaml:"endpoints"`
}

// WebhookEndpoint is one configured endpoint.
type WebhookEndpoint struct {
	// ID is a UUID the operator picks, stable across restarts.
	ID         string   `yaml:"id"`
	URL        string   `yaml:"url"`
	EventTypes []string `yaml:"event_types"`
	ClientIDs  []string `yaml:"client_ids"`
	// Secret is a Standard Webhooks secret (whsec_ and base64).
	Secret string `yaml:"secret"`
	// StartFrom: now (default), beginning, or an RFC 3339 time.
	StartFrom string `yaml:"start_from"`
}

func (w Webhooks) validate() []error {
	var errs []error
	for name, d := range map[string]Duration{"max_retry_age": w.MaxRetryAge, "timeout": w.Timeout,
		"initial_backoff": w.InitialBackoff, "max_backoff": w.MaxBackoff, "breaker_cooldown": w.BreakerCooldown} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("webhooks.%s must not be negative", name))
		}
	}
	if w.Timeout.D() > time.Minute {
		errs = append(errs, fmt.Errorf("webhooks.timeout is at most 1m"))
	}
	if w.Lanes < 0 || w.Lanes > 256 {
		errs = append(errs, fmt.Errorf("webhooks.lanes must be 0 (default) to 256"))
	}
	if w.MaxDeadLetters < 0 {
		errs = append(errs, fmt.Errorf("webhooks.max_dead_letters must not be negative"))
	}
	if w.BreakerFailures < 0 {
		errs = append(errs, fmt.Errorf("webhooks.breaker_failures must not be negative"))
	}
	for i, e := range w.Endpoints {
		if e.ID == "" || e.URL == "" || e.Secret == "" || len(e.EventTypes) == 0 {
			errs = append(errs, fmt.Errorf("webhooks.endpoints[%d]: id, url, event_types and secret are required", i))
		}
	}
	return errs
}

// Or returns d, or def when d is zero.
func (d Duration) Or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}
