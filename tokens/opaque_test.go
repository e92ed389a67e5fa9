package tokens_test

import (
	"crypto/rand"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/idstream/idstream/tokens"
)

func TestOpaqueRoundTrip(t *testing.T) {
	id := uuid.NewString()
	tok, hash, err := tokens.NewOpaque(rand.Reader, id)
	if err != nil {
		t.Fatal(err)
	}
	gotID, gotHash, err := tokens.ParseOpaque(tok)
	if err != nil || gotID != id || gotHash != hash || strings.Contains(hash, tok) {
		t.Fatalf("parse: %v %v %v", gotID, gotHash, err)
	}
	tok2, hash2, _ := tokens.NewOpaque(rand.Reader, id)
	if tok2 == tok || hash2 == hash {
		t.Fatal("two tokens for one session are equal")
	}
}

func TestOpaqueRejectsMalformed(t *testing.T) {
	id := uuid.NewString()
	good, _, _ := tokens.NewOpaque(rand.Reader, id)
	_, secret, _ := strings.Cut(good, ".")
	for _, bad := range []string{"", "abc", id, id + ".", id + ".short", "not-a-uuid." + secret, id + "." + secret + "=",
		id + "." + secret + "AA", strings.Repeat("a", 200), id + "." + strings.Repeat("*", 43)} {
		if _, _, err := tokens.ParseOpaque(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}
