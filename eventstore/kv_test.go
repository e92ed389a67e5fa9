package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
)

// A spent value leaves nothing in the bucket: its delete marker (what
// decides between racing uses) is swept right after, instead of staying
// for the bucket's TTL. Before the sweep, every key-pair sign-in left a
// marker of its challenge for an hour (~680 bytes of the NATS server's
// heap each: at 900 sign-ins/s, 2 GB). A swept key reads as unknown, and
// a late use of it still loses.
func TestSpentValuesAreSwept(t *testing.T) {
	ctx := context.Background()
	js, err := jetstream.New(testenv.StartNATS(t).Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	v, err := eventstore.OpenSecretValues(ctx, js, eventstore.KVOptions{Bucket: "sweep_test", TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	revs := make([]uint64, n)
	for i := range n {
		if err := v.Put(ctx, fmt.Sprint("code-", i), []byte("value")); err != nil {
			t.Fatal(err)
		}
		if _, revs[i], err = v.Get(ctx, fmt.Sprint("code-", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Two uses of each at once: exactly one wins.
	var wins sync.WaitGroup
	won := make([]int, n)
	var mu sync.Mutex
	for i := range n {
		for range 2 {
			wins.Add(1)
			go func() {
				defer wins.Done()
				err := v.Delete(ctx, fmt.Sprint("code-", i), revs[i])
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won[i]++
				case !errors.Is(err, eventstore.ErrValueChanged):
					t.Errorf("code-%d: %v", i, err)
				}
			}()
		}
	}
	wins.Wait()
	for i, w := range won {
		if w != 1 {
			t.Fatalf("code-%d spent %d times", i, w)
		}
	}
	stream, err := js.Stream(ctx, "KV_sweep_test")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages still in the bucket after every value was spent", info.State.Msgs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := range n {
		key := fmt.Sprint("code-", i)
		if _, _, err := v.Get(ctx, key); !errors.Is(err, eventstore.ErrNoValue) {
			t.Fatalf("%s after its sweep: %v, want ErrNoValue", key, err)
		}
		if err := v.Delete(ctx, key, revs[i]); !errors.Is(err, eventstore.ErrValueChanged) {
			t.Fatalf("%s spent again after its sweep: %v, want ErrValueChanged", key, err)
		}
	}
	if err := v.Put(ctx, "code-new", []byte("value")); err != nil {
		t.Fatalf("a new value after the sweeps: %v", err)
	}
}

// A value put under a key right after the key was spent (a new one-time
// code for the same login ID: those keys are not random) survives the
// sweep of the spent one's marker.
// On a replicated bucket too. (There a create that loses its expected
// marker to a sweep would be answered 10164 and is tried again; this test
// does not make that race happen reliably.)
func TestSweepKeepsAValuePutSince(t *testing.T) {
	t.Run("one server", func(t *testing.T) {
		js, err := jetstream.New(testenv.StartNATS(t).Connect(t))
		if err != nil {
			t.Fatal(err)
		}
		sweepKeepsAValuePutSince(t, js, 1)
	})
	t.Run("three replicas", func(t *testing.T) {
		sweepKeepsAValuePutSince(t, clusterJetStream(t), 3)
	})
}

func sweepKeepsAValuePutSince(t *testing.T, js jetstream.JetStream, replicas int) {
	ctx := context.Background()
	v, err := eventstore.OpenSecretValues(ctx, js, eventstore.KVOptions{Bucket: "resweep_test", TTL: time.Hour, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		key := fmt.Sprint("otp:", i)
		if err := v.Put(ctx, key, []byte("first")); err != nil {
			t.Fatal(err)
		}
		_, rev, err := v.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Delete(ctx, key, rev); err != nil {
			t.Fatal(err)
		}
		if err := v.Put(ctx, key, []byte("second")); err != nil {
			t.Fatalf("%s put again: %v", key, err)
		}
	}
	stream, err := js.Stream(ctx, "KV_resweep_test")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs <= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in the bucket, want the %d values put again", info.State.Msgs, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // any sweep still in flight
	for i := range n {
		key := fmt.Sprint("otp:", i)
		if got, _, err := v.Get(ctx, key); err != nil || string(got) != "second" {
			t.Fatalf("%s after the sweep: %q, %v; want the value put again", key, got, err)
		}
	}
}

// On a replicated bucket a conditional delete or update that loses to one
// still in flight on the subject is answered 10164, not 10071: a lost race
// all the same (ErrValueChanged), not an outage.
func TestLostRaceOnAReplicatedBucket(t *testing.T) {
	ctx := context.Background()
	v, err := eventstore.OpenSecretValues(ctx, clusterJetStream(t), eventstore.KVOptions{Bucket: "race_r3", TTL: time.Hour, Replicas: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		key := fmt.Sprint("code-", i)
		if err := v.Put(ctx, key, []byte("v")); err != nil {
			t.Fatal(err)
		}
		_, rev, err := v.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		errs := make([]error, 4)
		var wg sync.WaitGroup
		for j := range errs {
			wg.Go(func() {
				if j%2 == 0 {
					errs[j] = v.Delete(ctx, key, rev)
				} else {
					errs[j] = v.Update(ctx, key, []byte("w"), rev)
				}
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, eventstore.ErrValueChanged):
				t.Fatalf("%s: a lost race answered %v", key, err)
			}
		}
		if wins != 1 {
			t.Fatalf("%s: %d wins", key, wins)
		}
	}
}

// clusterJetStream is a JetStream client of a three-server cluster.
func clusterJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	c := testenv.StartCluster(t, 3)
	nc, err := nats.Connect(c.URL(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}
