package tokens

import (
	"crypto/elliptic"
	"encoding/base64"
	"errors"
	"math/big"
	"strings"
)

// ECDSA signatures are malleable: (r, s) and (r, n-s) both verify, so
// anyone can turn one valid ES256 token into a second, different string
// that also verifies. Whatever keys on the token string (a cache, a
// revocation or replay list, a log search) would then see two tokens. Only
// the low form, s <= n/2, is accepted and produced here.

var (
	p256N     = elliptic.P256().Params().N
	p256HalfN = new(big.Int).Rsh(p256N, 1)
)

// highS reports whether a JWS ES256 signature (r || s, 32 bytes each) is
// not in low-S form, or is not 64 bytes at all.
func highS(sig []byte) bool {
	if len(sig) != 64 {
		return true
	}
	return new(big.Int).SetBytes(sig[32:]).Cmp(p256HalfN) > 0
}

// compactHighS reports whether the compact ES256 JWS's signature is not in
// low-S form (or cannot be read).
func compactHighS(compact string) bool {
	i := strings.LastIndexByte(compact, '.')
	if i < 0 {
		return true
	}
	sig, err := base64.RawURLEncoding.DecodeString(compact[i+1:])
	return err != nil || highS(sig)
}

// lowSCompact rewrites a compact ES256 JWS, made by a signer that does not
// normalise (go-jose, crypto/ecdsa), into its low-S form.
func lowSCompact(compact string) (string, error) {
	i := strings.LastIndexByte(compact, '.')
	if i < 0 {
		return "", errors.New("tokens: not a compact JWS")
	}
	sig, err := base64.RawURLEncoding.DecodeString(compact[i+1:])
	if err != nil || len(sig) != 64 {
		return "", errors.New("tokens: not an ES256 signature")
	}
	if !highS(sig) {
		return compact, nil
	}
	s := new(big.Int).Sub(p256N, new(big.Int).SetBytes(sig[32:]))
	s.FillBytes(sig[32:])
	return compact[:i+1] + base64.RawURLEncoding.EncodeToString(sig), nil
}
