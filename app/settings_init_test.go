package app_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// The node that writes the first settings to an empty log runs with them at
// their version in the log at once, watcher or not (an operator command's
// node has none): found by a review after the settings loop moved onto
// retryDecision.
func TestInitSettingsOnAnEmptyLogRunsAtTheLogsVersion(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	ctx := context.Background()
	// The node's own service wrote them when it started.
	_, running := n.Service.SettingsVersion()
	_, logVersion, err := n.Service.LoadSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if running == 0 || running != logVersion {
		t.Fatalf("the writing node runs settings version %d, the log has %d", running, logVersion)
	}
	// A second service on the same log, as an operator command builds one,
	// reads them.
	other := secondService(t, n)
	if err := other.InitSettings(ctx); err != nil {
		t.Fatal(err)
	}
	if _, v := other.SettingsVersion(); v != logVersion {
		t.Fatalf("a node starting on written settings runs version %d, the log has %d", v, logVersion)
	}
}

// secondService is another service on n's log and database, as an operator
// command (or a node started later) builds one; its settings are not yet
// initialised.
func secondService(t *testing.T, n *testenv.Node) *app.Service {
	t.Helper()
	ctx := context.Background()
	codes, err := eventstore.OpenSecretValues(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_codes", TTL: time.Hour, Replicas: 1, MaxValueSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	activity, err := eventstore.OpenLastSeen(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_session_activity", TTL: time.Hour, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	other, err := app.NewService(app.Deps{Store: n.Store, Keys: n.Keys, Config: n.Config, Clock: n.Clock, Random: rand.Reader,
		Activity: activity, Codes: codes, Secrets: projections.ClientSecrets{Pool: n.Pool}, ProofIDs: codes, Limiter: projections.RateBuckets{Pool: n.Pool}, FastLimiter: n.Limiter, Log: n.Log})
	if err != nil {
		t.Fatal(err)
	}
	return other
}

// Settings written before a limit existed (authorize, refresh,
// dpop_proofs) have none: a node starting on them writes the
// configuration's limits once, in one change, and runs with them (a node
// after it finds them there and writes nothing); a limit the log has is
// left as it is.
func TestInitSettingsAddsTheLaterLimits(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		burst := 120 // testenv turns these two off; the defaults (config tests)
		c.RateLimits.Refresh = config.RateLimit{Burst: &burst, Per: config.Duration(time.Hour)}
		c.RateLimits.DPoPProofs = config.RateLimit{Burst: &burst, Per: config.Duration(5 * time.Minute)}
	}})
	ctx := context.Background()
	seed := n.Service.Settings().RateLimits
	for name, want := range map[string]domain.RateLimitSetting{
		"authorize": {Burst: 120, Per: domain.SecondsOf(time.Minute)}, "refresh": {Burst: 120, Per: domain.SecondsOf(time.Hour)},
		"dpop_proofs": {Burst: 120, Per: domain.SecondsOf(5 * time.Minute)},
	} {
		if got := *seed.Later()[name]; got != want {
			t.Fatalf("the %s limit: %+v", name, got)
		}
	}
	old, v := n.Service.SettingsVersion()
	// As an event written before authorize and refresh existed, and a
	// dpop_proofs limit an operator changed.
	old.RateLimits.Authorize, old.RateLimits.Refresh = domain.RateLimitSetting{}, domain.RateLimitSetting{}
	old.RateLimits.DPoPProofs = domain.RateLimitSetting{Burst: 7, Per: domain.SecondsOf(time.Minute)}
	v, err := n.Service.ChangeSettings(ctx, v, old, "test", app.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	other := secondService(t, n)
	if err := other.InitSettings(ctx); err != nil {
		t.Fatal(err)
	}
	got, ov := other.SettingsVersion()
	want := seed
	want.DPoPProofs = old.RateLimits.DPoPProofs
	if got.RateLimits != want || ov != v+1 {
		t.Fatalf("after start on old settings: %+v at version %d (old settings at %d)", got.RateLimits, ov, v)
	}
	third := secondService(t, n)
	if err := third.InitSettings(ctx); err != nil {
		t.Fatal(err)
	}
	if _, tv := third.SettingsVersion(); tv != ov {
		t.Fatalf("a later start wrote again: version %d, want %d", tv, ov)
	}
}
