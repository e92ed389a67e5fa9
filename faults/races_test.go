package faults_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/testenv"
)

func guest(t *testing.T, n *testenv.Node) app.Issued {
	t.Helper()
	is, err := n.Service.SignUpAnonymous(context.Background(), app.SignUpAnonymous{ClientID: "idstream-dev", Kind: domain.SessionKindRefreshToken})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// parallel runs fns at once and returns their errors.
func parallel(fns ...func() error) []error {
	errs := make([]error, len(fns))
	var start, wg sync.WaitGroup
	start.Add(1)
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			errs[i] = fn()
		}()
	}
	start.Done()
	wg.Wait()
	return errs
}

// TestPromotionRaces: 1,000 races of two guests promoting to one login ID.
// Exactly one wins each; the loser gets LoginIDTaken and is left exactly as
// it was (a guest, no login ID, its session live).
func TestPromotionRaces(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheap})
	ctx := context.Background()
	const races = 1000
	outcomes := map[string]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range races {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			a, b := guest(t, n), guest(t, n)
			id, err := loginid.Parse(loginid.Email, fmt.Sprintf("race%d@example.com", i))
			if err != nil {
				t.Error(err)
				return
			}
			promote := func(g app.Issued) func() error {
				return func() error {
					_, err := n.Service.Promote(ctx, app.PromoteInput{UserID: g.UserID, OldSessionID: g.SessionID, LoginID: id, Password: password})
					return err
				}
			}
			errs := parallel(promote(a), promote(b))
			key := fmt.Sprintf("%v / %v", errs[0], errs[1])
			switch {
			case errs[0] == nil && errors.Is(errs[1], domain.ErrLoginIDTaken):
				key = "first won"
				loserLeftAlone(t, n, b)
			case errs[1] == nil && errors.Is(errs[0], domain.ErrLoginIDTaken):
				key = "second won"
				loserLeftAlone(t, n, a)
			default:
				t.Errorf("race %d: %s", i, key)
			}
			mu.Lock()
			outcomes[key]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	t.Logf("%d races: %v", races, outcomes)
	if outcomes["first won"]+outcomes["second won"] != races {
		t.Fatalf("outcomes: %v", outcomes)
	}
}

func loserLeftAlone(t *testing.T, n *testenv.Node, g app.Issued) {
	u, _, err := n.Service.LoadUser(context.Background(), g.UserID)
	_, login := u.LoginID()
	if err != nil || !u.IsAnonymous() || login != "" || u.PasswordHash() != "" {
		t.Errorf("the loser %s changed: anonymous %v, login %q (%v)", g.UserID, u.IsAnonymous(), login, err)
	}
	s, _, err := n.Service.LoadSession(context.Background(), g.SessionID)
	if err != nil || s.Revoked() {
		t.Errorf("the loser's session %s was revoked (%v)", g.SessionID, err)
	}
}

// TestRefreshReuseRaces: 200 rounds of the same refresh token presented
// twice at once. One presentation wins; the other is a reuse, which
// revokes the session (RFC 9700), so the winner's new token stops too.
func TestRefreshReuseRaces(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheap})
	ctx := context.Background()
	wins := 0
	for i := range 200 {
		g := guest(t, n)
		var issued [2]app.Issued
		errs := parallel(
			func() (err error) {
				issued[0], err = n.Service.Refresh(ctx, "idstream-dev", g.SessionToken, app.Meta{})
				return
			},
			func() (err error) {
				issued[1], err = n.Service.Refresh(ctx, "idstream-dev", g.SessionToken, app.Meta{})
				return
			},
		)
		winner := -1
		for k, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: both presentations of one refresh token succeeded", i)
				}
				winner = k
			case errors.Is(err, domain.ErrRefreshTokenReused), errors.Is(err, domain.ErrSessionRevoked), errors.Is(err, app.ErrBusy):
			default:
				t.Fatalf("round %d: %v", i, err)
			}
		}
		if winner >= 0 {
			wins++
			// The reuse revoked the session: the winner's token is dead too,
			// unless the loser lost before the winner wrote (then it was a
			// plain conflict and the session lives).
			if _, err := n.Service.Refresh(ctx, "idstream-dev", issued[winner].SessionToken, app.Meta{}); err == nil {
				if !errors.Is(errs[1-winner], app.ErrBusy) {
					t.Fatalf("round %d: the session survived a detected reuse", i)
				}
			}
		}
	}
	t.Logf("200 rounds: %d with one winner, %d where both lost to the revocation", wins, 200-wins)
}

// TestReaperVersusPromotion: 200 idle guests are expired by the reaper's
// command and promoted at the same moment. Each ends either expired (the
// promotion refused with UserExpired) or promoted (the expiry found a
// regular user) — never both, never neither.
func TestReaperVersusPromotion(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: cheap})
	ctx := context.Background()
	var gs []app.Issued
	for range 200 {
		gs = append(gs, guest(t, n))
	}
	// Past every session's lifetime and the web guest grace.
	n.Clock.Advance(400 * 24 * time.Hour)
	out := map[string]int{}
	for i, g := range gs {
		id, _ := loginid.Parse(loginid.Email, fmt.Sprintf("reap%d@example.com", i))
		var x app.ExpiryOutcome
		errs := parallel(
			func() (err error) {
				x, err = n.Service.ExpireAnonymousUser(ctx, g.UserID, nil, false, app.Meta{})
				return
			},
			func() error {
				_, err := n.Service.Promote(ctx, app.PromoteInput{UserID: g.UserID, LoginID: id, Password: password})
				return err
			},
		)
		u, _, err := n.Service.LoadUser(ctx, g.UserID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case errs[0] == nil && x.Expired && errors.Is(errs[1], domain.ErrUserExpired) && u.Expired() && u.IsAnonymous():
			out["expired"]++
		case errs[1] == nil && !x.Expired && !u.Expired() && !u.IsAnonymous():
			out["promoted"]++
		default:
			t.Fatalf("guest %d: expiry %+v %v, promotion %v, expired %v anonymous %v", i, x, errs[0], errs[1], u.Expired(), u.IsAnonymous())
		}
	}
	t.Logf("200 races of expiry and promotion: %v", out)
}
