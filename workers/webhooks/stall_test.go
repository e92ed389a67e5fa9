package webhooks_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/workers/webhooks"
)

// refuser is a loopback receiver that answers 400 to every event of the
// users it holds as poisoned, and while arming takes every user it sees as
// poisoned. It records what it accepted and the most requests it had in
// flight at once.
type refuser struct {
	mu        sync.Mutex
	arming    bool
	poisoned  map[string]bool
	accepted  map[string][]uint64 // sub → seqs accepted, in arrival order
	refused   int
	inFlight  int
	maxFlight int
}

func (r *refuser) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var p webhooks.Payload
	_ = json.Unmarshal(body, &p)
	r.mu.Lock()
	r.inFlight++
	r.maxFlight = max(r.maxFlight, r.inFlight)
	r.mu.Unlock()
	// Long enough that requests from different users overlap.
	time.Sleep(5 * time.Millisecond)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if r.arming && p.Sub != "" {
		r.poisoned[p.Sub] = true
	}
	if r.arming || r.poisoned[p.Sub] {
		r.refused++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.accepted[p.Sub] = append(r.accepted[p.Sub], p.Seq)
}

// TestRefusedUsersDoNotStallOthers: users whose every event the receiver
// refuses (retried for the whole retry window) hold back their own later
// events only. With more such users than lanes, and more events behind
// them than any per-lane buffer, every other user's events are delivered,
// in order, with no more requests in flight than the lanes allow.
func TestRefusedUsersDoNotStallOthers(t *testing.T) {
	const lanes = 2
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		configure(time.Hour)(c)
		c.Webhooks.Lanes = lanes
		// The breaker is not what this test is about: with only the
		// poisoned users failing it would pause everyone for a moment.
		c.Webhooks.BreakerFailures = 1 << 20
	}})
	rec := &refuser{arming: true, poisoned: map[string]bool{}, accepted: map[string][]uint64{}}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	createEndpoint(t, n.URL, map[string]any{"url": srv.URL, "event_types": []string{"user.anonymous.created", "session.*"}})

	const poisoned = 2 * lanes
	for range poisoned {
		signUp(t, n.URL)
	}
	testenv.WaitFor(t, "the receiver to have refused every poisoned user", 30*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.poisoned) == poisoned
	})
	rec.mu.Lock()
	rec.arming = false
	rec.mu.Unlock()

	// 150 users, two events each: 300 events behind the refused ones.
	const others = 150
	subs := map[string]bool{}
	for range others {
		g := signUp(t, n.URL)
		rec.mu.Lock()
		taken := rec.poisoned[g.sub]
		rec.mu.Unlock()
		if taken {
			t.Fatalf("a new user %s was taken as poisoned", g.sub)
		}
		subs[g.sub] = true
	}
	testenv.WaitFor(t, "every other user's events", 90*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		done := 0
		for s := range subs {
			if len(rec.accepted[s]) >= 2 {
				done++
			}
		}
		return done == others
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for s, seqs := range rec.accepted {
		if rec.poisoned[s] {
			t.Fatalf("a refused user's event was accepted: %s %v", s, seqs)
		}
		for i := 1; i < len(seqs); i++ {
			if seqs[i] < seqs[i-1] { // a redelivered copy may repeat the last
				t.Fatalf("user %s: seq %d after %d", s, seqs[i], seqs[i-1])
			}
		}
	}
	if rec.refused < poisoned {
		t.Fatalf("only %d refusals", rec.refused)
	}
	if rec.maxFlight > lanes {
		t.Fatalf("%d requests in flight at once, lanes %d", rec.maxFlight, lanes)
	}
	t.Logf("delivered %d users' events past %d refused users (%d refusals, at most %d in flight)",
		others, poisoned, rec.refused, rec.maxFlight)
}
