package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/tokens"
)

// Errors of the key-pair flow, each with its own API code.
var (
	ErrInvalidChallenge = errors.New("the challenge is missing, expired or already used")
	ErrInvalidPurpose   = errors.New(`purpose must be "anonymous_request"`)
	ErrInvalidAction    = errors.New(`action must be "auth" at the token endpoint`)
	ErrUnknownKey       = errors.New("unknown key id and no jwk in the header")
	ErrKeyMismatch      = errors.New("the jwk in the header differs from the registered key")
	ErrKeyNotUsable     = errors.New("the key belongs to a user who can no longer sign in with it")
	// ErrKeyOtherClient: a key belongs to the client application that
	// registered it; another client may not sign in or promote with it.
	ErrKeyOtherClient = errors.New("the key was registered by another client application")
)

// ChallengePurposeAnonymousRequest is the only challenge purpose.
const ChallengePurposeAnonymousRequest = "anonymous_request"

// ChallengeTTL is how long a challenge can be used (Authgear: 5 minutes).
const ChallengeTTL = 5 * time.Minute

// requestSkew is the clock skew allowed on a device's iat and exp.
const requestSkew = time.Minute

// takeChallenge spends a challenge: a delete conditioned on the revision
// read, so of two concurrent uses (on any nodes) exactly one gets it.
func (s *KeyPairs) takeChallenge(ctx context.Context, token string) (CodeEntry, error) {
	return s.takeCode(ctx, token, ErrInvalidChallenge, func(e CodeEntry) bool { return e.Kind == CodeChallenge })
}

// IssueChallenge makes a challenge for a device to sign.
func (s *KeyPairs) IssueChallenge(ctx context.Context, purpose string) (string, time.Time, error) {
	if purpose != ChallengePurposeAnonymousRequest {
		return "", time.Time{}, ErrInvalidPurpose
	}
	token, err := s.newCode()
	if err != nil {
		return "", time.Time{}, err
	}
	exp := s.clock.Now().Add(ChallengeTTL).Truncate(time.Second)
	if err := s.codes.Put(ctx, token, CodeEntry{Kind: CodeChallenge, ExpiresAt: exp}); err != nil {
		return "", time.Time{}, err
	}
	return token, exp, nil
}

func (s *KeyPairs) keySubject(kid string) string       { return s.store.Subject("anonkey", kid) }
func (s *KeyPairs) thumbprintSubject(tp string) string { return s.store.Subject("anonkeytp", tp) }

// loadKey rebuilds a key id's claim; a claim once cached is final (see
// loadFinal), so a known key's sign-in does not read it again.
func (s *KeyPairs) loadKey(ctx context.Context, kid string) (domain.AnonymousKey, uint64, error) {
	return loadFinal(ctx, s.store, s.aggregates, s.keySubject(kid), each(domain.EvolveAnonymousKey), domain.AnonymousKey.Claimed)
}

// SignInWithKey runs the anonymous-request grant: a device proves it holds a
// key by signing a fresh challenge. An unknown key id with its public key in
// the header creates a guest; a known one signs the same guest in again. The
// signature is verified every time, first use included, and only ever with
// the key the server trusts.
//
// deviceInfo is the request's x_device_info form field (base64url JSON), if
// any; the JWT's own device_info comes first. What they say of the device is
// kept with the session.
func (s *KeyPairs) SignInWithKey(ctx context.Context, clientID, rawJWT, deviceInfo string, meta Meta) (Issued, error) {
	cl, err := s.publicClient(clientID)
	if err != nil {
		return Issued{}, err
	}
	req, err := s.takeRequest(ctx, rawJWT, "auth")
	if err != nil {
		return Issued{}, err
	}
	dev, err := deviceOf(req.DeviceInfo, deviceInfo)
	if err != nil {
		return Issued{}, err
	}
	idle, life, err := lifetimes(cl, domain.SessionKindRefreshToken)
	if err != nil {
		return Issued{}, err
	}
	// A device's sign-ins are ordered on its guest's subject, so parallel
	// sign-ins of one device conflict: retry more, with a little jitter.
	leaderChecked := false
	return retryDecision(ctx, retryOptions{attempts: 3 * maxAttempts, jitter: true}, func(ctx context.Context) (Issued, error) {
		key, keyVersion, err := s.loadKey(ctx, req.KeyID)
		if err != nil {
			return Issued{}, err
		}
		// A conflict: another device registered this key (or thumbprint)
		// first; the next attempt decides on what it wrote.
		var iss Issued
		if key.Claimed() {
			iss, err = s.signInKnownKey(ctx, clientID, cl.AccessTokenLifetime.Duration(), req, dev, key, idle, life, meta)
		} else {
			iss, err = s.registerKey(ctx, cl.AccessTokenLifetime.Duration(), clientID, req, dev, keyVersion, idle, life, meta)
		}
		if !leaderChecked && s.replicated() && (errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrKeyNotUsable) || staleMiss(err)) {
			// A replica that has not yet got the key's registration (or
			// its guest) answered: decide once more on what the leader
			// has. Nothing was written, and the challenge stays spent.
			leaderChecked = true
			return Issued{}, errDecideAgain
		}
		return iss, err
	})
}

