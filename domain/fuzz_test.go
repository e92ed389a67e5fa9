package domain_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/idstream/idstream/domain"
)

// FuzzDecodeEvent feeds arbitrary payloads to every event type's decoder
// (upcasters included): decoding never panics, and what decodes re-encodes
// to a payload that decodes to the same encoding (no field is lost or
// changed on a round trip).
func FuzzDecodeEvent(f *testing.F) {
	types := append(domain.EventTypes(), domain.RetiredEventTypes()...)
	f.Add(uint8(0), []byte(`{"user_id":"u","client_id":"c","created_at":"2026-01-01T00:00:00Z"}`))
	f.Add(uint8(3), []byte(`{"session_id":"s","user_id":"u","kind":"cookie","idle_timeout_seconds":-1}`))
	f.Add(uint8(1), []byte(`{"jwk":{"kty":"EC","crv":"P-256"},"alg":"ES256"}`))
	f.Add(uint8(7), []byte(`null`))
	f.Add(uint8(9), []byte(`{"login_id":"\u0000","login_id_type":[]}`))
	f.Fuzz(func(t *testing.T, i uint8, data []byte) {
		typ := types[int(i)%len(types)]
		ev, err := domain.DecodeEvent(typ, data)
		if err != nil {
			return
		}
		if ev.EventType() != typ && !upcastOf(typ, ev.EventType()) {
			t.Fatalf("%s decoded as %s", typ, ev.EventType())
		}
		first, err := json.Marshal(ev)
		if err != nil {
			t.Fatalf("re-encode %s: %v", typ, err)
		}
		again, err := domain.DecodeEvent(ev.EventType(), first)
		if err != nil {
			t.Fatalf("%s: own encoding does not decode: %v\n%s", typ, err, first)
		}
		second, _ := json.Marshal(again)
		if !bytes.Equal(first, second) {
			t.Fatalf("%s round trip changed:\n%s\n%s", typ, first, second)
		}
	})
}

// upcastOf reports whether an old type decodes to a newer version of itself.
func upcastOf(old, current string) bool {
	return len(old) > 3 && len(current) > 3 && old[:len(old)-3] == current[:len(current)-3]
}
