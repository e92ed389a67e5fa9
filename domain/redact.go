package domain

import "encoding/json"

// credentialFields are event fields that hold hashes of credentials. They
// belong in the log (it is the source of truth) but not on operator screens.
var credentialFields = []string{"password_hash", "token_hash", "previous_token_hash"}

// RedactCredentials returns an event payload with credential hashes
// replaced by "[redacted]".
func RedactCredentials(data json.RawMessage) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(data, &m) != nil {
		return data
	}
	changed := false
	for _, f := range credentialFields {
		if _, ok := m[f]; ok {
			m[f] = "[redacted]"
			changed = true
		}
	}
	if !changed {
		return data
	}
	out, _ := json.Marshal(m)
	return out
}
