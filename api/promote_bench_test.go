package api_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// BenchmarkPromotionTakenVsFree times headless promotions to a free login
// ID and to a taken one, alternating, and reports their means and the ratio
// taken/free. A taken login ID must not answer faster than a success (which
// appends the promotion), or the time would tell a taken ID apart from a
// free one: both hash the password, and the refusal pauses for about one
// append. Measure with
//
//	go test ./api -run '^$' -bench PromotionTakenVsFree -count 5 -benchtime 20x
//
// and compare the medians of the ratio; a measurement, not an assertion.
func BenchmarkPromotionTakenVsFree(b *testing.B) {
	n := testenv.StartNode(b, testenv.StartNATS(b), testenv.NodeOptions{Configure: func(c *config.Config) {
		off := 0
		c.RateLimits.SignInPerIP.Burst = &off
		c.RateLimits.SignInPerLoginID.Burst = &off
	}})
	post := func(path, at, body string) (int, map[string]any) {
		b.Helper()
		req, _ := http.NewRequest(http.MethodPost, n.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if at != "" {
			req.Header.Set("Authorization", "Bearer "+at)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	guest := func() string {
		status, m := post("/api/anonymous_user/signup", "", `{"client_id":"idstream-dev","session_type":"refresh_token"}`)
		res, _ := m["result"].(map[string]any)
		at, _ := res["access_token"].(string)
		if status != 200 || at == "" {
			b.Fatalf("signup: %d %v", status, m)
		}
		testenv.RecordSecret("access token", at)
		return at
	}
	testenv.RecordSecret("password", apitest.GoodPassword)
	if status, m := post("/api/anonymous_user/promote", guest(), apitest.PromoteBody("bench-taken@example.com", apitest.GoodPassword)); status != 200 {
		b.Fatalf("first promotion: %d %v", status, m)
	}
	var took [2]time.Duration
	b.ResetTimer()
	for i := range b.N {
		for j := range 2 {
			if i%2 == 1 {
				j = 1 - j
			}
			b.StopTimer()
			at := guest()
			b.StartTimer()
			loginID, want := fmt.Sprintf("bench-free-%d-%d@example.com", i, time.Now().UnixNano()), 200
			if j == 1 {
				loginID, want = "bench-taken@example.com", 409
			}
			start := time.Now()
			if status, m := post("/api/anonymous_user/promote", at, apitest.PromoteBody(loginID, apitest.GoodPassword)); status != want {
				b.Fatalf("promote %s: %d %v", loginID, status, m)
			}
			took[j] += time.Since(start)
		}
	}
	b.ReportMetric(float64(took[0].Microseconds())/1000/float64(b.N), "free-ms/op")
	b.ReportMetric(float64(took[1].Microseconds())/1000/float64(b.N), "taken-ms/op")
	b.ReportMetric(float64(took[1])/float64(took[0]), "taken/free")
}
