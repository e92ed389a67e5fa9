package app_test

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// interleaving is the real code bucket with the order of two exchanges of
// one authorization code pinned: both read the code before either spends
// it, and the one that spends it waits, right after, until the other has
// finished. That is the interleaving the review saw leave the winner's
// session live in 4 of 25 races.
type interleaving struct {
	app.Codes
	gets    atomic.Int32
	both    chan struct{} // closed when both exchanges have read the code
	paused  chan struct{} // closed when the winner has spent it
	release chan struct{}
	once    sync.Once
}

func (c *interleaving) Get(ctx context.Context, code string) ([]byte, uint64, error) {
	e, rev, err := c.Codes.Get(ctx, code)
	if c.gets.Add(1) == 2 {
		close(c.both)
	}
	return e, rev, err
}

func (c *interleaving) Update(ctx context.Context, code string, e []byte, rev uint64) error {
	<-c.both
	err := c.Codes.Update(ctx, code, e, rev)
	if err == nil {
		c.once.Do(func() { close(c.paused) })
		<-c.release
	}
	return err
}

func TestConcurrentExchangesOfOneCodeRevokeTheWinner(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	ctx := context.Background()
	real, err := eventstore.OpenSecretValues(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_codes", TTL: time.Hour, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	codes := &interleaving{Codes: real, both: make(chan struct{}), paused: make(chan struct{}), release: make(chan struct{})}
	activity, err := eventstore.OpenLastSeen(ctx, n.Store.JetStream(), eventstore.KVOptions{Bucket: "idstream_session_activity", TTL: time.Hour, Replicas: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := app.NewService(app.Deps{Store: n.Store, Keys: n.Keys, Config: n.Config, Clock: n.Clock, Random: rand.Reader,
		Activity: activity, Codes: codes, Secrets: projections.ClientSecrets{Pool: n.Pool}, ProofIDs: real, Limiter: projections.RateBuckets{Pool: n.Pool}, FastLimiter: n.Limiter, Log: n.Log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.InitSettings(ctx); err != nil {
		t.Fatal(err)
	}
	id, err := loginid.Parse(loginid.Email, "race@example.com")
	if err != nil {
		t.Fatal(err)
	}
	u, err := svc.Register(ctx, "idstream-dev", id, "violet-tangerine-42", "127.0.0.1", app.Meta{})
	if err != nil {
		t.Fatal(err)
	}
	verifier := "verifier-verifier-verifier-verifier-verifier-0001"
	redirect := "http://localhost:3000/after"
	code, err := svc.IssueAuthorizationCode(ctx, app.AuthorizationRequest{ClientID: "idstream-dev", RedirectURI: redirect,
		CodeChallenge: app.S256(verifier), UserID: u.UserID()})
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		iss app.Issued
		err error
	}
	results := make(chan outcome, 2)
	for range 2 {
		go func() {
			iss, err := svc.ExchangeAuthorizationCode(ctx, "idstream-dev", code, redirect, verifier, "", app.Meta{})
			results <- outcome{iss, err}
		}()
	}
	select {
	case <-codes.paused:
	case <-time.After(20 * time.Second):
		t.Fatal("no exchange spent the code")
	}
	loser := <-results
	close(codes.release)
	winner := <-results
	if !errors.Is(loser.err, app.ErrAuthzCodeReused) {
		t.Fatalf("loser: %v", loser.err)
	}
	if winner.err != nil {
		// Refusing the winner too is as good: nothing it was given works.
		return
	}
	sess, _, err := svc.LoadSession(ctx, winner.iss.SessionID)
	if err != nil {
		t.Fatal(err)
	}
	if !sess.Exists() || !sess.Revoked() {
		t.Fatalf("the winner's session %s is live after the code was reused (exists %v)", winner.iss.SessionID, sess.Exists())
	}
}
