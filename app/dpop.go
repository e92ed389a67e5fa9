package app

import (
	"context"
	"crypto/subtle"
	"errors"
	"sync"

	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/tokens"
)

// ProofIDs spends single-use identifiers where every node sees them
// (eventstore.SecretValues.Spend): the first Spend of a key succeeds, a
// later one gets eventstore.ErrSpent.
type ProofIDs interface {
	Spend(ctx context.Context, key string) error
}

// ErrTokenNotBound: an access token sent with the DPoP scheme is a bearer
// token (its session was started without a proof).
var ErrTokenNotBound = errors.New("the access token is not bound to a DPoP key; send it as a Bearer token")

// DPoPRequest is what a request says about DPoP: its DPoP header (empty
// when none) and the method and public URL it was sent to.
type DPoPRequest struct {
	Proof       string
	Method, URL string
	// Several is set when the request carried more than one DPoP header
	// (RFC 9449 §4.3: refused).
	Several bool
	// NonceRequired: the client must put a nonce this service gave it in
	// its proofs (the client's dpop_nonce_required; RFC 9449 §8, §9).
	NonceRequired bool
}

// DPoPNonce is the DPoP nonce of the moment, the same on every node: the
// answer to a client that must send nonces carries it as DPoP-Nonce.
func (s *Sessions) DPoPNonce(ctx context.Context) string {
	return s.keys.DPoPNonce(ctx, s.clock.Now())
}

// NonceRequired reports whether the client must send server-provided
// nonces in its DPoP proofs; an unknown client does not (it is refused
// later, on its own terms).
func (s *Sessions) NonceRequired(clientID string) bool {
	cl, err := s.client(clientID)
	return err == nil && cl.DPoPNonceRequired
}

// VerifyDPoP checks a request's DPoP proof (RFC 9449 §4.3) and spends its
// jti, once across every node. It returns the proof key's thumbprint, or ""
// when the request carried no proof (a client without DPoP, such as the web
// SDK). accessToken, when set, is what the proof goes with: its ath must
// match if present, and must be present when requireATH.
func (s *Sessions) VerifyDPoP(ctx context.Context, r DPoPRequest, accessToken string, requireATH bool) (string, error) {
	p, err := s.checkDPoP(ctx, r, accessToken, requireATH)
	if err != nil || p == nil {
		return "", err
	}
	return p.jkt, p.spend(ctx)
}

// CheckDPoP checks a token request's DPoP proof as VerifyDPoP does and
// binds meta to its key, but leaves its jti to be spent once what the
// request presents (a challenge and its signature, a code with its PKCE
// verifier, a refresh token) has checked out: the command's first append
// spends it, before anything is written (appendEvents), and SettleProof
// does for a command that wrote nothing. A request with nothing valid but
// a proof stores nothing, so the proofs bucket grows with the grants
// given, not with what anybody sends.
func (s *Sessions) CheckDPoP(ctx context.Context, r DPoPRequest, meta Meta) (Meta, error) {
	p, err := s.checkDPoP(ctx, r, "", false)
	if err != nil || p == nil {
		return meta, err
	}
	meta.DPoPJKT, meta.proof = p.jkt, p
	return meta, nil
}

// noCredential are the refusals of a grant whose own credential was no
// good (an unknown or malformed refresh token, challenge, anonymous-request
// JWT, code or verifier, an unknown client) or that nothing can ever turn
// into a grant (a revoked session, a bound session asked with another key
// or none, a confidential client at the key-pair grant, malformed device
// info): anybody can send those (a session id is the refresh token's
// prefix), a replay is refused the same way, and their proofs are not
// kept.
var noCredential = []error{domain.ErrInvalidToken, domain.ErrSessionNotFound, domain.ErrUnsupportedSessionOp,
	domain.ErrSessionRevoked, domain.ErrDPoPKeyMismatch, domain.ErrDPoPProofRequired, ErrUnknownClient,
	ErrConfidentialClient, ErrInvalidDeviceInfo, ErrInvalidChallenge, ErrInvalidAuthzCode, ErrPKCEMismatch,
	tokens.ErrRequestMalformed, tokens.ErrRequestAlgorithm, tokens.ErrRequestType, tokens.ErrRequestKeyID,
	tokens.ErrRequestClaims, tokens.ErrRequestNumericDate}

// SettleProof spends the jti of meta's proof (CheckDPoP) once a grant has
// answered err, if the command has not, and returns what to answer. A
// grant given without a write must not take its proof twice (a proof spent
// meanwhile refuses it). A grant refused with a credential that may be
// good (a refusal for the user's state, a failure of the moment) spends
// the proof too, so the request cannot be replayed, on another node or a
// moment later, and be granted; only the refusals in noCredential keep
// nothing.
func (s *Sessions) SettleProof(ctx context.Context, meta Meta, err error) error {
	if err == nil {
		return meta.proof.spend(ctx)
	}
	for _, e := range noCredential {
		if errors.Is(err, e) {
			return err
		}
	}
	_ = meta.proof.spend(ctx) // refused either way
	return err
}

// pendingProof is a verified DPoP proof whose jti is not spent yet; the
// attempts of one command share it, so a retry does not find its own
// proof spent.
type pendingProof struct {
	jkt, jti string
	ids      ProofIDs
	mu       sync.Mutex
	spent    bool
}

