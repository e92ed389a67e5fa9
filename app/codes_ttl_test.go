package app_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"time"

	"github.com/idstream/idstream/testenv"
)

// A challenge is kept a minute past its own end, not the codes bucket's
// hour: fetched and never used, it is gone after 6 minutes.
func TestChallengeKeptForItsLifetime(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{NoProjections: true})
	ctx := context.Background()
	token, _, err := n.Service.IssueChallenge(ctx, "anonymous_request")
	if err != nil {
		t.Fatal(err)
	}
	stream, err := n.Store.JetStream().Stream(ctx, "KV_idstream_codes")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(token))
	m, err := stream.GetLastMsgForSubject(ctx, "$KV.idstream_codes."+hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	ttl, err := time.ParseDuration(m.Header.Get("Nats-TTL"))
	if err != nil || ttl < 5*time.Minute || ttl > 7*time.Minute {
		t.Fatalf("the challenge's entry lives %q (%v), want about 6 minutes", m.Header.Get("Nats-TTL"), err)
	}
}
