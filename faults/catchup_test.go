package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// backlog appends guests quickly, straight into the log, as `idstream seed
// guests` does: each signs up (user created, session started); every fourth
// refreshes twice, every seventh is revoked, every tenth is promoted and
// claims a login ID. It returns how many events it wrote.
func backlog(t *testing.T, s *eventstore.Store, guests int) int {
	t.Helper()
	at := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	msg := func(kind, id string, ev domain.Event) eventstore.Message {
		data, _ := json.Marshal(ev)
		return eventstore.Message{Subject: s.Subject(kind, id),
			Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: ev.EventType(), OccurredAt: at, Data: data}}
	}
	const perAppend = 50 // guests; at most 7 events each, under the store's 500
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := 0
	var firstErr error
	work := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for first := range work {
				var msgs []eventstore.Message
				for i := first; i < min(first+perAppend, guests); i++ {
					u, sid := uuid.NewString(), uuid.NewString()
					msgs = append(msgs, msg("user", u, domain.AnonymousUserCreated{UserID: u, ClientID: "idstream-dev", CreatedAt: at, SessionID: sid}),
						msg("session", sid, domain.SessionStarted{SessionID: sid, UserID: u, ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken,
							Method: domain.MethodAnonymous, TokenHash: "h0", IdleTimeout: 3600, Lifetime: 86400, StartedAt: at}))
					if i%4 == 0 {
						for g := 1; g <= 2; g++ {
							msgs = append(msgs, msg("session", sid, domain.SessionRefreshed{SessionID: sid, UserID: u, PreviousHash: fmt.Sprintf("h%d", g-1),
								TokenHash: fmt.Sprintf("h%d", g), Generation: g, RefreshedAt: at.Add(time.Duration(g) * time.Second)}))
						}
					}
					if i%7 == 0 {
						msgs = append(msgs, msg("session", sid, domain.SessionRevoked{SessionID: sid, UserID: u, Reason: "logout", RevokedAt: at.Add(time.Minute)}))
					}
					if i%10 == 0 {
						login := fmt.Sprintf("catchup%d@example.com", i)
						msgs = append(msgs, msg("user", u, domain.UserPromoted{UserID: u, ClientID: "idstream-dev", GuestMethod: domain.MethodAnonymous,
							LoginIDType: "email", LoginID: login, GuestCreatedAt: at, PromotedAt: at.Add(3 * time.Second)}),
							msg("loginid", fmt.Sprintf("email:catchup%d", i), domain.LoginIDClaimed{LoginIDType: "email", LoginID: login, UserID: u, ClaimedAt: at.Add(3 * time.Second)}))
					}
				}
				_, err := s.Append(context.Background(), msgs...)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					written += len(msgs)
				}
				mu.Unlock()
			}
		}()
	}
	for first := 0; first < guests; first += perAppend {
		work <- first
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatal(firstErr)
	}
	return written
}

// TestKillIdstreamDuringCatchUp writes a backlog into the log, starts
// `idstream serve` (a separate process) so that its projections catch up,
// and kills it with SIGKILL twice in the middle of the catch-up (every
// checkpoint past 0 and short of the log's end, and past where the previous
// kill left it). After a last restart every checkpoint reaches the log's last
// sequence and the read models equal a fresh replay of the log: no event
// lost, none applied twice.
func TestKillIdstreamDuringCatchUp(t *testing.T) {
	ns := testenv.StartNATS(t)
	s, err := eventstore.Open(context.Background(), ns.Connect(t), eventstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	dbURL, pool := testenv.Database(t)

	const guests = 25000
	began := time.Now()
	events := backlog(t, s, guests)
	last, err := s.LastSequence(context.Background())
	if err != nil || last != uint64(events) {
		t.Fatalf("the log ends at %d (%v), %d events written", last, err, events)
	}
	t.Logf("backlog: %d guests, %d events in %s", guests, events, time.Since(began).Round(time.Millisecond))

	p := newIdstreamProc(t, ns.Server.ClientURL(), dbURL)
	const kills = 2
	prev := map[string]uint64{}
	for k := 1; k <= kills; k++ {
		started := time.Now()
		p.start()
		// Kill once every projection has moved past where the previous kill
		// left it, the furthest has passed k quarters of the log, and none
		// has reached the end.
		deadline := time.Now().Add(60 * time.Second)
		for {
			cps := checkpoints(t, pool)
			_, hi, ok := span(cps)
			moved := ok
			for _, pr := range projections.All() {
				if cps[pr.Name()] <= prev[pr.Name()] {
					moved = false
				}
			}
			if moved && hi >= uint64(k)*last/4 && hi < last {
				p.kill9()
				prev = checkpoints(t, pool)
				t.Logf("kill %d: SIGKILL %s after start, checkpoints at the kill %v of %d",
					k, time.Since(started).Round(time.Millisecond), prev, last)
				break
			}
			if ok && hi >= last {
				t.Fatalf("kill %d: a projection reached the end (%v of %d) before the kill: make the backlog larger", k, cps, last)
			}
			if time.Now().After(deadline) {
				t.Fatalf("kill %d: catch-up did not progress: checkpoints %v of %d\n%s", k, cps, last, p.logs())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	restarted := time.Now()
	p.start()
	waitCheckpoints(t, pool, s, 90*time.Second)
	t.Logf("after %d kills, caught up to %d in %s after the last restart", kills, last, time.Since(restarted).Round(time.Millisecond))
	p.kill9()

	counts, _ := logCounts(t, s)
	noDoubleApply(t, pool, counts)
	_, fresh := testenv.Database(t)
	testenv.SameDump(t, "after kills during catch-up", freshReplay(t, s, fresh), testenv.Dump(t, pool, testenv.ReadModelTables...))
	t.Logf("events %d (%v); kills %d; read models equal a fresh replay", events, counts, kills)
}
