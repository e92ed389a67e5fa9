package domain_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/idstream/idstream/domain"
)

// FuzzDecodeEvent feeds arbitrary payloads to every event type's decoder
// (upcasters included): decoding never panics, and what decodes re-encodes
// to a payload that decodes to the same encoding (no field is lost or
// changed on a round trip). The decoder gives exactly what encoding/json
// alone gives: the same event, or the same error.
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
		std, stdErr := domain.DecodeEventStd(typ, data)
		if (err == nil) != (stdErr == nil) || err != nil && err.Error() != stdErr.Error() || !reflect.DeepEqual(ev, std) {
			t.Fatalf("%s %q:\ndecoded %#v (%v)\nencoding/json %#v (%v)", typ, data, ev, err, std, stdErr)
		}
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

// TestDecoderAgreesWithEncodingJSON: the cases where JSON decoders are known
// to differ decode as encoding/json decodes them, for every event type.
func TestDecoderAgreesWithEncodingJSON(t *testing.T) {
	cases := []string{
		`{"USER_ID":"u","Client_Id":"c"}`,                      // keys match without regard to case
		`{"user_id":"a","user_id":"b"}`,                        // the last duplicate wins
		"{\"user_id\":\"\xff\xfe\"}",                           // invalid UTF-8 becomes U+FFFD
		`{"user_id":"\u00e9\ud83d\ude00\ud800"}`,               // escapes, a lone surrogate
		`{"user_id":null,"created_at":null}`,                   // null leaves the zero value
		`{"idle_timeout_seconds":1e3,"lifetime_seconds":"60"}`, // a float and a string for numbers
		`{"idle_timeout_seconds":1.5}`,
		`{"idle_timeout_seconds":99999999999999999999}`, // overflow
		`{"lifetime_seconds":-1,"generation":true}`,
		`{"ſession_id":"x","user_ıd":"y"}`,          // Unicode case folding
		`{"\u017fession_id":"x","\u212aey_id":"k"}`, // the same, escaped
		`{"session_id":"a\"b\u003c"}`,
		`{"jwk":{"kty":"EC","x":[1,2,{"a":null}]},"alg":"ES256"}`,
		`{"jwk":null}`,
		` {"user_id":"u"} `,                     // spaces around
		`{"user_id":"u"}x`,                      // trailing garbage
		`{"user_id":"u",}`,                      // trailing comma
		`{"created_at":"2026-13-01T00:00:00Z"}`, // an impossible time
		`{"created_at":"2026-01-01T00:00:00.123456789+05:30"}`,
		`{"unknown":{"deep":[true,false,null,1.5e-3]},"user_id":"u"}`,
		`[]`, `"s"`, `null`, `{}`, ``, `{"user_id":`,
		`{"changes":[{"field":"a","from":1,"to":{"x":[]}}],"settings":{"clients":[{"client_id":"c"}]}}`,
	}
	// Nesting past encoding/json's limit.
	deep := strings.Repeat("[", 10001) + strings.Repeat("]", 10001)
	cases = append(cases, `{"unknown":`+deep+`,"user_id":"u"}`, `{"jwk":`+deep+`}`)
	types := append(domain.EventTypes(), domain.RetiredEventTypes()...)
	for _, typ := range types {
		for _, c := range cases {
			ev, err := domain.DecodeEvent(typ, []byte(c))
			std, stdErr := domain.DecodeEventStd(typ, []byte(c))
			if (err == nil) != (stdErr == nil) || err != nil && err.Error() != stdErr.Error() || !reflect.DeepEqual(ev, std) {
				t.Errorf("%s %q:\ndecoded %#v (%v)\nencoding/json %#v (%v)", typ, c, ev, err, std, stdErr)
			}
		}
	}
}
