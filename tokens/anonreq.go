package tokens

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Errors of anonymous-request JWTs (Authgear's key-pair protocol). Each has
// its own stable API code.
var (
	ErrRequestMalformed = errors.New("tokens: malformed anonymous-request JWT")
	ErrRequestAlgorithm = errors.New("tokens: algorithm not accepted (ES256, RS256 or EdDSA)")
	ErrRequestType      = errors.New("tokens: typ must be vnd.authgear.anonymous-request")
	ErrRequestKeyID     = errors.New("tokens: kid must match ^[-\\w]{8,64}$")
	ErrRequestKey       = errors.New("tokens: the key is not an acceptable public key for the algorithm")
	ErrRequestSignature = errors.New("tokens: signature does not verify")
	ErrRequestExpired   = errors.New("tokens: the JWT has expired")
	ErrRequestNotYet    = errors.New("tokens: the JWT is issued in the future")
	ErrRequestClaims    = errors.New("tokens: challenge, action, iat and exp are required")
	ErrRequestLifetime  = errors.New("tokens: the JWT lives too long")
	// ErrRequestNumericDate: iat or exp is not a NumericDate (RFC 7519
	// §2): a JSON number of seconds, possibly fractional, within years 1970
	// to 9999.
	ErrRequestNumericDate = errors.New("tokens: iat and exp must be JSON numbers of seconds since 1970 (fractions allowed)")
	anonymousRequestType  = "vnd.authgear.anonymous-request"
	keyIDPattern          = regexp.MustCompile(`^[-\w]{8,64}$`)
)

// Accepted signature algorithms. none and HMAC are never accepted: a
// symmetric "key" taken from a public JWK would let anyone sign.
var requestAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.RS256, jose.EdDSA}

// AnonymousRequest is a parsed, not yet verified, anonymous-request JWT.
type AnonymousRequest struct {
	KeyID     string
	Algorithm string
	// HeaderJWK is the public key in the header (first use only), or nil.
	HeaderJWK *jose.JSONWebKey
	Challenge string
	Action    string
	IssuedAt  time.Time
	ExpiresAt time.Time
	// DeviceInfo is the payload's device_info (iOS and Android SDKs), as
	// sent; nil when absent.
	DeviceInfo json.RawMessage

	jws *jose.JSONWebSignature
}

type requestClaims struct {
	Challenge  string          `json:"challenge"`
	Action     string          `json:"action"`
	IssuedAt   json.RawMessage `json:"iat"`
	ExpiresAt  json.RawMessage `json:"exp"`
	DeviceInfo json.RawMessage `json:"device_info"`
}

// maxNumericDate is 9999-12-31T23:59:59Z: later dates do not fit the
// timestamps idstream stores.
const maxNumericDate = 253402300799

// numericDate reads an RFC 7519 NumericDate: any JSON number (integer,
// fraction, exponent: the Flutter SDK sends millisecondsSinceEpoch / 1000,
// which Android writes as 1.796153971004E9), to the nearest microsecond. A
// string, even of digits, is no number.
func numericDate(raw json.RawMessage) (time.Time, error) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return time.Time{}, ErrRequestNumericDate
	}
	v, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > maxNumericDate {
		return time.Time{}, ErrRequestNumericDate
	}
	sec, frac := math.Modf(v)
	return time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3).UTC(), nil
}

