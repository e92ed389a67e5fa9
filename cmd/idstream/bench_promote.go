package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nuid"
)

// benchPromote measures promotions (guest sign-up + promotion code + headless
// promotion per operation) while a probe signs guests up at a low steady
// rate, to show that password hashing does not starve other requests.
func benchPromote(ctx context.Context, l *loadFlags, probeRate float64) error {
	client := l.httpClient()
	signupBody, _ := json.Marshal(map[string]string{"client_id": l.clientID, "session_type": "refresh_token"})
	var probe []time.Duration
	var probeMu sync.Mutex
	pctx, stop := context.WithCancel(ctx)
	var pwg sync.WaitGroup
	if probeRate > 0 {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			t := time.NewTicker(time.Duration(float64(time.Second) / probeRate))
			defer t.Stop()
			for {
				select {
				case <-pctx.Done():
					return
				case <-t.C:
					t0 := time.Now()
					if _, status, err := signupOnce(pctx, client, l.target+"/api/anonymous_user/signup", signupBody); err == nil && status == http.StatusOK {
						probeMu.Lock()
						probe = append(probe, time.Since(t0))
						probeMu.Unlock()
					}
				}
			}
		}()
	}
	err := runLoad(ctx, l, "promotions", func(ctx context.Context, _, _ int) (string, int, error) {
		status, raw, err := post(ctx, client, l.target+"/api/anonymous_user/signup", "application/json", string(signupBody))
		if err != nil || status != http.StatusOK {
			return "", status, err
		}
		var su struct {
			Result struct {
				AccessToken string `json:"access_token"`
			} `json:"result"`
		}
		if err := json.Unmarshal(raw, &su); err != nil {
			return "", 0, err
		}
		at := su.Result.AccessToken
		if status, _, err := postAuth(ctx, client, l.target+"/api/anonymous_user/promotion_code", at, `{"session_type":"refresh_token"}`); err != nil || status != http.StatusOK {
			return "", status, err
		}
		body := fmt.Sprintf(`{"login_id":"bench-%s@example.com","password":"bench-password-%s"}`, strings.ToLower(nuid.Next()), nuid.Next())
		status, _, err = postAuth(ctx, client, l.target+"/api/anonymous_user/promote", at, body)
		return jwtSubject(at), status, err
	})
	stop()
	pwg.Wait()
	if probeRate > 0 {
		slices.Sort(probe)
		fmt.Printf("  sign-up probe during the run (%.0f/s): %d ok, p50 %s  p99 %s  max %s\n",
			probeRate, len(probe), pct(probe, 50), pct(probe, 99), pct(probe, 100))
	}
	return err
}

func postAuth(ctx context.Context, client *http.Client, u, bearer, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+bearer)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&raw)
	return resp.StatusCode, raw, nil
}