// takeRequest parses an anonymous-request JWT, spends its challenge (by its
// first use, whatever happens next) and checks the action and the times. The
// signature is the caller's to verify, with the key it trusts.
func (s *KeyPairs) takeRequest(ctx context.Context, rawJWT, action string) (*tokens.AnonymousRequest, error) {
	req, err := tokens.ParseAnonymousRequest(rawJWT)
	if err != nil {
		return nil, err
	}
	ch, err := s.takeChallenge(ctx, req.Challenge)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if !now.Before(ch.ExpiresAt) {
		return nil, ErrInvalidChallenge
	}
	if req.Action != action {
		return nil, ErrInvalidAction
	}
	if err := req.CheckTime(now, requestSkew); err != nil {
		return nil, err
	}
	return req, nil
}

// VerifyPromoteRequest checks a key-pair guest's signed request to promote
// itself (action "promote", a fresh challenge, a known key) and returns the
// guest's user id.
func (s *KeyPairs) VerifyPromoteRequest(ctx context.Context, clientID, rawJWT string) (string, error) {
	if _, err := s.client(clientID); err != nil {
		return "", err
	}
	req, err := s.takeRequest(ctx, rawJWT, "promote")
	if err != nil {
		return "", err
	}
	key, _, err := s.loadKey(ctx, req.KeyID)
	if err != nil {
		return "", err
	}
	if !key.Claimed() {
		return "", ErrUnknownKey
	}
	u, _, err := s.verifyKnownKey(ctx, clientID, req, key)
	if err != nil {
		return "", err
	}
	return u.UserID(), nil
}

// verifyKnownKey verifies a request against the registered key and returns
// the guest, which must still be able to sign in with it, through the
// client application that registered the key: a session of that client
// follows that client's settings, so another client's are never applied.
func (s *KeyPairs) verifyKnownKey(ctx context.Context, clientID string, req *tokens.AnonymousRequest, key domain.AnonymousKey) (domain.User, uint64, error) {
	stored, err := tokens.ParseJWK(key.JWK())
	if err != nil {
		return domain.User{}, 0, fmt.Errorf("app: stored key %s: %w", key.KeyID(), err)
	}
	if req.HeaderJWK != nil {
		tp, err := tokens.Thumbprint(req.HeaderJWK)
		if err != nil || tp != key.Thumbprint() {
			return domain.User{}, 0, ErrKeyMismatch
		}
	}
	if req.Algorithm != key.Algorithm() {
		return domain.User{}, 0, tokens.ErrRequestKey
	}
	if err := req.Verify(stored); err != nil {
		return domain.User{}, 0, err
	}
	u, uv, err := s.LoadUser(ctx, key.UserID())
	if err != nil {
		return domain.User{}, 0, err
	}
	if errors.Is(u.CanSignIn(), domain.ErrUserExpired) {
		return domain.User{}, 0, domain.ErrUserExpired
	}
	if u.CanSignIn() != nil || !u.IsAnonymous() {
		return domain.User{}, 0, ErrKeyNotUsable
	}
	if u.ClientID() != clientID {
		return domain.User{}, 0, ErrKeyOtherClient
	}
	return u, uv, nil
}

