package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
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
		ses, status, _, err := signupTokens(ctx, client, l.target+"/api/anonymous_user/signup", signupBody)
		if err != nil || status != http.StatusOK {
			return "", status, err
		}
		status, _, err = promoteGuest(ctx, client, l.target, ses.access)
		return jwtSubject(ses.access), status, err
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

// promoteGuest asks for a promotion code and promotes the guest with a fresh
// login ID and password: the status and body of the first failure, or of
// the promotion.
func promoteGuest(ctx context.Context, client *http.Client, target, access string) (int, []byte, error) {
	if status, raw, err := postAuth(ctx, client, target+"/api/anonymous_user/promotion_code", access, `{"session_type":"refresh_token"}`); err != nil || status != http.StatusOK {
		return status, raw, err
	}
	// Random UUIDs, not lowercased NUIDs: NUIDs are base 62, and with some
	// of their (per-process) increments lowercasing made one in four
	// login IDs of a run repeat an earlier one (409 LoginIDTaken).
	body := fmt.Sprintf(`{"login_id":"bench-%s@example.com","password":"bench-password-%s"}`, uuid.NewString(), uuid.NewString())
	return postAuth(ctx, client, target+"/api/anonymous_user/promote", access, body)
}

func postAuth(ctx context.Context, client *http.Client, u, bearer, body string) (int, []byte, error) {
	return request(ctx, client, http.MethodPost, u, bearer, "application/json", body)
}
