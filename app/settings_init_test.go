package app_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
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
	codes, err := eventstore.OpenSecretValues(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_codes", TTL: time.Hour, Replicas: 1})
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
	if err := other.InitSettings(ctx); err != nil {
		t.Fatal(err)
	}
	if _, v := other.SettingsVersion(); v != logVersion {
		t.Fatalf("a node starting on written settings runs version %d, the log has %d", v, logVersion)
	}
}
