package domain

import (
	"encoding/json"
	"reflect"

	segjson "github.com/segmentio/encoding/json"
)

// unmarshaler decodes JSON into v, as json.Unmarshal.
type unmarshaler func(data []byte, v any) error

// unmarshalPayload decodes an event's payload. Reading the log is mostly
// decoding payloads (a replay decodes every event), and encoding/json took
// about five times as long per event as segmentio's encoding/json, which is
// written to give the same results; the fuzz test FuzzDecodeEvent holds the
// two to the same values and the same errors for every event type. Where the
// faster decoder fails, encoding/json decodes afresh: errors, and any input
// the two might disagree on, are encoding/json's.
func unmarshalPayload(data []byte, v any) error {
	if segjson.Unmarshal(data, v) == nil {
		return nil
	}
	// Start again from the zero value: a failed decode may have set fields.
	p := reflect.ValueOf(v).Elem()
	p.SetZero()
	return json.Unmarshal(data, v)
}
