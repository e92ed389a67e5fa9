package tokens

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// DPoPError is a refused DPoP proof (RFC 9449 §4.3): every refusal is
// answered invalid_dpop_proof; Reason says which check failed, stably.
type DPoPError struct {
	Reason string
	Detail string
	// Nonce, for Reason DPoPNonce, is the nonce the client is to use: the
	// answer carries it as DPoP-Nonce (RFC 9449 §8).
	Nonce string
}

func (e *DPoPError) Error() string { return "tokens: DPoP proof refused: " + e.Detail }

// Reasons of DPoP refusals.
const (
	DPoPMalformed = "InvalidDPoPProof"
	DPoPAlgorithm = "DPoPAlgorithm"
	DPoPType      = "DPoPType"
	DPoPKey       = "DPoPKey"
	DPoPSignature = "DPoPSignature"
	DPoPMethod    = "DPoPMethod"
	DPoPURL       = "DPoPURL"
	DPoPTime      = "DPoPTime"
	DPoPReplayed  = "DPoPReplayed"
	DPoPATH       = "DPoPAccessTokenHash"
	DPoPRequired  = "DPoPProofRequired"
	DPoPMismatch  = "DPoPKeyMismatch"
	// DPoPNonce is answered use_dpop_nonce, not invalid_dpop_proof: the
	// client must sign again with the nonce it is given.
	DPoPNonce = "UseDPoPNonce"
)

func dpopErr(reason, detail string) error { return &DPoPError{Reason: reason, Detail: detail} }

// DPoPAlgorithms are the proof algorithms accepted (and advertised as
// dpop_signing_alg_values_supported): what the Authgear mobile SDKs sign
// with (RS256; ES256 from the iOS Secure Enclave) and EdDSA. Symmetric
// algorithms and none are never accepted.
var DPoPAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// DPoPMaxAge is how old a proof's iat may be; DPoPFutureSkew how far in the
// future. A proof's jti must be remembered at least DPoPMaxAge +
// DPoPFutureSkew to be single use.
const (
	DPoPMaxAge     = 5 * time.Minute
	DPoPFutureSkew = time.Minute
)

// DPoPCheck is what a proof must match.
type DPoPCheck struct {
	// Method and URL of the request (URL absolute, as the client addressed
	// it: the public URL and the path).
	Method, URL string
	// AccessToken presented with the proof, if any: the proof's ath must
	// then be its hash when RequireATH, or when ath is present at all.
	AccessToken string
	RequireATH  bool
	Now         time.Time
}

// DPoPProof is a verified proof. Its JTI is not yet known to be fresh: the
// caller spends it (single use across nodes).
type DPoPProof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof's key, base64url.
	JKT      string
	JTI      string
	IssuedAt time.Time
	// Nonce is the proof's nonce claim, "" when it has none; the caller
	// checks it when the client must send one.
	Nonce string
}

type dpopClaims struct {
	JTI string          `json:"jti"`
	HTM string          `json:"htm"`
	HTU string          `json:"htu"`
	IAT json.RawMessage `json:"iat"`
	EXP json.RawMessage `json:"exp"`
	ATH *string         `json:"ath"`
	// Nonce is a string when present; another type fails to decode.
	Nonce string `json:"nonce"`
}

