package tokens

import (
	"encoding/json"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DeviceRequest is what a device signs in the key-pair protocol. It is the
// device's half of the protocol, used by the example device, the load
// command and tests.
type DeviceRequest struct {
	// Key is the device's private key (*ecdsa.PrivateKey, *rsa.PrivateKey
	// or ed25519.PrivateKey) and Algorithm its JWS algorithm.
	Key       any
	Algorithm jose.SignatureAlgorithm
	KeyID     string
	// IncludeJWK puts the public key in the header (first use).
	IncludeJWK bool
	Challenge  string
	Action     string
	IssuedAt   time.Time
	// ExpiresAt defaults to IssuedAt + 60 s, as the Authgear SDKs do.
	ExpiresAt time.Time
}

// SignAnonymousRequest makes the anonymous-request JWT.
func SignAnonymousRequest(r DeviceRequest) (string, error) {
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(anonymousRequestType)).WithHeader(jose.HeaderKey("kid"), r.KeyID)
	if r.IncludeJWK {
		pub := jose.JSONWebKey{Key: r.Key, KeyID: r.KeyID, Algorithm: string(r.Algorithm)}
		pub = pub.Public()
		opts = opts.WithHeader(jose.HeaderKey("jwk"), pub)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: r.Algorithm, Key: r.Key}, opts)
	if err != nil {
		return "", err
	}
	exp := r.ExpiresAt
	if exp.IsZero() {
		exp = r.IssuedAt.Add(time.Minute)
	}
	payload, err := json.Marshal(map[string]any{"challenge": r.Challenge, "action": r.Action, "iat": r.IssuedAt.Unix(), "exp": exp.Unix()})
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// DeviceProof is what a client signs in a DPoP proof (RFC 9449 §4.2), the
// way the Authgear mobile SDKs build one: header typ dpop+jwt, alg, kid and
// the public jwk; payload iat, exp (iat + 300 s, as authgear-sdk-js
// packages/authgear-core/src/dpop.ts sets it), jti, htm, htu, and ath when
// AccessToken is set.
type DeviceProof struct {
	Key         any
	Algorithm   jose.SignatureAlgorithm
	KeyID       string
	Method, URL string
	JTI         string
	IssuedAt    time.Time
	AccessToken string
	// Nonce is the server-provided nonce (DPoP-Nonce), "" for none.
	Nonce string
}

// SignDPoPProof makes the DPoP proof JWT.
func SignDPoPProof(p DeviceProof) (string, error) {
	pub := jose.JSONWebKey{Key: p.Key, KeyID: p.KeyID, Algorithm: string(p.Algorithm)}
	pub = pub.Public()
	opts := (&jose.SignerOptions{}).WithType("dpop+jwt").WithHeader(jose.HeaderKey("kid"), p.KeyID).WithHeader(jose.HeaderKey("jwk"), pub)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: p.Algorithm, Key: p.Key}, opts)
	if err != nil {
		return "", err
	}
	claims := map[string]any{"iat": p.IssuedAt.Unix(), "exp": p.IssuedAt.Unix() + 300, "jti": p.JTI, "htm": p.Method, "htu": p.URL}
	if p.AccessToken != "" {
		claims["ath"] = AccessTokenHash(p.AccessToken)
	}
	if p.Nonce != "" {
		claims["nonce"] = p.Nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// DPoPThumbprint is the jkt of a private key's public half (dpop_jkt).
func DPoPThumbprint(key any) (string, error) {
	pub := jose.JSONWebKey{Key: key}
	pub = pub.Public()
	return Thumbprint(&pub)
}
