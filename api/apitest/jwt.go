package apitest

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
)

// Claims is a JWT's payload, unverified: for tests that check what a token
// says (those that check its signature use a relying party library).
func Claims(t *testing.T, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
