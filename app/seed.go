package app

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/tokens"
)

// SeedWebGuests creates n web guests (refresh-token sessions) as if they had
// signed up at the given time, through the same deciders as sign-up, written
// in large atomic appends. It exists for load tests of the reaper and the
// projections; the tokens are thrown away. progress is called with the count
// so far.
func (s *Lifetime) SeedWebGuests(ctx context.Context, clientID string, n int, at time.Time, progress func(int)) error {
	cl, err := s.client(clientID)
	if err != nil {
		return err
	}
	idle, life, err := lifetimes(cl, domain.SessionKindRefreshToken)
	if err != nil {
		return err
	}
	const perAppend = 200 // guests, two events each
	var done atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for size := range next {
				evs := make([]pending, 0, 2*size)
				for range size {
					userID, sessionID := uuid.NewString(), uuid.NewString()
					created, err := domain.DecideCreateAnonymousUser(domain.User{}, domain.CreateAnonymousUser{UserID: userID, ClientID: clientID, SessionID: sessionID, Now: at})
					if err == nil {
						_, hash, herr := tokens.NewOpaque(s.random, sessionID)
						var started []domain.Event
						if started, err = domain.DecideStartSession(domain.EvolveUser(domain.User{}, created[0]), domain.Session{}, domain.StartSession{
							SessionID: sessionID, ClientID: clientID, Kind: domain.SessionKindRefreshToken, Method: domain.MethodAnonymous,
							TokenHash: hash, IdleTimeout: idle, Lifetime: life, Now: at}); err == nil && herr == nil {
							evs = append(evs, pending{subject: s.userSubject(userID), event: created[0]},
								pending{subject: s.sessionSubject(sessionID), event: started[0]})
						}
					}
				}
				if err := s.appendEvents(ctx, Meta{CorrelationID: "seed"}, evs...); err != nil {
					once.Do(func() { firstErr = err })
					continue
				}
				if progress != nil {
					progress(int(done.Add(int64(size))))
				}
			}
		}()
	}
	for left := n; left > 0 && ctx.Err() == nil; left -= perAppend {
		next <- min(left, perAppend)
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