// ParseAnonymousRequest parses the JWT and checks its header. It verifies
// nothing: call Verify with the key the server trusts.
func ParseAnonymousRequest(raw string) (*AnonymousRequest, error) {
	if raw == "" || len(raw) > 16<<10 || strings.Count(raw, ".") != 2 {
		return nil, ErrRequestMalformed
	}
	// Read alg first, so a refused algorithm gets its own answer.
	hdrRaw, err := base64.RawURLEncoding.DecodeString(raw[:strings.IndexByte(raw, '.')])
	if err != nil {
		return nil, ErrRequestMalformed
	}
	var hdr struct {
		Alg string `json:"alg"`
		Typ string `json:"typ"`
	}
	if !plainHeader(hdrRaw) || json.Unmarshal(hdrRaw, &hdr) != nil {
		return nil, ErrRequestMalformed
	}
	accepted := false
	for _, a := range requestAlgorithms {
		accepted = accepted || hdr.Alg == string(a)
	}
	if !accepted {
		return nil, ErrRequestAlgorithm
	}
	if hdr.Typ != anonymousRequestType {
		return nil, ErrRequestType
	}
	jws, err := jose.ParseSigned(raw, requestAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, ErrRequestMalformed
	}
	h := jws.Signatures[0].Protected
	if !keyIDPattern.MatchString(h.KeyID) {
		return nil, ErrRequestKeyID
	}
	var c requestClaims
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c); err != nil {
		return nil, ErrRequestMalformed
	}
	absent := func(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }
	if c.Challenge == "" || c.Action == "" || absent(c.IssuedAt) || absent(c.ExpiresAt) {
		return nil, ErrRequestClaims
	}
	iat, err := numericDate(c.IssuedAt)
	if err != nil {
		return nil, err
	}
	exp, err := numericDate(c.ExpiresAt)
	if err != nil {
		return nil, err
	}
	r := &AnonymousRequest{
		KeyID: h.KeyID, Algorithm: h.Algorithm, Challenge: c.Challenge, Action: c.Action,
		IssuedAt: iat, ExpiresAt: exp, jws: jws,
	}
	if len(c.DeviceInfo) > 0 && string(c.DeviceInfo) != "null" {
		r.DeviceInfo = c.DeviceInfo
	}
	if h.JSONWebKey != nil {
		r.HeaderJWK = h.JSONWebKey
	}
	return r, nil
}

// CheckTime checks iat and exp against now with a clock skew allowance.
func (r *AnonymousRequest) CheckTime(now time.Time, skew time.Duration) error {
	switch {
	case r.IssuedAt.After(now.Add(skew)):
		return ErrRequestNotYet
	case !r.ExpiresAt.After(now.Add(-skew)):
		return ErrRequestExpired
	case !r.ExpiresAt.After(r.IssuedAt) || r.ExpiresAt.Sub(r.IssuedAt) > 10*time.Minute:
		return ErrRequestLifetime
	}
	return nil
}

// CheckKey reports whether key is an acceptable public key for alg: P-256
// for ES256, RSA of at least 2048 bits for RS256, Ed25519 for EdDSA.
func CheckKey(key *jose.JSONWebKey, alg string) error {
	if key == nil || !key.Valid() || !key.IsPublic() {
		return ErrRequestKey
	}
	if key.Algorithm != "" && key.Algorithm != alg {
		return ErrRequestKey
	}
	switch k := key.Key.(type) {
	case *ecdsa.PublicKey:
		if alg != string(jose.ES256) || k.Curve != elliptic.P256() {
			return ErrRequestKey
		}
	case *rsa.PublicKey:
		if alg != string(jose.RS256) || k.N.BitLen() < 2048 {
			return ErrRequestKey
		}
	case ed25519.PublicKey:
		if alg != string(jose.EdDSA) {
			return ErrRequestKey
		}
	default:
		return ErrRequestKey
	}
	return nil
}

// Verify checks the signature with key (which the caller trusts), after
// checking that the key fits the JWT's algorithm. ES256 signatures of
// either S form are taken: device libraries (CryptoKit, the Secure Enclave,
// WebCrypto) do not normalise, and a request's string is never an
// identifier (its challenge is single use).
func (r *AnonymousRequest) Verify(key *jose.JSONWebKey) error {
	if err := CheckKey(key, r.Algorithm); err != nil {
		return err
	}
	if _, err := r.jws.Verify(key); err != nil {
		return ErrRequestSignature
	}
	return nil
}

// Thumbprint is a key's RFC 7638 SHA-256 thumbprint, base64url.
func Thumbprint(key *jose.JSONWebKey) (string, error) {
	tp, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", ErrRequestKey
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// PublicJWK returns the public key as JSON, without anything but the key.
func PublicJWK(key *jose.JSONWebKey) (json.RawMessage, error) {
	pub := jose.JSONWebKey{Key: key.Key, KeyID: key.KeyID, Algorithm: key.Algorithm}
	return pub.MarshalJSON()
}

// ParseJWK reads a stored public key.
func ParseJWK(raw json.RawMessage) (*jose.JSONWebKey, error) {
	var k jose.JSONWebKey
	if err := k.UnmarshalJSON(raw); err != nil {
		return nil, err
	}
	return &k, nil
}
