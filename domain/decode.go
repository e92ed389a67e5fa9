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
// written to give the same results. It takes only what the two are known to
// agree on: payloads shorter than encoding/json's nesting limit could matter
// (10,000), of printable ASCII without escapes (encoding/json matches keys
// with Unicode case folding, where 'ſ' is 's'); json.Marshal writes events
// so, bar text that is not ASCII. Anything else, and anything it fails on,
// encoding/json decodes afresh, so errors are encoding/json's. The fuzz test
// FuzzDecodeEvent holds the two to the same values and errors for every
// event type.
func unmarshalPayload(data []byte, v any) error {
	if len(data) < 10000 && plainASCII(data) {
		if segjson.Unmarshal(data, v) == nil {
			return nil
		}
		// A failure may have set fields: start again from the zero value.
		reflect.ValueOf(v).Elem().SetZero()
	}
	return json.Unmarshal(data, v)
}

// plainASCII reports whether data is printable ASCII without backslashes.
func plainASCII(data []byte) bool {
	for _, c := range data {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}
