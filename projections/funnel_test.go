package projections_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

// TestFunnelAgainstAScriptedHistory: the funnel of a history whose
// numbers are worked out by hand, live and after a replay from scratch.
func TestFunnelAgainstAScriptedHistory(t *testing.T) {
	s := openStore(t)
	url, pool := testenv.Database(t)
	w := newSubjects(t, s)
	d1 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	d2 := d1.Add(24 * time.Hour)
	guest := func(client string, at time.Time, keyPair bool) string {
		u := uuid.NewString()
		w.add("user", u, domain.AnonymousUserCreated{UserID: u, ClientID: client, CreatedAt: at})
		if keyPair {
			w.add("user", u, domain.AnonymousKeyRegistered{UserID: u, KeyID: uuid.NewString(), Algorithm: "ES256", JWK: json.RawMessage(`{}`), RegisteredAt: at})
		}
		return u
	}
	promote := func(u, client, method, loginType string, created time.Time, after time.Duration) {
		w.add("user", u, domain.UserPromoted{UserID: u, ClientID: client, GuestMethod: method, LoginIDType: loginType, LoginID: uuid.NewString(),
			GuestCreatedAt: created, PromotedAt: created.Add(after)})
	}
	g1 := guest("web", d1, false)
	promote(g1, "web", "anonymous", "email", d1, time.Hour)
	g2 := guest("web", d1, false)
	promote(g2, "web", "anonymous", "phone", d1, 3*time.Hour)
	g3 := guest("web", d1, true)
	promote(g3, "web", domain.MethodAnonymousKey, "email", d1, 10*time.Hour)
	g4 := guest("web", d1, false)
	w.add("user", g4, domain.AnonymousUserMerged{GuestID: g4, IntoUserID: g1, MergedAt: d1.Add(2 * time.Hour)})
	g5 := guest("web", d1, false)
	w.add("user", g5, domain.AnonymousUserExpired{UserID: g5, Reason: "web_guest_grace", ExpiredAt: d2})
	guest("web", d1, true) // still anonymous
	g7 := guest("web", d1, false)
	w.add("user", g7, domain.UserDeleted{UserID: g7, DeletedAt: d2})
	// A regular user, created and deleted: not a guest, not counted.
	r := uuid.NewString()
	w.add("user", r, domain.UserRegistered{UserID: r, ClientID: "web", LoginIDType: "email", LoginID: "r@example.com", RegisteredAt: d1})
	w.add("user", r, domain.UserDeleted{UserID: r, DeletedAt: d2})
	guest("app", d2, false) // still anonymous
	h2 := guest("app", d2, true)
	promote(h2, "app", domain.MethodAnonymousKey, "email", d2, 5*time.Hour)
	// Outside the range asked for.
	guest("web", d1.Add(-48*time.Hour), false)

	startRunner(t, pool, s)
	waitFor(t, "catch-up", caughtUp(t, pool, s))
	reads := projections.Reads{Pool: pool}
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	check := func(when string) {
		t.Helper()
		rep, err := reads.Funnel(context.Background(), from, to, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Days) != 2 || rep.Days[0].Day != "2026-03-01" || rep.Days[0].ClientID != "web" || rep.Days[1].Day != "2026-03-02" || rep.Days[1].ClientID != "app" {
			t.Fatalf("%s: days %+v", when, rep.Days)
		}
		web := rep.Days[0]
		if web.Created["web"] != 5 || web.Created["key_pair"] != 2 || web.Promoted["web"] != 2 || web.Promoted["key_pair"] != 1 ||
			web.PromotedByLoginType["email"] != 2 || web.PromotedByLoginType["phone"] != 1 || web.Merged != 1 || web.Expired != 1 ||
			web.StillAnonymous != 1 || web.Deleted != 1 {
			t.Fatalf("%s: web day %+v", when, web)
		}
		app := rep.Days[1]
		if app.Created["web"] != 1 || app.Created["key_pair"] != 1 || app.Promoted["key_pair"] != 1 || app.StillAnonymous != 1 {
			t.Fatalf("%s: app day %+v", when, app)
		}
		tot := rep.Totals
		if tot.ConversionRate != 5.0/9 || tot.OrphanShare != 3.0/9 || tot.TimeToPromotion.Median == nil ||
			*tot.TimeToPromotion.Median != 4*3600 || math.Abs(*tot.TimeToPromotion.P90-8.5*3600) > 1e-6 {
			t.Fatalf("%s: totals %+v (median %v, p90 %v)", when, tot, deref(tot.TimeToPromotion.Median), deref(tot.TimeToPromotion.P90))
		}
		one, err := reads.Funnel(context.Background(), from, to, "app")
		if err != nil {
			t.Fatal(err)
		}
		if len(one.Days) != 1 || one.Totals.ConversionRate != 0.5 || *one.Totals.TimeToPromotion.Median != 5*3600 {
			t.Fatalf("%s: app only %+v", when, one.Totals)
		}
	}
	check("live")
	if _, err := projections.Replay(context.Background(), replayPool(t, url), s, projections.Funnel{}, projections.ReplayOptions{BatchSize: 3}); err != nil {
		t.Fatal(err)
	}
	check("after a replay from scratch")
	empty, err := reads.Funnel(context.Background(), to, to.Add(24*time.Hour), "")
	if err != nil || len(empty.Days) != 0 || empty.Totals.ConversionRate != 0 || empty.Totals.TimeToPromotion.Median != nil {
		t.Fatalf("empty range: %+v %v", empty, err)
	}
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
