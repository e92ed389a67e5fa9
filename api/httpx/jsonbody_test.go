package httpx

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestCheckJSONKeys(t *testing.T) {
	type inner struct {
		Fields []string `json:"fields"`
	}
	type Embedded struct {
		Note string `json:"note"`
	}
	type req struct {
		Embedded
		Format string            `json:"format"`
		CSV    *inner            `json:"csv"`
		Items  []inner           `json:"items"`
		Labels map[string]inner  `json:"labels"`
		Any    any               `json:"any"`
		Skip   string            `json:"-"`
		Plain  string            // no tag: named as the field
		Extra  map[string]string `json:"extra,omitempty"`
	}
	typ := reflect.TypeOf(&req{})
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"format":"csv","csv":{"fields":["sub"]}}`, true},
		{`{"format":"csv","unknown":{"a":1,"A":2}}`, true}, // unknown keys are the decoder's business; no case rule inside them
		{`{"note":"n","Plain":"p","items":[{"fields":[]},{"fields":[]}],"labels":{"a":{"fields":[]},"A":{"fields":[]}}}`, true},
		{`{"client\u005fid":1}`, true},
		{`{"format":"csv","format":"ndjson"}`, false},
		{`{"format":"csv","form\u0061t":"ndjson"}`, false},
		{`{"csv":{"fields":["sub"],"fields":["login_id"]}}`, false},
		{`{"items":[{"fields":[]},{"fields":[],"fields":[]}]}`, false},
		{`{"labels":{"a":{},"a":{}}}`, false},
		{`{"any":{"x":{"y":1,"y":2}}}`, false},
		{`{"unknown":[{"k":1,"k":2}]}`, false},
		{`{"Format":"csv"}`, false},
		{`{"FORMAT":"csv"}`, false},
		{`{"csv":{"Fields":["sub"]}}`, false},
		{`{"items":[{"FIELDS":[]}]}`, false},
		{`{"labels":{"a":{"Fields":[]}}}`, false},
		{`{"Note":"n"}`, false},
		{`{"plain":"p"}`, false},
		{`{"skip":1,"Skip":2}`, true}, // a "-" field is not a field
		{"{\"c\u017fv\":{}}", false},  // ſ (long s) folds to s: encoding/json would fill CSV
		{`{"format":`, false},
		{`{"format":"x",}`, false},
		{strings.Repeat(`{"any":`, 40) + `1` + strings.Repeat(`}`, 40), false},
	} {
		err := checkJSONKeys([]byte(tc.body), typ)
		var e *Error
		if (err == nil) != tc.ok || (err != nil && (!errors.As(err, &e) || e.Status != 400 || e.Reason != "InvalidJSON")) {
			t.Errorf("%s: %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
}