// ParseDPoPProof verifies a DPoP proof JWT against the request: typ
// dpop+jwt, an accepted algorithm, a public jwk in the header that verifies
// the signature, htm, htu (compared without query and fragment: the iOS SDK
// signs the URL it requests, query included), iat within the window, exp
// (not required; the SDKs send one) not passed, jti present, ath when an
// access token goes with the proof.
func ParseDPoPProof(raw string, c DPoPCheck) (DPoPProof, error) {
	if raw == "" || len(raw) > 16<<10 || strings.Count(raw, ".") != 2 {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof is not a compact JWS")
	}
	hdrRaw, err := base64.RawURLEncoding.DecodeString(raw[:strings.IndexByte(raw, '.')])
	if err != nil {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof header is not base64url")
	}
	var hdr struct {
		Alg string                     `json:"alg"`
		Typ string                     `json:"typ"`
		JWK map[string]json.RawMessage `json:"jwk"`
	}
	if err := json.Unmarshal(hdrRaw, &hdr); err != nil {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof header is not JSON")
	}
	if !plainHeader(hdrRaw) {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof header has a key twice (or spelt with other case)")
	}
	for _, private := range []string{"d", "p", "q", "k"} {
		if _, ok := hdr.JWK[private]; ok {
			return DPoPProof{}, dpopErr(DPoPKey, "the proof's jwk holds private key material")
		}
	}
	accepted := false
	for _, a := range DPoPAlgorithms {
		accepted = accepted || hdr.Alg == string(a)
	}
	if !accepted {
		return DPoPProof{}, dpopErr(DPoPAlgorithm, "the proof's alg is not accepted (RS256, ES256, EdDSA)")
	}
	if hdr.Typ != "dpop+jwt" {
		return DPoPProof{}, dpopErr(DPoPType, "the proof's typ must be dpop+jwt")
	}
	jws, err := jose.ParseSigned(raw, DPoPAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof is not a JWS with one signature")
	}
	key := jws.Signatures[0].Protected.JSONWebKey
	if key == nil {
		return DPoPProof{}, dpopErr(DPoPKey, "the proof's header carries no jwk")
	}
	// A header jwk the SDK marks with its own alg and kid is fine; a
	// private key is not.
	if err := CheckKey(key, hdr.Alg); err != nil {
		return DPoPProof{}, dpopErr(DPoPKey, "the proof's jwk is not a public key for its alg")
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return DPoPProof{}, dpopErr(DPoPSignature, "the proof's signature does not verify")
	}
	var cl dpopClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof's payload is not a JSON object of the expected claims")
	}
	if cl.JTI == "" || len(cl.JTI) > 256 {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof's jti is missing or too long")
	}
	if len(cl.Nonce) > 256 {
		return DPoPProof{}, dpopErr(DPoPMalformed, "the proof's nonce is too long")
	}
	if cl.HTM != c.Method {
		return DPoPProof{}, dpopErr(DPoPMethod, "the proof's htm is not this request's method")
	}
	if !sameTarget(cl.HTU, c.URL) {
		return DPoPProof{}, dpopErr(DPoPURL, "the proof's htu is not this endpoint's URL")
	}
	if len(cl.IAT) == 0 {
		return DPoPProof{}, dpopErr(DPoPTime, "the proof's iat is missing")
	}
	iat, err := numericDate(cl.IAT)
	if err != nil {
		return DPoPProof{}, dpopErr(DPoPTime, "the proof's iat is not a NumericDate")
	}
	if iat.Before(c.Now.Add(-DPoPMaxAge)) || iat.After(c.Now.Add(DPoPFutureSkew)) {
		return DPoPProof{}, dpopErr(DPoPTime, "the proof's iat is outside the accepted window")
	}
	if len(cl.EXP) > 0 && string(cl.EXP) != "null" {
		exp, err := numericDate(cl.EXP)
		if err != nil {
			return DPoPProof{}, dpopErr(DPoPTime, "the proof's exp is not a NumericDate")
		}
		if !exp.After(c.Now.Add(-DPoPFutureSkew)) {
			return DPoPProof{}, dpopErr(DPoPTime, "the proof has expired")
		}
	}
	if c.AccessToken != "" && (c.RequireATH || cl.ATH != nil) {
		if cl.ATH == nil {
			return DPoPProof{}, dpopErr(DPoPATH, "the proof carries no ath for the access token")
		}
		want := AccessTokenHash(c.AccessToken)
		if subtle.ConstantTimeCompare([]byte(*cl.ATH), []byte(want)) != 1 {
			return DPoPProof{}, dpopErr(DPoPATH, "the proof's ath is not the access token's hash")
		}
	}
	jkt, err := Thumbprint(key)
	if err != nil {
		return DPoPProof{}, dpopErr(DPoPKey, "the proof's jwk has no thumbprint")
	}
	return DPoPProof{JKT: jkt, JTI: cl.JTI, IssuedAt: iat, Nonce: cl.Nonce}, nil
}

// AccessTokenHash is a proof's ath for an access token: base64url of its
// SHA-256 (RFC 9449 §4.2).
func AccessTokenHash(at string) string {
	sum := sha256.Sum256([]byte(at))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// sameTarget compares a proof's htu with the request's URL: scheme and host
// without case, default ports dropped, path exactly, query and fragment
// ignored (RFC 9449 §4.3 step 9, and RFC 3986 §6.2.3 normalisation).
func sameTarget(htu, want string) bool {
	a, err1 := url.Parse(htu)
	b, err2 := url.Parse(want)
	if err1 != nil || err2 != nil || !a.IsAbs() || a.Host == "" {
		return false
	}
	norm := func(u *url.URL) string {
		scheme := strings.ToLower(u.Scheme)
		host := strings.ToLower(u.Hostname())
		port := u.Port()
		if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
			port = ""
		}
		if port != "" {
			host += ":" + port
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		return scheme + "://" + host + path
	}
	return norm(a) == norm(b)
}
