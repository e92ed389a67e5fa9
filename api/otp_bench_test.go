package api_test

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/testenv"
)

// benchOTPNode is a node that sends mail to a real SMTP server on loopback
// (STARTTLS), with the account-creation and send limits raised out of the
// way (the flood benchmark keeps the per-target limit).
func benchOTPNode(b *testing.B, perTarget int) (*testenv.Node, *testenv.SMTPServer, func(path, at, body string) (int, map[string]any)) {
	mail := testenv.StartSMTP(b, testenv.SMTPOptions{})
	mailer, err := delivery.NewSMTP(delivery.SMTPOptions{Host: "127.0.0.1", Port: mail.Port, From: "no-reply@idstream.test",
		TLSConfig: &tls.Config{RootCAs: mail.Roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	if err != nil {
		b.Fatal(err)
	}
	n := testenv.StartNode(b, testenv.StartNATS(b), testenv.NodeOptions{Delivery: delivery.Router{Email: mailer}, Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
		off := 0
		c.RateLimits.SignInPerIP.Burst = &off
		c.RateLimits.SignInPerLoginID.Burst = &off
		c.Verification.Authenticators = map[string][]string{"email": {"password", "oob_otp"}, "phone": {"password"}, "username": {"password"}}
		c.Verification.SendPerIP = domain.RateLimitSetting{Burst: 1_000_000, Per: 3600}
		c.Verification.SendPerTarget = domain.RateLimitSetting{Burst: perTarget, Per: 3600}
	}})
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(path, at, body string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if at != "" {
			req.Header.Set("Authorization", "Bearer "+at)
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Error(err)
			return 0, nil
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	return n, mail, post
}

func benchGuest(b *testing.B, post func(path, at, body string) (int, map[string]any)) string {
	status, m := post("/api/anonymous_user/signup", "", apitest.TokenSignup)
	res, _ := m["result"].(map[string]any)
	at, _ := res["access_token"].(string)
	if status != 200 || at == "" {
		b.Fatalf("signup: %d %v", status, m)
	}
	testenv.RecordSecret("access token", at)
	return at
}

// BenchmarkCodeIssueAndVerify: a passwordless promotion by email code,
// whole: the code issued (limits, stored hashed, sent over STARTTLS to the
// mail server on loopback), read from the received mail, and verified (the
// promotion, its verification and the new session appended). Each
// iteration is a new guest (its sign-up outside the timer). Measure with
//
//	go test ./api -run '^$' -bench CodeIssueAndVerify -count 5 -benchtime 200x
//
// ns/op is one code's issue + delivery + verification; codes/s is its
// inverse on one client (sequential).
func BenchmarkCodeIssueAndVerify(b *testing.B) {
	_, mail, post := benchOTPNode(b, 1_000_000)
	var issue, verify time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		at := benchGuest(b, post)
		login := fmt.Sprintf("bench-%d-%d@example.com", time.Now().UnixNano(), i)
		b.StartTimer()
		t0 := time.Now()
		if status, m := post("/api/anonymous_user/promote/start", at, `{"login_id":"`+login+`"}`); status != 200 {
			b.Fatalf("start: %d %v", status, m)
		}
		m := mail.WaitMail(b, i+1)
		t1 := time.Now()
		if status, r := post("/api/anonymous_user/promote/verify", at, `{"login_id":"`+login+`","code":"`+m.Code()+`"}`); status != 200 {
			b.Fatalf("verify: %d %v", status, r)
		}
		issue += t1.Sub(t0)
		verify += time.Since(t1)
	}
	b.ReportMetric(float64(issue.Microseconds())/float64(b.N)/1000, "issue-ms/op")
	b.ReportMetric(float64(verify.Microseconds())/float64(b.N)/1000, "verify-ms/op")
	b.ReportMetric(float64(b.N)/(issue+verify).Seconds(), "codes/s")
}

// BenchmarkCodeFloodVersusSignUp: guest sign-ups timed alone ("quiet") and
// while 8 clients flood code requests for one login ID ("flood"); the flood
// is held by the resend cooldown and the per-target limit (5 per hour), so
// at most 5 messages go out, and the sign-ups' median should not move.
// Measure with
//
//	go test ./api -run '^$' -bench CodeFloodVersusSignUp -count 5 -benchtime 300x
func BenchmarkCodeFloodVersusSignUp(b *testing.B) {
	for _, flood := range []bool{false, true} {
		name := "quiet"
		if flood {
			name = "flood"
		}
		b.Run(name, func(b *testing.B) {
			n, mail, post := benchOTPNode(b, 5)
			_ = n
			// A regular user holds the flooded address (passwordless).
			at := benchGuest(b, post)
			if status, m := post("/api/anonymous_user/promote/start", at, `{"login_id":"flooded@example.com"}`); status != 200 {
				b.Fatalf("start: %d %v", status, m)
			}
			code := mail.WaitMail(b, 1).Code()
			if status, m := post("/api/anonymous_user/promote/verify", at, `{"login_id":"flooded@example.com","code":"`+code+`"}`); status != 200 {
				b.Fatalf("verify: %d %v", status, m)
			}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var requests, held atomic.Int64
			if flood {
				for range 8 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for {
							select {
							case <-stop:
								return
							default:
							}
							status, _ := post("/api/signin/code/start", "", `{"client_id":"idstream-dev","login_id":"flooded@example.com"}`)
							requests.Add(1)
							if status == http.StatusTooManyRequests {
								held.Add(1)
							}
						}
					}()
				}
			}
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				benchGuest(b, post)
				lat = append(lat, time.Since(t0))
			}
			close(stop)
			wg.Wait()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "signup-p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "signup-p99-ms")
			if flood {
				b.ReportMetric(float64(requests.Load()), "flood-requests")
				b.ReportMetric(float64(held.Load()), "flood-held-429")
				// The 1 promotion code, and at most 4 more sign-in codes (the
				// per-target limit of 5): the mails that went out.
				time.Sleep(200 * time.Millisecond)
				b.ReportMetric(float64(len(mail.Mails())), "mails-sent")
			}
		})
	}
}
