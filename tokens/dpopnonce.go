package tokens

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// DPoPNonceWindow is how often the server-provided DPoP nonce (RFC 9449 §8
// and §9) changes. A nonce is accepted while its window or the next one is
// current, so for one to two windows after it was made (every response to
// a client that must send nonces carries the current one), and one window
// early, for nodes whose clocks differ a little.
const DPoPNonceWindow = 2 * time.Minute

// dpopNonceLen is the nonce's size before base64url: the window (8 bytes)
// and 16 bytes of its MAC.
const dpopNonceLen = 8 + 16

// nonceKey derives the key that MACs DPoP nonces from a signing key of the
// ring (HKDF-SHA256, its own label), so every node that signs with the
// ring makes and checks the same nonces, and nothing more is stored. The
// nonce key cannot be used to sign, and a nonce reveals nothing of the
// signing key.
func nonceKey(k *key) ([]byte, error) {
	raw, err := k.private.Bytes()
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, raw, nil, "idstream DPoP-Nonce v1 "+k.kid, 32)
}

func nonceMAC(key []byte, window uint64) []byte {
	m := hmac.New(sha256.New, key)
	var w [8]byte
	binary.BigEndian.PutUint64(w[:], window)
	m.Write(w[:])
	return m.Sum(nil)[:16]
}

func nonceWindow(now time.Time) uint64 {
	return uint64(now.Unix()) / uint64(DPoPNonceWindow/time.Second)
}

// DPoPNonce is the nonce of the current window, made with the active key.
func (k *Keys) DPoPNonce(ctx context.Context, now time.Time) string {
	k.maybeReload(ctx)
	k.mu.RLock()
	key := k.nonceKeys[0]
	k.mu.RUnlock()
	w := nonceWindow(now)
	out := make([]byte, 8, dpopNonceLen)
	binary.BigEndian.PutUint64(out, w)
	return base64.RawURLEncoding.EncodeToString(append(out, nonceMAC(key, w)...))
}

// CheckDPoPNonce reports whether nonce is one this service (any node) made
// for a window still accepted at now, with any key of the ring (a key
// retired a moment ago; one created on another node a moment ago is loaded
// on a miss, at most once a second). The MAC is compared in constant time.
func (k *Keys) CheckDPoPNonce(ctx context.Context, nonce string, now time.Time) bool {
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != dpopNonceLen {
		return false
	}
	w, cur := binary.BigEndian.Uint64(raw[:8]), nonceWindow(now)
	if w+1 < cur || w > cur+1 {
		return false
	}
	k.maybeReload(ctx)
	if k.nonceMatches(raw, w) {
		return true
	}
	// Made by a node with a key this one has not loaded yet (a rotation a
	// moment ago): reload, within a bound of its own (anyone can send a
	// nonce of the current window with a MAC of their choosing).
	if k.nonceMissLimit.Allow() {
		if err := k.Reload(ctx); err != nil {
			k.log.Warn("reloading signing keys failed; using the loaded ones", "error", err)
		}
		return k.nonceMatches(raw, w)
	}
	return false
}

// nonceMatches compares the nonce's MAC with each key's, in constant time.
func (k *Keys) nonceMatches(raw []byte, w uint64) bool {
	k.mu.RLock()
	keys := k.nonceKeys
	k.mu.RUnlock()
	ok := false
	for _, key := range keys {
		ok = hmac.Equal(raw[8:], nonceMAC(key, w)) || ok
	}
	return ok
}
