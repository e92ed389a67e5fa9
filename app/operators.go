package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/password"
)

// ErrPortalOff: no operator is configured, so the portal is off.
var ErrPortalOff = errors.New("the portal is off: no operator is configured")

// operators are the portal's operators: username → argon2id hash. Plain
// passwords from the configuration are hashed once and dropped.
type operators map[string]operator

type operator struct {
	hash string
	// credential fingerprints what the configuration says of the operator's
	// password, the same on every node and after restarts: SHA-256 of an
	// argon2id hash (the configured one, or of a plain password with a salt
	// derived from the username), never of the password itself.
	credential []byte
}

func newOperators(random io.Reader, ops []config.Operator, p password.Params) (operators, error) {
	out := operators{}
	for _, o := range ops {
		h, stable := o.PasswordHash, o.PasswordHash
		if h == "" {
			var err error
			if h, err = password.Hash(random, o.Password, p); err != nil {
				return nil, fmt.Errorf("app: portal operator %s: %w", o.Username, err)
			}
			salt := sha256.Sum256([]byte("idstream portal operator credential v1\x00" + o.Username))
			if stable, err = password.Hash(bytes.NewReader(salt[:]), o.Password, p); err != nil {
				return nil, fmt.Errorf("app: portal operator %s: %w", o.Username, err)
			}
		}
		fp := sha256.Sum256([]byte(o.Username + "\x00" + stable))
		out[o.Username] = operator{hash: h, credential: fp[:]}
	}
	return out, nil
}

// OperatorCredential is the fingerprint of a configured operator's
// credential; false for a username no operator has.
func (s *Admin) OperatorCredential(username string) ([]byte, bool) {
	o, ok := s.operators[username]
	return o.credential, ok
}

// PortalEnabled reports whether any operator may sign in to the portal.
func (s *Admin) PortalEnabled() bool { return len(s.operators) > 0 }

// AuthenticateOperator checks an operator's username and password for the
// portal, under the sign-in limits (beginPasswordAttempt); an unknown username costs the same work as a wrong
// password and gets the same answer.
func (s *Admin) AuthenticateOperator(ctx context.Context, username, pw, ip string) error {
	if !s.PortalEnabled() {
		return ErrPortalOff
	}
	if len(username) > 64 {
		username = username[:64]
	}
	attempt, err := s.beginPasswordAttempt(ctx, "portal", username, ip)
	if err != nil {
		return err
	}
	defer attempt.abandon(ctx)
	op, known := s.operators[username]
	hash := op.hash
	if !known {
		hash = s.unknownHash()
	}
	var ok bool
	var verr error
	if err := s.withHashSlot(ctx, func() { ok, _, verr = password.Verify(hash, pw, s.passwordParams()) }); err != nil {
		return err
	}
	if !known || !ok || verr != nil {
		attempt.failed(ctx)
		commands.WithLabelValues("portal_sign_in", "rejected").Inc()
		return ErrInvalidCredentials
	}
	attempt.succeeded(ctx)
	commands.WithLabelValues("portal_sign_in", "ok").Inc()
	return nil
}
