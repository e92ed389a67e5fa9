package eventstore

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// The fast envelope decoder must give what encoding/json gives, or step
// aside.
func TestDecodeEnvelopeFastMatchesEncodingJSON(t *testing.T) {
	written, _ := json.Marshal(Envelope{ID: "e1", Type: "user.created.v1", OccurredAt: time.Date(2026, 4, 1, 2, 3, 4, 5, time.UTC),
		CorrelationID: "c", Actor: "admin-key:ab", Data: json.RawMessage(`{"a":"}\"{","b":[1,{"c":null}],"d":"é"}`)})
	cases := []string{
		string(written),
		`{"id":"x","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{}}`,
		`{"data":{"a":1},"id":"x","type":"t","occurred_at":"2026-04-01T00:00:00+02:00"}`,
		`{"id":"x","id":"y","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{"a":1},"data":{"b":2}}`,
		`{"id":"x\u0041","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{}}`,
		`{"id":"é","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{}}`,
		"{\"id\":\"\xff\",\"type\":\"t\",\"occurred_at\":\"2026-04-01T00:00:00Z\",\"data\":{}}",
		`{"ID":"x","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{}}`,
		`{"id":"x","extra":1,"type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{}}`,
		`{"id":null,"type":"t","occurred_at":"2026-04-01T00:00:00Z","data":null}`,
		`{"id":"x","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":[1]}`,
		`{"id":"x","type":"t","occurred_at":"yesterday","data":{}}`,
		`{ "id": "x", "type": "t", "occurred_at": "2026-04-01T00:00:00Z", "data": {} }`,
		`{"id":"x","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{}`,
		`{"id":"x","type":"t","occurred_at":"2026-04-01T00:00:00Z","data":{}}x`,
		`{"id":1}`,
		`{}`,
		`[]`,
		``,
	}
	for _, c := range cases {
		want, wantErr := func() (Envelope, error) {
			var e Envelope
			err := json.Unmarshal([]byte(c), &e)
			return e, err
		}()
		got, err := DecodeRecord("s", 1, []byte(c))
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("%s: error %v, want %v", c, err, wantErr)
		}
		if err == nil && !reflect.DeepEqual(got.Envelope, want) {
			t.Fatalf("%s:\ngot  %#v\nwant %#v", c, got.Envelope, want)
		}
	}
	var e Envelope
	if !decodeEnvelopeFast(written, &e) {
		t.Fatal("the fast path does not take what Append writes")
	}
}

// Mutations of envelopes: whatever the fast path takes, encoding/json takes
// too, with the same result.
func TestDecodeEnvelopeFastOnMutations(t *testing.T) {
	seeds := []string{
		`{"id":"x","type":"t","occurred_at":"2026-04-01T00:00:00.123456789Z","data":{"a":"b\"c\\d\u00e9\n","n":-12.5e+3,"z":0,"l":[true,false,null,{},[]],"o":{"p":[1,2]}}}`,
		`{"id":"x","type":"t","occurred_at":"2026-04-01T00:00:00Z","correlation_id":"c","causation_id":"d","actor":"e","data":{"x":[0.5,1E9,-0]}}`,
	}
	alphabet := []byte(`{}[]:,"\\/ubfnrt0123456789.-+eE aé` + "\x00\x1f\x7f\xff")
	rnd := uint64(1)
	next := func(n int) int {
		rnd ^= rnd << 13
		rnd ^= rnd >> 7
		rnd ^= rnd << 17
		return int(rnd % uint64(n))
	}
	fast := 0
	for range 200000 {
		b := []byte(seeds[next(len(seeds))])
		for range 1 + next(3) {
			at := next(len(b))
			switch next(3) {
			case 0:
				b[at] = alphabet[next(len(alphabet))]
			case 1:
				b = append(b[:at], b[at+1:]...)
			case 2:
				b = append(b[:at], append([]byte{alphabet[next(len(alphabet))]}, b[at:]...)...)
			}
		}
		var e Envelope
		if !decodeEnvelopeFast(b, &e) {
			continue
		}
		fast++
		var want Envelope
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%s: the fast path took what encoding/json refuses: %v", b, err)
		}
		if !reflect.DeepEqual(e, want) {
			t.Fatalf("%s:\ngot  %#v\nwant %#v", b, e, want)
		}
	}
	if fast < 1000 {
		t.Fatalf("only %d mutations went the fast way", fast)
	}
	t.Logf("%d of 200000 mutations went the fast way", fast)
}
