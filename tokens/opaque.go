// Package tokens issues and verifies idstream's tokens: access tokens are
// short-lived ES256 JWTs signed with keys every node shares; refresh tokens
// and session cookies are opaque, random and stored only as hashes.
package tokens

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"
)

// ErrMalformed means a presented token is not one idstream issued.
var ErrMalformed = errors.New("tokens: malformed token")

// secretBytes is the entropy of an opaque token: 256 bits.
const secretBytes = 32

// NewOpaque makes a token for a session: the session id, so the server finds
// the session without a lookup table, and 256 random bits. It returns the
// token, which goes to the client only, and the hash that is recorded.
func NewOpaque(random io.Reader, sessionID string) (token, hash string, err error) {
	var secret [secretBytes]byte
	if _, err := io.ReadFull(random, secret[:]); err != nil {
		return "", "", fmt.Errorf("tokens: random: %w", err)
	}
	token = sessionID + "." + base64.RawURLEncoding.EncodeToString(secret[:])
	return token, Hash(token), nil
}

// ParseOpaque returns the session id of a token and the token's hash.
func ParseOpaque(token string) (sessionID, hash string, err error) {
	id, secret, ok := strings.Cut(token, ".")
	if !ok || len(token) > 128 {
		return "", "", ErrMalformed
	}
	if _, err := uuid.Parse(id); err != nil || len(id) != 36 {
		return "", "", ErrMalformed
	}
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw) != secretBytes {
		return "", "", ErrMalformed
	}
	return id, Hash(token), nil
}

// Hash is the recorded form of an opaque token. The token carries 256 random
// bits, so a fast hash is enough: there is nothing to brute-force.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
