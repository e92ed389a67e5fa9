package sdk_test

import (
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/testenv"
)

// flutterJWT builds an anonymous-request JWT as the Authgear Flutter SDK
// does: RS256 with an RSA-2048 key, the jwk in the header on every
// request, iat and exp written as the raw JSON numbers given (Flutter sends
// millisecondsSinceEpoch / 1000; Android's org.json writes 1.796153971004E9).
func flutterJWT(t *testing.T, key *rsa.PrivateKey, kid, challenge, action, iat, exp string) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("vnd.authgear.anonymous-request").WithHeader("kid", kid).
		WithHeader("jwk", jose.JSONWebKey{Key: &key.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload := fmt.Sprintf(`{"challenge":%q,"action":%q,"iat":%s,"exp":%s}`, challenge, action, iat, exp)
	jws, err := signer.Sign([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	testenv.RecordSecret("key-pair JWT", s)
	return s
}

// Issue 17, first part: NumericDates in any JSON number form, as the
// Flutter SDK sends them, sign a guest up and back in; values that are no
// NumericDate are refused with InvalidNumericDate.
func TestKeyPairNumericDatesAsFlutterSendsThem(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	apitest.RecordDeviceKey(key)
	kid := strings.ToUpper(uuid.NewString())
	now := n.Clock.Now()
	ms := now.UnixMilli() + 123
	forms := []struct{ iat, exp string }{
		{fmt.Sprintf("%d.%03d", ms/1000, ms%1000), fmt.Sprintf("%d.%03d", ms/1000+300, ms%1000)},                     // Dart on iOS
		{fmt.Sprintf("%.12E", float64(ms)/1000), fmt.Sprintf("%.12E", float64(ms)/1000+300)},                         // org.json on Android
		{fmt.Sprint(now.Unix()), fmt.Sprintf("%d.0", now.Unix()+300)},                                                // integer and x.0
		{fmt.Sprintf("%de0", now.Unix()), fmt.Sprintf("%.3fe+00", float64(now.Unix()+60))},                           // exponent forms
		{fmt.Sprintf("%.6f", float64(now.UnixMicro())/1e6), fmt.Sprintf("%.6f", float64(now.UnixMicro())/1e6+299.5)}, // microseconds
	}
	sub := ""
	for i, f := range forms {
		r := c.KeyGrant(flutterJWT(t, key, kid, c.Challenge(), "auth", f.iat, f.exp))
		if r.Status != 200 {
			t.Fatalf("form %d (iat %s, exp %s): %d %s", i, f.iat, f.exp, r.Status, r.Raw)
		}
		got := apitest.Str(c.Userinfo(apitest.Str(r.Body, "access_token")).Body, "sub")
		if sub == "" {
			sub = got
		} else if got != sub {
			t.Fatalf("form %d signed in another guest", i)
		}
	}
	for name, f := range map[string]struct{ iat, exp string }{
		"string":       {fmt.Sprintf("%q", fmt.Sprint(now.Unix())), fmt.Sprint(now.Unix() + 60)},
		"overflow":     {"1e400", fmt.Sprint(now.Unix() + 60)},
		"negative":     {"-1", fmt.Sprint(now.Unix() + 60)},
		"past 9999":    {fmt.Sprint(now.Unix()), "253402300800"},
		"null":         {"null", fmt.Sprint(now.Unix() + 60)},
		"boolean":      {"true", fmt.Sprint(now.Unix() + 60)},
		"huge integer": {"123456789012345678901234567890", fmt.Sprint(now.Unix() + 60)},
	} {
		r := c.KeyGrant(flutterJWT(t, key, kid, c.Challenge(), "auth", f.iat, f.exp))
		want := "InvalidNumericDate"
		if name == "null" {
			want = "InvalidJWTClaims" // absent, as RFC 7519 reads null
		}
		if r.Status != 400 || r.Reason() != want {
			t.Errorf("%s: %d %s, want %s", name, r.Status, r.Raw, want)
		}
	}
	// A lifetime above 10 minutes is still refused, fractions or not.
	if r := c.KeyGrant(flutterJWT(t, key, kid, c.Challenge(), "auth", fmt.Sprintf("%d.5", now.Unix()), fmt.Sprintf("%d.6", now.Unix()+601))); r.Reason() != "JWTLifetime" {
		t.Fatalf("long lifetime: %s", r.Raw)
	}
	_ = time.Second
}
