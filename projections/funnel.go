package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
)

// Funnel projects what becomes of guests (funnel_guests): the operator's
// picture of conversion and orphan accounts.
type Funnel struct{}

var (
	insertFunnelGuest = NewInsert("funnel_guests", "id", "client_id", "method", "created_at", "state", "login_id_type",
		"ended_at", "version")
	funnelKeyPair = NewUpdate("funnel_guests", "id", Set("method"), Set("version"))
	funnelEnded   = NewUpdate("funnel_guests", "id", Set("state"), Set("login_id_type"), Set("ended_at"), Set("version"))
)

// Name implements Projector.
func (Funnel) Name() string { return "funnel" }

// Tables implements Projector.
func (Funnel) Tables() []string { return []string{"funnel_guests"} }

// Apply implements Projector.
func (Funnel) Apply(q *Queue, rec eventstore.Record, ev domain.Event) error {
	seq := int64(rec.Sequence)
	switch e := ev.(type) {
	case domain.AnonymousUserCreated:
		q.Insert(insertFunnelGuest, e.UserID, e.ClientID, "web", e.CreatedAt, "anonymous", nil, nil, seq)
	case domain.AnonymousKeyRegistered:
		// Keys are registered to guests only (and kept off once promoted).
		q.Update(funnelKeyPair, e.UserID, "key_pair", seq)
	case domain.UserPromoted:
		// By the login ID's type, or "external" for an identity provider
		// (the login ID is then empty).
		how := e.LoginIDType
		if e.Method == domain.MethodExternal {
			how = domain.MethodExternal
		}
		q.Update(funnelEnded, e.UserID, "promoted", how, e.PromotedAt, seq)
	case domain.AnonymousUserMerged:
		q.Update(funnelEnded, e.GuestID, "merged", nil, e.MergedAt, seq)
	case domain.AnonymousUserExpired:
		q.Update(funnelEnded, e.UserID, "expired", nil, e.ExpiredAt, seq)
	case domain.UserDeleted:
		// Any user may be deleted; only a guest's row (if any) changes.
		q.Exec(`UPDATE funnel_guests SET state = 'deleted', ended_at = $2, version = $3 WHERE id = $1 AND state = 'anonymous'`,
			e.UserID, e.DeletedAt, seq)
	}
	return nil
}

// FunnelDay is one day's (UTC, by the guests' creation) counts for one
// client: of the guests created that day, what became of them by now.
type FunnelDay struct {
	Day      string `json:"day"`
	ClientID string `json:"client_id"`
	FunnelCounts
}

// FunnelCounts are the counts of a cohort of guests.
type FunnelCounts struct {
	// Created by method: web (a session only) or key_pair (a device key).
	Created map[string]int64 `json:"created"`
	// Promoted by the guest's method, and by login ID type ("external": an
	// identity provider).
	Promoted            map[string]int64 `json:"promoted"`
	PromotedByLoginType map[string]int64 `json:"promoted_by_login_id_type"`
	Merged              int64            `json:"merged"`
	Expired             int64            `json:"expired"`
	StillAnonymous      int64            `json:"still_anonymous"`
	Deleted             int64            `json:"deleted"`
}

func newCounts() FunnelCounts {
	return FunnelCounts{Created: map[string]int64{"web": 0, "key_pair": 0}, Promoted: map[string]int64{"web": 0, "key_pair": 0},
		PromotedByLoginType: map[string]int64{}}
}

func (c *FunnelCounts) add(method, state, loginType string, n int64) {
	c.Created[method] += n
	switch state {
	case "promoted":
		c.Promoted[method] += n
		c.PromotedByLoginType[loginType] += n
	case "merged":
		c.Merged += n
	case "expired":
		c.Expired += n
	case "anonymous":
		c.StillAnonymous += n
	case "deleted":
		c.Deleted += n
	}
}

func (c FunnelCounts) created() int64 { return c.Created["web"] + c.Created["key_pair"] }

// FunnelTotals sums a report's days, with the rates.
type FunnelTotals struct {
	FunnelCounts
	// ConversionRate: promoted or merged, of the guests created.
	ConversionRate float64 `json:"conversion_rate"`
	// OrphanShare: expired or still anonymous, of the guests created (the
	// accounts no one came back to claim).
	OrphanShare float64 `json:"orphan_share"`
	// TimeToPromotion of the promoted guests, in seconds from creation;
	// null when none was promoted.
	TimeToPromotion struct {
		Median *float64 `json:"median_seconds"`
		P90    *float64 `json:"p90_seconds"`
	} `json:"time_to_promotion"`
}

// FunnelReport is the funnel of the guests created in [From, To).
type FunnelReport struct {
	From     time.Time    `json:"from"`
	To       time.Time    `json:"to"`
	ClientID string       `json:"client_id,omitempty"`
	Days     []FunnelDay  `json:"days"`
	Totals   FunnelTotals `json:"totals"`
}

// Funnel reads the funnel of guests created in [from, to), of one client
// or (clientID empty) all.
func (r Reads) Funnel(ctx context.Context, from, to time.Time, clientID string) (FunnelReport, error) {
	rep := FunnelReport{From: from.UTC(), To: to.UTC(), ClientID: clientID, Days: []FunnelDay{}}
	rep.Totals.FunnelCounts = newCounts()
	rows, err := r.Pool.Query(ctx, `SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), client_id, method, state,
		coalesce(login_id_type, ''), count(*) FROM funnel_guests
		WHERE created_at >= $1 AND created_at < $2 AND ($3 = '' OR client_id = $3)
		GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2`, from, to, clientID)
	if err != nil {
		return rep, fmt.Errorf("projections: funnel: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var day, client, method, state, loginType string
		var n int64
		if err := rows.Scan(&day, &client, &method, &state, &loginType, &n); err != nil {
			return rep, err
		}
		if len(rep.Days) == 0 || rep.Days[len(rep.Days)-1].Day != day || rep.Days[len(rep.Days)-1].ClientID != client {
			rep.Days = append(rep.Days, FunnelDay{Day: day, ClientID: client, FunnelCounts: newCounts()})
		}
		rep.Days[len(rep.Days)-1].add(method, state, loginType, n)
		rep.Totals.add(method, state, loginType, n)
	}
	if err := rows.Err(); err != nil {
		return rep, err
	}
	t := &rep.Totals
	if c := t.created(); c > 0 {
		t.ConversionRate = float64(t.Promoted["web"]+t.Promoted["key_pair"]+t.Merged) / float64(c)
		t.OrphanShare = float64(t.Expired+t.StillAnonymous) / float64(c)
	}
	if err := r.Pool.QueryRow(ctx, `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.9) WITHIN GROUP (ORDER BY d)
		FROM (SELECT extract(epoch FROM ended_at - created_at)::float8 AS d FROM funnel_guests
		WHERE state = 'promoted' AND created_at >= $1 AND created_at < $2 AND ($3 = '' OR client_id = $3)) p`,
		from, to, clientID).Scan(&t.TimeToPromotion.Median, &t.TimeToPromotion.P90); err != nil {
		return rep, fmt.Errorf("projections: funnel: %w", err)
	}
	return rep, nil
}
