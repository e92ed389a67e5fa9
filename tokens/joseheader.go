package tokens

import (
	"bytes"
	"encoding/json"
	"strings"
)

// maxHeaderDepth bounds a JOSE header's nesting (a jwk is one level down).
const maxHeaderDepth = 8

// plainHeader reports whether a JOSE header is one JSON object with no key
// twice in any of its objects, not even spelt with other case. Two readers
// look at a header here: encoding/json (alg, typ, a DPoP jwk's members),
// which matches keys case-insensitively and lets the last of two equal
// keys win, and go-jose (kid, jwk, the algorithm it verifies with), which
// matches them exactly. With such keys refused, both read the same header.
func plainHeader(raw []byte) bool {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return false
	}
	if !plainValue(dec, tok, 0) {
		return false
	}
	_, err = dec.Token()
	return err != nil // nothing after the object
}

func plainValue(dec *json.Decoder, tok json.Token, depth int) bool {
	d, ok := tok.(json.Delim)
	if !ok {
		return true
	}
	if depth >= maxHeaderDepth {
		return false
	}
	seen := map[string]bool{}
	for dec.More() {
		if d == '{' {
			kt, err := dec.Token()
			key, isKey := kt.(string)
			if err != nil || !isKey || seen[strings.ToLower(key)] {
				return false
			}
			seen[strings.ToLower(key)] = true
		}
		vt, err := dec.Token()
		if err != nil || !plainValue(dec, vt, depth+1) {
			return false
		}
	}
	_, err := dec.Token() // the closing delimiter
	return err == nil
}
