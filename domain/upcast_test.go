package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/idstream/idstream/domain"
)

// promotedV1 is a user.promoted.v1 payload as the release before v2 wrote it.
const promotedV1 = `{"user_id":"5f0b2c1e-8d4a-4c3b-9e21-7a6d5c4b3a01","login_id_type":"email","login_id":"ada@example.com",` +
	`"guest_created_at":"2026-01-02T03:04:05Z","promoted_at":"2026-01-02T05:04:05.123456789Z"}`

func TestUserPromotedV1UpcastsToV2(t *testing.T) {
	schemas := compileSchemas(t)
	if err := validate(schemas[domain.TypeUserPromotedV1], []byte(promotedV1)); err != nil {
		t.Fatalf("the v1 sample does not match the v1 schema: %v", err)
	}
	ev, err := domain.DecodeEvent(domain.TypeUserPromotedV1, []byte(promotedV1))
	if err != nil {
		t.Fatal(err)
	}
	want := domain.UserPromoted{UserID: webGuestID, ClientID: "", GuestMethod: domain.GuestMethodUnknown, LoginIDType: "email",
		LoginID: "ada@example.com", GuestCreatedAt: t0, PromotedAt: t0.Add(2*time.Hour + 123456789)}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("upcast:\n got %#v\nwant %#v", ev, want)
	}
	if ev.EventType() != domain.TypeUserPromoted {
		t.Fatalf("upcast event type %s", ev.EventType())
	}
	// Write models fold it like a v2 promotion.
	u := domain.EvolveUser(given(domain.EvolveUser, domain.Event(domain.AnonymousUserCreated{UserID: webGuestID, ClientID: "c1", CreatedAt: t0})), ev)
	if typ, id := u.LoginID(); u.IsAnonymous() || typ != "email" || id != "ada@example.com" {
		t.Fatalf("evolved: %+v", u)
	}
	// The versions are distinct shapes: neither schema accepts the other.
	v2, err := json.Marshal(promotedFromDecide(t))
	if err != nil {
		t.Fatal(err)
	}
	if validate(schemas[domain.TypeUserPromotedV1], v2) == nil || validate(schemas[domain.TypeUserPromoted], []byte(promotedV1)) == nil {
		t.Fatal("the v1 and v2 schemas accept each other's payloads")
	}
}

func TestUserPromotedV2RoundTrips(t *testing.T) {
	ev := promotedFromDecide(t)
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	got, err := domain.DecodeEvent(domain.TypeUserPromoted, raw)
	if err != nil || !reflect.DeepEqual(got, ev) {
		t.Fatalf("got %#v, %v; want %#v", got, err, ev)
	}
}

func TestDecodeUnknownVersion(t *testing.T) {
	for _, typ := range []string{"user.promoted.v3", "user.promoted.v0", "user.promoted", "session.started.v2"} {
		if _, err := domain.DecodeEvent(typ, []byte(promotedV1)); !errors.Is(err, domain.ErrUnknownEventType) {
			t.Errorf("%s: %v", typ, err)
		}
	}
	if _, err := domain.DecodeEvent(domain.TypeUserPromotedV1, []byte(`{"user_id":`)); err == nil || errors.Is(err, domain.ErrUnknownEventType) {
		t.Errorf("truncated v1 payload: %v", err)
	}
}

// TestRetiredTypesDecodeToCurrent: every retired type decodes to the
// current version of its event.
func TestRetiredTypesDecodeToCurrent(t *testing.T) {
	for _, typ := range domain.RetiredEventTypes() {
		ev, err := domain.DecodeEvent(typ, []byte(`{}`))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if !upcastOf(typ, ev.EventType()) {
			t.Errorf("%s decodes to %s", typ, ev.EventType())
		}
	}
}

func promotedFromDecide(t *testing.T) domain.UserPromoted {
	t.Helper()
	guest := given(domain.EvolveUser, domain.Event(domain.AnonymousUserCreated{UserID: webGuestID, ClientID: clientID, CreatedAt: t0}))
	p, err := domain.DecidePromote(guest, domain.LoginID{}, domain.Promote{LoginIDType: "email", LoginID: "ada@example.com",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=2$c2FsdA$aGFzaA", Now: t0.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	ev := p.User[0].(domain.UserPromoted)
	if ev.ClientID != clientID || ev.GuestMethod != domain.MethodAnonymous {
		t.Fatalf("decided %+v", ev)
	}
	return ev
}
