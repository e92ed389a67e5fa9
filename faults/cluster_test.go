package faults_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// TestClusterFailover runs two idstream nodes on a three-server NATS
// cluster with the stream at R3 and one database: tokens from one node work
// on the other, one instance runs each projection and the reaper, and when
// the stream's leader server stops under sign-up load, sign-ups continue
// after the election and nothing acknowledged is lost.
func TestClusterFailover(t *testing.T) {
	cl := testenv.StartCluster(t, 3)
	dbURL, _ := testenv.Database(t)
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	// One deployment behind one public URL (the tokens' issuer).
	configure := func(c *config.Config) { cheap(c); c.NATS.Replicas = 3; c.PublicURL = "http://idstream.cluster.test" }
	a := testenv.StartNode(t, nil, testenv.NodeOptions{NATSURL: cl.URL(0), DatabaseURL: dbURL, Configure: configure, Clock: clk, Workers: true})
	b := testenv.StartNode(t, nil, testenv.NodeOptions{NATSURL: cl.URL(1), DatabaseURL: dbURL, Configure: configure, Clock: clk, Workers: true})

	// Tokens issued by a are accepted by b.
	hc := &http.Client{Timeout: 10 * time.Second}
	r, err := call(hc, http.MethodPost, a.URL+"/api/anonymous_user/signup", "application/json", `{"client_id":"idstream-dev","session_type":"refresh_token"}`, "")
	if err != nil || r.status != 200 {
		t.Fatalf("sign-up on a: %v %s", err, r.raw)
	}
	res := r.body["result"].(map[string]any)
	if r, err := call(hc, http.MethodGet, b.URL+"/oauth2/userinfo", "", "", res["access_token"].(string)); err != nil || r.status != 200 {
		t.Fatalf("a's access token on b: %v %s", err, r.raw)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {res["refresh_token"].(string)}}
	if r, err := call(hc, http.MethodPost, b.URL+"/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), ""); err != nil || r.status != 200 {
		t.Fatalf("a's refresh token on b: %v %s", err, r.raw)
	}

	// Exactly one instance of each projection and of the reaper.
	waitCaughtUp(t, a, 30*time.Second)
	testenv.WaitFor(t, "exactly one instance of each projection and of the reaper", 15*time.Second, func() bool {
		one := a.Reaper.Holding() != b.Reaper.Holding()
		for _, p := range projections.All() {
			sa, sb := a.Runner.State(p.Name()), b.Runner.State(p.Name())
			if !(sa == projections.StateRunning && sb == projections.StateStandby || sb == projections.StateRunning && sa == projections.StateStandby) {
				one = false
			}
		}
		return one
	})

	// Stop the stream leader's server under load on both nodes.
	l := newLedger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for _, n := range []*testenv.Node{a, b} {
		go func() { l.run(ctx, n.URL, 4); done <- struct{}{} }()
	}
	time.Sleep(2 * time.Second)
	leader := streamLeader(t, cl)
	stopped := time.Now()
	cl.Stop(leader)
	t.Logf("stopped the stream leader n%d after %d operations", leader+1, l.ops.Load())
	// Sign-ups must resume: wait (however long recovery takes on a busy
	// machine, up to a minute) for two seconds of acknowledged sign-ups
	// after the longest gap since the stop, at least 5 s after it.
	var gap time.Duration
	testenv.WaitFor(t, "sign-ups resumed after the leader stopped", 60*time.Second, func() bool {
		now := time.Now()
		gap = l.longestGap(stopped, now)
		return now.Sub(stopped) >= 5*time.Second && now.Sub(stopped)-gap >= 2*time.Second &&
			now.Sub(l.lastAck()) < 500*time.Millisecond
	})
	cancel()
	<-done
	<-done
	waitCaughtUp(t, a, 60*time.Second)
	lost := l.verify(t, a)
	l.report(t, lost)
	t.Logf("failover: longest time without an acknowledged sign-up after the stop: %s", gap.Round(time.Millisecond))
	if lost != 0 {
		t.Fatalf("%d acknowledged operations lost", lost)
	}
}

// streamLeader returns the index of the server leading the event stream.
func streamLeader(t *testing.T, cl *testenv.Cluster) int {
	t.Helper()
	nc, err := nats.Connect(cl.URL(2))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	names := js.StreamNames(context.Background())
	for name := range names.Name() {
		if name == eventstore.DefaultStreamConfig().Name {
			s, err := js.Stream(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			info, err := s.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for i, srv := range cl.Servers {
				if srv.Name() == info.Cluster.Leader {
					return i
				}
			}
		}
	}
	t.Fatal("no event stream leader found")
	return -1
}
