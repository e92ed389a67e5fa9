package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
)

// A bucket a later release opened with per-message TTLs (which nats-server
// never lets be turned off again, error 10052) still opens and works here,
// as it is: so that release can be rolled back to this one, and this one's
// nodes restart during its rollout.
func TestBucketWithMessageTTLsOpens(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(testenv.StartNATS(t).Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "ttl_test", TTL: time.Hour, Storage: jetstream.MemoryStorage,
		History: 1, LimitMarkerTTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	v, err := eventstore.OpenSecretValues(ctx, js, eventstore.KVOptions{Bucket: "ttl_test", TTL: time.Hour})
	if err != nil {
		t.Fatalf("opening a bucket with message TTLs: %v", err)
	}
	if err := v.Put(ctx, "k", []byte("value")); err != nil {
		t.Fatal(err)
	}
	got, rev, err := v.Get(ctx, "k")
	if err != nil || string(got) != "value" {
		t.Fatalf("get: %q %v", got, err)
	}
	if err := v.Delete(ctx, "k", rev); err != nil {
		t.Fatal(err)
	}
	if err := v.Delete(ctx, "k", rev); err == nil {
		t.Fatal("a second use of a spent value won")
	}
}