func (s *KeyPairs) signInKnownKey(ctx context.Context, clientID string, atLife time.Duration, req *tokens.AnonymousRequest, dev *domain.Device, key domain.AnonymousKey, idle, life time.Duration, meta Meta) (Issued, error) {
	u, uv, err := s.verifyKnownKey(ctx, clientID, req, key)
	if err != nil {
		return Issued{}, err
	}
	sessionID := uuid.NewString()
	token, hash, err := tokens.NewOpaque(s.random, sessionID)
	if err != nil {
		return Issued{}, err
	}
	started, err := domain.DecideStartSession(u, domain.Session{}, domain.StartSession{
		SessionID: sessionID, ClientID: u.ClientID(), Kind: domain.SessionKindRefreshToken, Method: domain.MethodAnonymousKey,
		TokenHash: hash, IdleTimeout: idle, Lifetime: life, Now: s.clock.Now(), KeyID: key.KeyID(), Device: dev, DPoPJKT: meta.DPoPJKT,
	})
	if err != nil {
		return Issued{}, err
	}
	// The sign-in is also recorded on the guest, at the version the decision
	// saw: a concurrent expiry (or promotion) makes one of the two conflict.
	if err := s.appendEvents(ctx, meta, s.startOn(uv, &startedSession{event: started[0]})...); err != nil {
		return Issued{}, err
	}
	u = domain.EvolveUser(u, domain.SignedIn(started[0].(domain.SessionStarted)))
	commands.WithLabelValues("sign_in_with_key", "ok").Inc()
	return s.issue(ctx, atLife, u, domain.EvolveSession(domain.Session{}, started[0]), token)
}

func (s *KeyPairs) registerKey(ctx context.Context, atLife time.Duration, clientID string, req *tokens.AnonymousRequest, dev *domain.Device, keyVersion uint64, idle, life time.Duration, meta Meta) (Issued, error) {
	if req.HeaderJWK == nil {
		return Issued{}, ErrUnknownKey
	}
	if req.HeaderJWK.KeyID != "" && req.HeaderJWK.KeyID != req.KeyID {
		return Issued{}, tokens.ErrRequestKey
	}
	if err := req.Verify(req.HeaderJWK); err != nil {
		return Issued{}, err
	}
	if !s.Settings().AnonymousEnabled {
		return Issued{}, ErrAnonymousDisabled
	}
	tp, err := tokens.Thumbprint(req.HeaderJWK)
	if err != nil {
		return Issued{}, err
	}
	jwk, err := tokens.PublicJWK(req.HeaderJWK)
	if err != nil {
		return Issued{}, tokens.ErrRequestKey
	}
	byTP, tpVersion, err := loadAggregate(ctx, s.store, s.aggregates, s.thumbprintSubject(tp), each(domain.EvolveAnonymousKey))
	if err != nil {
		return Issued{}, err
	}
	if byTP.Claimed() && byTP.KeyID() == req.KeyID {
		// The same key was registered under this kid a moment ago (after we
		// read the kid): decide again as a known key.
		return Issued{}, eventstore.ErrConflict
	}
	now := s.clock.Now()
	userID, sessionID := uuid.NewString(), uuid.NewString()
	userEvs, kidClaim, tpClaim, err := domain.DecideRegisterAnonymousKey(domain.User{}, domain.AnonymousKey{}, byTP, domain.RegisterAnonymousKey{
		UserID: userID, ClientID: clientID, KeyID: req.KeyID, Algorithm: req.Algorithm, JWK: jwk, Thumbprint: tp, SessionID: sessionID, Now: now,
	})
	if err != nil {
		return Issued{}, err
	}
	var u domain.User
	for _, ev := range userEvs {
		u = domain.EvolveUser(u, ev)
	}
	token, hash, err := tokens.NewOpaque(s.random, sessionID)
	if err != nil {
		return Issued{}, err
	}
	started, err := domain.DecideStartSession(u, domain.Session{}, domain.StartSession{
		SessionID: sessionID, ClientID: clientID, Kind: domain.SessionKindRefreshToken, Method: domain.MethodAnonymousKey,
		TokenHash: hash, IdleTimeout: idle, Lifetime: life, Now: now, KeyID: req.KeyID, Device: dev, DPoPJKT: meta.DPoPJKT,
	})
	if err != nil {
		return Issued{}, err
	}
	evs := make([]pending, 0, 5)
	for _, ev := range userEvs {
		evs = append(evs, pending{subject: s.userSubject(userID), event: ev})
	}
	evs = append(evs,
		pending{subject: s.keySubject(req.KeyID), expected: keyVersion, event: kidClaim},
		pending{subject: s.thumbprintSubject(tp), expected: tpVersion, event: tpClaim},
		pending{subject: s.sessionSubject(sessionID), event: started[0]},
	)
	if err := s.appendEvents(ctx, meta, evs...); err != nil {
		return Issued{}, err
	}
	commands.WithLabelValues("register_anonymous_key", "ok").Inc()
	return s.issue(ctx, atLife, u, domain.EvolveSession(domain.Session{}, started[0]), token)
}
