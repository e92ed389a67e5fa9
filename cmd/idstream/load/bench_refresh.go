package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
)

// refreshOnce exchanges a refresh token (rotating it) and returns the new
// session, or the status and body of the failure.
func refreshOnce(ctx context.Context, client *http.Client, l *loadFlags, token string) (benchSession, int, error) {
	endpoint, contentType, body := l.refreshRequest(token)
	status, raw, err := post(ctx, client, endpoint, contentType, body)
	if err != nil || status != http.StatusOK {
		return benchSession{}, status, err
	}
	s, err := parseSession(raw)
	return s, status, err
}

// signupSessions signs up n guests per client before a run, from conc
// clients at once.
func signupSessions(ctx context.Context, l *loadFlags, client *http.Client, per int) ([][]benchSession, error) {
	endpoint, body := l.guestSignup()
	own := make([][]benchSession, l.conc)
	errs := make([]error, l.conc)
	var wg sync.WaitGroup
	for w := range l.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				s, status, _, err := signupTokens(ctx, client, endpoint, body)
				if err != nil || status != http.StatusOK {
					errs[w] = fmt.Errorf("bench: sign-up before the run: status %d, %v", status, err)
					return
				}
				own[w] = append(own[w], s)
			}
		}()
	}
	wg.Wait()
	return own, errors.Join(errs...)
}

// benchRefresh measures refresh-token exchanges: each client signs up
// sessions guests first, then rotates their refresh tokens in turn (one
// session.refreshed.v1 per exchange, each a command on its own subject).
func benchRefresh(ctx context.Context, l *loadFlags, sessions int) error {
	client := l.httpClient()
	own, err := signupSessions(ctx, l, client, sessions)
	if err != nil {
		return err
	}
	return runLoad(ctx, l, "refreshes", func(ctx context.Context, w, i int) (string, int, error) {
		ss := own[w]
		if len(ss) == 0 {
			return "", 0, errors.New("bench: every session of this client was lost")
		}
		status, err := refreshKept(ctx, client, l, &own[w], i%len(ss))
		// No lag sample: the users row was there before the run.
		return "", status, err
	})
}

// refreshKept rotates the refresh token of (*ss)[k]; on a failure the
// outcome is unknown (the token may have rotated) and the session leaves
// the pool.
func refreshKept(ctx context.Context, client *http.Client, l *loadFlags, ss *[]benchSession, k int) (int, error) {
	s, status, err := refreshOnce(ctx, client, l, (*ss)[k].refresh)
	if err != nil || status != http.StatusOK {
		*ss = append((*ss)[:k], (*ss)[k+1:]...)
		return status, err
	}
	(*ss)[k] = s
	return status, nil
}

// mixOps are the operations of `bench mixed`.
var mixOps = []string{"signup", "refresh", "promote"}

// benchMixed runs sign-ups, refreshes and promotions in the proportions of
// mix ("signup=50,refresh=45,promote=5"): each client refreshes the guests it
// signed up and promotes some of them.
func benchMixed(ctx context.Context, l *loadFlags, mix string) error {
	cum, err := parseWeights("bench mixed", mix, mixOps)
	if err != nil {
		return err
	}
	client := l.httpClient()
	signupBody, _ := json.Marshal(map[string]string{"client_id": l.clientID, "session_type": "refresh_token"})
	own, err := signupSessions(ctx, l, client, 4)
	if err != nil {
		return err
	}
	rngs := make([]*rand.Rand, l.conc)
	for w := range rngs {
		rngs[w] = rand.New(rand.NewPCG(uint64(w), 22))
	}
	return runLoad(ctx, l, "operations", func(ctx context.Context, w, _ int) (string, int, error) {
		ss := own[w]
		r := rngs[w].IntN(cum[len(cum)-1])
		switch {
		case r < cum[0] || len(ss) == 0:
			s, status, _, err := signupTokens(ctx, client, l.target+"/api/anonymous_user/signup", signupBody)
			if err == nil && status == http.StatusOK {
				// Keep a bounded pool, replacing at random.
				if len(ss) < 64 {
					own[w] = append(ss, s)
				} else {
					ss[rngs[w].IntN(len(ss))] = s
				}
			}
			return jwtSubject(s.access), status, err
		case r < cum[1]:
			status, err := refreshKept(ctx, client, l, &own[w], rngs[w].IntN(len(ss)))
			return "", status, err
		default:
			// Promotion ends the guest's sessions: it leaves the pool.
			k := rngs[w].IntN(len(ss))
			s := ss[k]
			own[w] = append(ss[:k], ss[k+1:]...)
			status, _, err := promoteGuest(ctx, client, l.target, s.access)
			return "", status, err
		}
	})
}
