package webhooks

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestResetConsumerOfAWorkQueue: the replay consumer, re-created while it
// had messages in flight (a takeover, an endpoint enabled again), starts
// again with what was not acknowledged, in order: a work queue allows no
// other start than "all", and holds nothing acknowledged.
func TestResetConsumerOfAWorkQueue(t *testing.T) {
	// A server of its own (testenv's would import this package).
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, JetStream: true, StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "wq", Subjects: []string{"wq.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"one", "two", "three"} {
		if _, err := js.Publish(ctx, "wq.a", []byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	cfg := jetstream.ConsumerConfig{Durable: "replays", AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy,
		FilterSubject: "wq.a", MaxDeliver: -1}
	c, err := resetConsumer(ctx, js, "wq", cfg)
	if err != nil {
		t.Fatal(err)
	}
	batch, err := c.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if len(got) != 2 {
		t.Fatalf("fetched %d", len(got))
	}
	if err := got[0].DoubleAck(ctx); err != nil { // "one" done, "two" in flight
		t.Fatal(err)
	}
	c, err = resetConsumer(ctx, js, "wq", cfg)
	if err != nil {
		t.Fatalf("reset with a message in flight: %v", err)
	}
	batch, err = c.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for m := range batch.Messages() {
		bodies = append(bodies, string(m.Data()))
	}
	if len(bodies) != 2 || bodies[0] != "two" || bodies[1] != "three" {
		t.Fatalf("after the reset: %v, want [two three]", bodies)
	}
}
