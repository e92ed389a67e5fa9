package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"sync"
)

// DecodeJSON reads a JSON object body strictly into v: unknown fields,
// trailing data, a key given twice at any level, and a key that matches a
// field only when case is ignored are all refused (400 InvalidJSON).
//
// encoding/json matches keys case-insensitively and lets the last of two
// equal keys win; a proxy, WAF or logger in front that reads the first key,
// or only the exact spelling, would then see another request than the one
// handled.
func DecodeJSON(r *http.Request, v any) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		return errUnsupportedMediaType
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return errBodyTooLarge
		}
		return BadRequest("InvalidJSON", "invalid_request", "the request body could not be read")
	}
	if err := checkJSONKeys(body, reflect.TypeOf(v)); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return BadRequest("InvalidJSON", "invalid_request", "the request body is not a valid JSON object of the expected shape")
	}
	if dec.More() {
		return BadRequest("InvalidJSON", "invalid_request", "the request body has trailing data")
	}
	return nil
}

var errJSONShape = BadRequest("InvalidJSON", "invalid_request", "the request body is not a valid JSON object of the expected shape")

// maxJSONDepth bounds nesting: request bodies are at most three levels deep.
const maxJSONDepth = 32

// checkJSONKeys walks the first JSON value of body alongside the type t it
// is decoded into, refusing duplicate keys in any object and keys that
// spell a field of t with other case. Keys t does not know are left to the
// decoder. Malformed JSON is refused too.
func checkJSONKeys(body []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return errJSONShape
	}
	return checkJSONValue(dec, tok, t, 0)
}

func checkJSONValue(dec *json.Decoder, tok json.Token, t reflect.Type, depth int) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil // a scalar
	}
	if depth >= maxJSONDepth {
		return BadRequest("InvalidJSON", "invalid_request", "the request body is nested too deeply")
	}
	switch d {
	case '{':
		var fields map[string]reflect.Type
		if t != nil && t.Kind() == reflect.Struct {
			fields = jsonFields(t)
		}
		seen := map[string]bool{}
		for dec.More() {
			kt, err := dec.Token()
			key, isKey := kt.(string)
			if err != nil || !isKey {
				return errJSONShape
			}
			if seen[key] {
				return BadRequest("InvalidJSON", "invalid_request", "the request body has a key twice"+keyName(fields, key))
			}
			seen[key] = true
			var ft reflect.Type
			switch {
			case fields != nil:
				if ft = fields[key]; ft == nil {
					for name := range fields {
						if strings.EqualFold(name, key) {
							return BadRequest("InvalidJSON", "invalid_request", `the key "`+name+`" is spelt with other case`)
						}
					}
				}
			case t != nil && t.Kind() == reflect.Map:
				ft = t.Elem()
			}
			vt, err := dec.Token()
			if err != nil {
				return errJSONShape
			}
			if err := checkJSONValue(dec, vt, ft, depth+1); err != nil {
				return err
			}
		}
	case '[':
		var et reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			et = t.Elem()
		}
		for dec.More() {
			vt, err := dec.Token()
			if err != nil {
				return errJSONShape
			}
			if err := checkJSONValue(dec, vt, et, depth+1); err != nil {
				return err
			}
		}
	}
	if _, err := dec.Token(); err != nil { // the closing delimiter
		return errJSONShape
	}
	return nil
}

// keyName names a repeated key in the answer when it is one of ours (not
// whatever a client sent).
func keyName(fields map[string]reflect.Type, key string) string {
	if _, ok := fields[key]; ok {
		return `: "` + key + `"`
	}
	return ""
}

var jsonFieldCache sync.Map // reflect.Type → map[string]reflect.Type

// jsonFields maps the JSON names of a struct's fields (embedded structs'
// promoted fields included) to their types, as encoding/json names them.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := jsonFieldCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	addJSONFields(t, m, 0)
	jsonFieldCache.Store(t, m)
	return m
}

// addJSONFields adds t's own fields before those of its embedded structs:
// the shallower field wins, as in encoding/json.
func addJSONFields(t reflect.Type, m map[string]reflect.Type, depth int) {
	var embedded []reflect.Type
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				embedded = append(embedded, et)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, taken := m[name]; !taken {
			m[name] = f.Type
		}
	}
	if depth < 8 {
		for _, et := range embedded {
			addJSONFields(et, m, depth+1)
		}
	}
}
