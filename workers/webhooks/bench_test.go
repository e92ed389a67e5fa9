package webhooks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/testenv"
)

// BenchmarkWebhookDelivery appends b.N guest creations at once (each its
// own user, so all lanes of requests work) and waits until a loopback receiver
// answering 204 has them all: deliveries per second (the delays include
// the queue the burst builds).
//
//	go test ./workers/webhooks -run '^$' -bench 'WebhookDelivery|WebhookDelay' -benchtime 5000x -count 3
func BenchmarkWebhookDelivery(b *testing.B) { benchDelivery(b, 0) }

// BenchmarkWebhookDelay appends at a steady 200 events/s, below what one
// endpoint delivers: the delay from append to receiver, p50 and p99
// (occurred_at is stamped with the real clock here).
func BenchmarkWebhookDelay(b *testing.B) { benchDelivery(b, 5*time.Millisecond) }

func benchDelivery(b *testing.B, every time.Duration) {
	n := testenv.StartNode(b, testenv.StartNATS(b), testenv.NodeOptions{Configure: configure(time.Hour)})
	var mu sync.Mutex
	var delays []time.Duration
	got := make(chan struct{}, 1<<20)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p struct {
			OccurredAt time.Time `json:"occurred_at"`
		}
		_ = json.NewDecoder(r.Body).Decode(&p)
		mu.Lock()
		delays = append(delays, time.Since(p.OccurredAt))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		got <- struct{}{}
	}))
	defer recv.Close()
	if _, _, err := n.Webhooks.Create(context.Background(), specOf(recv.URL, "user.anonymous.created")); err != nil {
		b.Fatal(err)
	}
	testenv.WaitFor(b, "the lease", 20*time.Second, n.Webhooks.Delivering)
	time.Sleep(1500 * time.Millisecond) // the runner starts at the next poll
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for range b.N {
		if every > 0 {
			time.Sleep(every)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			u := uuid.NewString()
			data, _ := json.Marshal(domain.AnonymousUserCreated{UserID: u, ClientID: "idstream-dev", CreatedAt: time.Now().UTC()})
			if _, err := n.Store.Append(ctx, eventstore.Message{Subject: n.Store.Subject("user", u),
				Envelope: eventstore.Envelope{ID: uuid.NewString(), Type: domain.TypeAnonymousUserCreated, OccurredAt: time.Now().UTC(), Data: data}}); err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	for range b.N {
		select {
		case <-got:
		case <-time.After(60 * time.Second):
			b.Fatal("deliveries stalled")
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	mu.Lock()
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	p := func(q float64) float64 { return float64(delays[int(q*float64(len(delays)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(p(0.5), "p50_ms")
	b.ReportMetric(p(0.99), "p99_ms")
	mu.Unlock()
}

// BenchmarkSignupWithEndpoints: guest sign-ups over HTTP (16 at once) with
// 0, 1 and 10 endpoints attached, each taking every event to a loopback
// receiver: what delivery costs the sign-up path on the same machine.
//
//	go test ./workers/webhooks -run '^$' -bench SignupWithEndpoints -benchtime 2000x -count 3
func BenchmarkSignupWithEndpoints(b *testing.B) {
	for _, endpoints := range []int{0, 1, 10} {
		b.Run(fmt.Sprintf("endpoints=%d", endpoints), func(b *testing.B) {
			n := testenv.StartNode(b, testenv.StartNATS(b), testenv.NodeOptions{Configure: configure(time.Hour)})
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.WriteHeader(http.StatusNoContent)
			}))
			defer recv.Close()
			for range endpoints {
				if _, _, err := n.Webhooks.Create(context.Background(), specOf(recv.URL, "*")); err != nil {
					b.Fatal(err)
				}
			}
			time.Sleep(2500 * time.Millisecond) // lease and runners
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			sem := make(chan struct{}, 16)
			for range b.N {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					resp, err := hc.Post(n.URL+"/api/anonymous_user/signup", "application/json",
						strings.NewReader(`{"client_id":"idstream-dev","session_type":"refresh_token"}`))
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("sign-up: %d", resp.StatusCode)
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signups/s")
		})
	}
}
