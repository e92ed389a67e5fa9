package eventstore

import (
	"encoding/json"
	"testing"
	"time"

	segjson "github.com/segmentio/encoding/json"
)

// BenchmarkDecodeEnvelope compares the envelope decoder that reads the log
// (decodeEnvelopeFast, falling back to encoding/json) with segmentio's
// decoder and encoding/json on the same envelopes, as json.Marshal writes
// them (issue 16 asked whether the hand-written one is worth its risk):
//
//	go test ./eventstore -run '^$' -bench DecodeEnvelope -count 5
func BenchmarkDecodeEnvelope(b *testing.B) {
	env := Envelope{ID: "0b8e4a52-6a1f-4d3e-9b1c-2f6f0c1d9a77", Type: "session.started.v1",
		OccurredAt: time.Date(2026, 12, 1, 12, 0, 0, 123456789, time.UTC), CorrelationID: "5f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b",
		Data: json.RawMessage(`{"session_id":"9de7b9af-a409-465d-ad9c-735086f797fe","user_id":"4c41ad78-10bd-434d-989e-77b8bb447b19",` +
			`"client_id":"idstream-dev","kind":"refresh_token","method":"anonymous","token_hash":"QnV0IHRoZSBoYXNoIGlzIGEgaGFzaA",` +
			`"idle_timeout_seconds":2592000,"lifetime_seconds":31449600,"started_at":"2026-12-01T12:00:00.123456789Z"}`)}
	raw, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fast", func(b *testing.B) {
		for range b.N {
			if _, err := decodeRecord("s", 1, raw); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("segmentio", func(b *testing.B) {
		for range b.N {
			var e Envelope
			if err := segjson.Unmarshal(raw, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding_json", func(b *testing.B) {
		for range b.N {
			var e Envelope
			if err := json.Unmarshal(raw, &e); err != nil {
				b.Fatal(err)
			}
		}
	})
}
