package sdk_test

import (
	"encoding/base64"
	"math/big"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/testenv"
)

// flipS replaces s by n-s in a compact ES256 JWS: the twin signature ECDSA
// also accepts.
func flipS(t *testing.T, compact string) string {
	t.Helper()
	n := new(big.Int).SetBytes([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51}) // P-256's order
	i := strings.LastIndexByte(compact, '.')
	sig, err := base64.RawURLEncoding.DecodeString(compact[i+1:])
	if err != nil || len(sig) != 64 {
		t.Fatalf("signature: %v", err)
	}
	new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:])).FillBytes(sig[32:])
	return compact[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}

// TestHighSSignaturesRefused: an access token whose s is replaced by n-s is
// refused; the originals work.
func TestHighSSignaturesRefused(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	c := apitest.NewClient(t, n)
	for range 10 {
		at, _ := apitest.Signup(t, c)
		if r := c.Userinfo(flipS(t, at)); r.Status != 401 || r.Reason() != "InvalidToken" {
			t.Fatalf("access token with s flipped: %d %s", r.Status, r.Raw)
		}
		if r := c.Userinfo(at); r.Status != 200 {
			t.Fatalf("access token: %d %s", r.Status, r.Raw)
		}
	}
	// Device signatures of either form are taken (device libraries do not
	// normalise): a key-pair JWT with s flipped still signs in.
	d := apitest.NewDevice(t, jose.ES256)
	keySignIn(t, c, n, d, true)
	if r := c.KeyGrant(flipS(t, d.JWT(t, c.Challenge(), false, n.Clock.Now()))); r.Status != 200 {
		t.Fatalf("key-pair JWT with s flipped: %d %s", r.Status, r.Raw)
	}
}
