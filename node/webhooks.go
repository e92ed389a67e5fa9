package node

import (
	"context"
	"time"

	"github.com/idstream/idstream/workers/webhooks"
)

// startWebhooks builds the webhook service from the configuration and
// writes the configured endpoints.
func startWebhooks(ctx context.Context, n *Node, o Options) (*webhooks.Service, error) {
	w := n.Config.Webhooks
	def := webhooks.DefaultConfig()
	cfg := webhooks.Config{
		AllowPrivate:    n.Config.Dev || w.AllowPrivateAddresses,
		MaxAge:          w.MaxRetryAge.Or(def.MaxAge),
		Timeout:         w.Timeout.Or(def.Timeout),
		InitialBackoff:  w.InitialBackoff.Or(def.InitialBackoff),
		MaxBackoff:      w.MaxBackoff.Or(def.MaxBackoff),
		Lanes:           def.Lanes,
		BreakerFailures: def.BreakerFailures,
		BreakerCooldown: w.BreakerCooldown.Or(def.BreakerCooldown),
		AckWait:         def.AckWait,
		Poll:            def.Poll,
		LeasePoll:       def.LeasePoll,
		Replicas:        n.Config.NATS.Replicas,
		RotationOverlap: def.RotationOverlap,
		MaxDeadLetters:  def.MaxDeadLetters,
	}
	if w.MaxDeadLetters > 0 {
		cfg.MaxDeadLetters = w.MaxDeadLetters
	}
	if w.Lanes > 0 {
		cfg.Lanes = w.Lanes
	}
	if w.BreakerFailures > 0 {
		cfg.BreakerFailures = uint32(w.BreakerFailures)
	}
	if cfg.MaxBackoff < cfg.InitialBackoff {
		cfg.MaxBackoff = cfg.InitialBackoff
	}
	s, err := webhooks.New(ctx, n.Pool, n.Store, o.Clock, o.Random, n.Log, cfg)
	if err != nil {
		return nil, err
	}
	if !o.Tool {
		// Even with none listed: an endpoint the file no longer lists is
		// disabled.
		eps := make([]webhooks.ConfiguredEndpoint, 0, len(w.Endpoints))
		for _, e := range w.Endpoints {
			eps = append(eps, webhooks.ConfiguredEndpoint{ID: e.ID, URL: e.URL, Secret: e.Secret, StartFrom: e.StartFrom,
				EventTypes: e.EventTypes, ClientIDs: e.ClientIDs})
		}
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := s.SyncConfigured(sctx, eps); err != nil {
			return nil, err
		}
	}
	return s, nil
}
