package tokens

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

var headerNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestPlainHeader(t *testing.T) {
	for _, c := range []struct {
		header string
		plain  bool
	}{
		{`{"alg":"ES256","typ":"dpop+jwt","jwk":{"kty":"EC","crv":"P-256","x":"a","y":"b"}}`, true},
		{` {"alg":"ES256"} `, true},
		{`{"alg":"ES256","kid":["a","a"]}`, true}, // equal values in an array are no keys
		{`{"alg":"ES256","alg":"ES256"}`, false},
		{`{"alg":"ES256","typ":"JWT","TYP":"dpop+jwt"}`, false},
		{`{"alg":"ES256","jwk":{"x":"a","X":"b"}}`, false},
		{`{"alg":"ES256","jwk":{"x":"a","x":"b"}}`, false},
		{`{"alg":"ES256","a":[{"k":1,"K":2}]}`, false},
		{`{"alg":"ES256"}{}`, false},
		{`["alg"]`, false},
		{`{"alg":`, false},
		{`{"a":[[[[[[[[[[1]]]]]]]]]]}`, false},
	} {
		if got := plainHeader([]byte(c.header)); got != c.plain {
			t.Errorf("plainHeader(%s) = %v, want %v", c.header, got, c.plain)
		}
	}
}

// signedWithHeader signs payload under a header given as raw JSON, which
// go-jose's signer would never write (a key twice, or in two cases).
func signedWithHeader(t *testing.T, k *ecdsa.PrivateKey, header string, payload any) string {
	t.Helper()
	p, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	input := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(p)
	h := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, k, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// A header read one way by encoding/json (alg, typ) and another by go-jose
// (kid, jwk, the algorithm verified) is refused: the typ check must look at
// the header the signature is verified under.
func TestAnonymousRequestHeaderReadOneWay(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	claims := map[string]any{"challenge": "c", "action": "auth", "iat": headerNow.Unix(), "exp": headerNow.Unix() + 60}
	good := `{"alg":"ES256","typ":"vnd.authgear.anonymous-request","kid":"kid-00001"}`
	if _, err := ParseAnonymousRequest(signedWithHeader(t, k, good, claims)); err != nil {
		t.Fatalf("a plain header: %v", err)
	}
	for _, header := range []string{
		`{"alg":"ES256","typ":"JWT","TYP":"vnd.authgear.anonymous-request","kid":"kid-00001"}`,
		`{"alg":"ES256","typ":"JWT","typ":"vnd.authgear.anonymous-request","kid":"kid-00001"}`,
		`{"alg":"ES256","typ":"vnd.authgear.anonymous-request","kid":"kid-00001","KID":"kid-00002"}`,
	} {
		if _, err := ParseAnonymousRequest(signedWithHeader(t, k, header, claims)); !errors.Is(err, ErrRequestMalformed) {
			t.Errorf("header %s: %v, want ErrRequestMalformed", header, err)
		}
	}
}

func TestDPoPProofHeaderReadOneWay(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwk, err := json.Marshal(jose.JSONWebKey{Key: &k.PublicKey})
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iat": headerNow.Unix(), "jti": "j-1", "htm": "POST", "htu": "https://id.example.com/oauth2/token"}
	check := DPoPCheck{Method: "POST", URL: "https://id.example.com/oauth2/token", Now: headerNow}
	good := fmt.Sprintf(`{"alg":"ES256","typ":"dpop+jwt","jwk":%s}`, jwk)
	if _, err := ParseDPoPProof(signedWithHeader(t, k, good, claims), check); err != nil {
		t.Fatalf("a plain header: %v", err)
	}
	var nested map[string]any
	_ = json.Unmarshal(jwk, &nested)
	for _, header := range []string{
		fmt.Sprintf(`{"alg":"ES256","typ":"JWT","TYP":"dpop+jwt","jwk":%s}`, jwk),
		fmt.Sprintf(`{"alg":"ES256","typ":"dpop+jwt","jwk":%s,"JWK":%s}`, jwk, jwk),
		fmt.Sprintf(`{"alg":"ES256","typ":"dpop+jwt","jwk":{"kty":"EC","crv":"P-256","x":%q,"y":%q,"X":%q}}`, nested["x"], nested["y"], nested["x"]),
	} {
		_, err := ParseDPoPProof(signedWithHeader(t, k, header, claims), check)
		var de *DPoPError
		if !errors.As(err, &de) || de.Reason != DPoPMalformed {
			t.Errorf("header %s: %v, want %s", header, err, DPoPMalformed)
		}
	}
}