// spend spends the proof's jti, once across every node; a proof spent
// before is DPoPReplayed. A nil proof, or one this request spent, is
// nothing to do.
func (p *pendingProof) spend(ctx context.Context) error {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.spent {
		return nil
	}
	// jti is unique per key (RFC 9449 §11.1): scoped by the key, one
	// client cannot spend another's.
	if err := p.ids.Spend(ctx, p.jkt+"."+p.jti); err != nil {
		if errors.Is(err, eventstore.ErrSpent) {
			commands.WithLabelValues("dpop_proof", "replayed").Inc()
			return &tokens.DPoPError{Reason: tokens.DPoPReplayed, Detail: "the proof's jti was used before"}
		}
		return err
	}
	p.spent = true
	return nil
}

func (s *Sessions) checkDPoP(ctx context.Context, r DPoPRequest, accessToken string, requireATH bool) (*pendingProof, error) {
	if r.Several {
		return nil, &tokens.DPoPError{Reason: tokens.DPoPMalformed, Detail: "more than one DPoP header"}
	}
	if r.Proof == "" {
		return nil, nil
	}
	p, err := tokens.ParseDPoPProof(r.Proof, tokens.DPoPCheck{Method: r.Method, URL: r.URL, AccessToken: accessToken,
		RequireATH: requireATH, Now: s.clock.Now()})
	if err != nil {
		return nil, err
	}
	// A missing or stale nonce is answered with a fresh one before the jti
	// is spent: the client signs a new proof anyway.
	if r.NonceRequired && !s.keys.CheckDPoPNonce(ctx, p.Nonce, s.clock.Now()) {
		commands.WithLabelValues("dpop_proof", "nonce").Inc()
		detail := "the proof carries no nonce; sign it again with the DPoP-Nonce given"
		if p.Nonce != "" {
			detail = "the proof's nonce is not current; sign it again with the DPoP-Nonce given"
		}
		return nil, &tokens.DPoPError{Reason: tokens.DPoPNonce, Detail: detail, Nonce: s.DPoPNonce(ctx)}
	}
	return &pendingProof{jkt: p.JKT, jti: p.JTI, ids: s.proofIDs}, nil
}

// AccessRequest is an access token presented to a protected endpoint
// (userinfo), with its scheme and the request's DPoP proof.
type AccessRequest struct {
	Token string
	// DPoPScheme is set for "Authorization: DPoP <token>", clear for Bearer.
	DPoPScheme bool
	DPoP       DPoPRequest
}

// AuthenticateAccess checks an access token the way its binding asks
// (RFC 9449 §7):
//   - DPoP scheme: a proof is required, with ath, by the key the token is
//     bound to (cnf.jkt); a bearer token sent this way is refused.
//   - Bearer scheme, bound token: a proof by the bound key is required, so a
//     stolen token alone is worthless. Its ath is checked when present but
//     not required: the Authgear mobile SDKs send their tokens as Bearer with
//     a proof that has no ath on every request (authgear-sdk-js
//     packages/authgear-core/src/client.ts _prepareHeaders and _doFetch;
//     authgear-sdk-ios Sources/APIClient.swift fetch).
//   - Bearer scheme, unbound token: as always; a proof, if any, is ignored.
func (s *Sessions) AuthenticateAccess(ctx context.Context, a AccessRequest) (Principal, error) {
	p, bound, err := s.authenticateBearerBound(ctx, a.Token)
	if err != nil {
		return Principal{}, err
	}
	if bound == "" {
		if a.DPoPScheme {
			return Principal{}, ErrTokenNotBound
		}
		return p, nil
	}
	if a.DPoP.Proof == "" && !a.DPoP.Several {
		return Principal{}, domain.ErrDPoPProofRequired
	}
	a.DPoP.NonceRequired = s.NonceRequired(p.Session.ClientID())
	proof, err := s.checkDPoP(ctx, a.DPoP, a.Token, a.DPoPScheme)
	if err != nil {
		return Principal{}, err
	}
	// Only a proof by the bound key is kept: a token used with some other
	// key stores nothing.
	if subtle.ConstantTimeCompare([]byte(proof.jkt), []byte(bound)) != 1 {
		return Principal{}, domain.ErrDPoPKeyMismatch
	}
	// Every proof taken is a jti the memory bucket keeps for minutes: one
	// session spends at most rate_limits.dpop_proofs of them.
	if err := s.allowSessionUse(ctx, "dpop_proofs", p.Session.SessionID(), s.Settings().RateLimits.DPoPProofs); err != nil {
		return Principal{}, err
	}
	if err := proof.spend(ctx); err != nil {
		return Principal{}, err
	}
	return p, nil
}

// checkCodeBinding enforces an authorization code's dpop_jkt (RFC 9449
// §10): the exchange must carry a proof by that key.
func checkCodeBinding(e CodeEntry, meta Meta) error {
	if e.DPoPJKT == "" {
		return nil
	}
	if meta.DPoPJKT == "" {
		return domain.ErrDPoPProofRequired
	}
	if subtle.ConstantTimeCompare([]byte(meta.DPoPJKT), []byte(e.DPoPJKT)) != 1 {
		return domain.ErrDPoPKeyMismatch
	}
	return nil
}
