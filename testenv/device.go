package testenv

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/tokens"
)

// Device is a key-pair guest's device: a private key that never leaves it,
// its algorithm and its key id.
type Device struct {
	Key   any
	Alg   jose.SignatureAlgorithm
	KeyID string
}

// NewDevice makes a device with a fresh key of the algorithm (ES256, RS256
// with 2048 bits, EdDSA).
func NewDevice(t testing.TB, alg jose.SignatureAlgorithm) Device {
	t.Helper()
	var key any
	var err error
	switch alg {
	case jose.ES256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jose.RS256:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case jose.EdDSA:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		t.Fatalf("testenv: no device keys for %s", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return Device{Key: key, Alg: alg, KeyID: "dev-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:20]}
}

// Request signs an anonymous-request JWT (action "auth" or "promote") over
// a challenge, with the public key in the header when withJWK.
func (d Device) Request(t testing.TB, challenge, action string, withJWK bool, now time.Time) string {
	t.Helper()
	tok, err := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: d.Key, Algorithm: d.Alg, KeyID: d.KeyID, IncludeJWK: withJWK,
		Challenge: challenge, Action: action, IssuedAt: now})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// JWT is Request with action "auth", the sign-in the key-pair grant takes.
func (d Device) JWT(t testing.TB, challenge string, withJWK bool, now time.Time) string {
	t.Helper()
	return d.Request(t, challenge, "auth", withJWK, now)
}

// Thumbprint is the device key's jkt (RFC 7638), as dpop_jkt sends it.
func (d Device) Thumbprint(t testing.TB) string {
	t.Helper()
	tp, err := tokens.DPoPThumbprint(d.Key)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}
