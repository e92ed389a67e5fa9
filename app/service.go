// Package app runs idstream's commands: it loads aggregates from the log,
// lets the domain decide, appends the outcome with optimistic concurrency,
// and answers from the events it appended, never from a projection.
package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/google/uuid"

	"github.com/idstream/idstream/app/delivery"
	"github.com/idstream/idstream/clock"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/tokens"
)

// Errors of the application layer, next to the domain's.
var (
	ErrAnonymousDisabled = errors.New("anonymous users are disabled")
	ErrUnknownClient     = errors.New("unknown client")
	// ErrSessionTypeNotAllowed: the client's session type does not allow
	// this kind of session (cookie vs refresh token).
	ErrSessionTypeNotAllowed = errors.New("the application's session type does not allow this kind of session")
	ErrDuplicateRequest      = errors.New("a request with this idempotency key was already handled")
	ErrBusy                  = errors.New("too many concurrent changes; try again")
)

// Store is what commands need from the event log.
type Store interface {
	Append(ctx context.Context, msgs ...eventstore.Message) ([]uint64, error)
	Load(ctx context.Context, subject string) ([]eventstore.Record, uint64, error)
	LoadAfter(ctx context.Context, subject string, after uint64) ([]eventstore.Record, uint64, error)
	Subject(kind, id string) string
}

// Activity keeps coalesced "last active" times of cookie sessions outside the
// log, shared by all nodes.
type Activity interface {
	Last(ctx context.Context, sessionID string) (time.Time, error)
	Touch(ctx context.Context, sessionID string, at time.Time) error
}

// Deps are the service's dependencies; all are required.
type Deps struct {
	Store    Store
	Keys     *tokens.Keys
	Config   *config.Config
	Clock    clock.Clock
	Random   io.Reader
	Activity Activity
	Codes    Codes
	// Secrets keeps the confidential clients' secret hashes.
	Secrets ClientSecrets
	// ProofIDs spends single-use identifiers of DPoP proofs.
	ProofIDs ProofIDs
	// Limiter is exact (sign-in attempts); FastLimiter costs no round trip
	// (guest sign-up, challenges).
	Limiter     Limiter
	FastLimiter Limiter
	Log         *slog.Logger
	// Delivery sends one-time codes (optional: without it every send is
	// delivery.ErrNotConfigured).
	Delivery delivery.Sender
}

// Service runs the commands. It is the composition of the capabilities
// below, each a type of its own with the ports it needs (node wires them
// once; servers and workers call the one they serve):
//
//   - Sessions: guest sign-up and resume, session starts, refresh,
//     revocation, access tokens and cookies, DPoP, introspection, client
//     authentication (sessions.go, usersessions.go, idtoken.go, dpop.go,
//     introspect.go, ratelimit.go).
//   - KeyPairs: key-pair guests' challenges, sign-in and promote requests
//     (keypair.go).
//   - Accounts: promotion and sign-in of regular users: passwords, codes,
//     verification, resets, external identities, authorization codes, the
//     hosted promotion (promotion.go, registration.go, verification.go,
//     otp.go, external.go, hostedflow.go).
//   - Lifetime: the reaper's expiry and the guest seeder (lifetime.go,
//     seed.go).
//   - SettingsService: changes to the project settings and their history
//     (settings.go).
//   - Admin: operators' actions on users and client secrets, portal
//     sign-in, the delivery settings' status and test messages (admin.go,
//     clientsecrets.go, operators.go, delivery_status.go).
//
// Every capability shares core: the log and the aggregate cache, the
// settings the node runs with, the clock and randomness, the codes
// bucket, the limiters, the password-hashing slots, the keys and the log.
type Service struct {
	*core
	*Sessions
	*KeyPairs
	*Accounts
	*Lifetime
	*SettingsService
	*Admin
}

// core is what every capability uses (see Service).
type core struct {
	store       Store
	keys        *tokens.Keys
	cfg         *config.Config
	clock       clock.Clock
	random      io.Reader
	codes       codeBook
	limiter     limits
	fastLimiter limits
	log         *slog.Logger
	// hashing bounds concurrent argon2id work.
	hashing chan struct{}
	// settings are the runtime settings from the log; seedSettings those of
	// the configuration file, used until the log's are loaded.
	settings     liveSettings
	seedSettings domain.Settings
	// aggregates are the states most recently rebuilt from the log.
	aggregates *aggregateCache
}

// Sessions runs the commands of sessions (see Service).
type Sessions struct {
	*core
	activity Activity
	proofIDs ProofIDs
	secrets  ClientSecrets
}

// KeyPairs runs the commands of key-pair guests (see Service).
type KeyPairs struct {
	*Sessions
}

// Accounts runs promotion and the sign-in of regular users (see Service).
type Accounts struct {
	*Sessions
	*KeyPairs
	delivery delivery.Sender
	// promotions and registrations are how long those commands take lately
	// (commandTimer); codeStarts the sign-ups and promotions by code up to
	// the code sent, with a password [0] and without [1].
	promotions, registrations movingAverage
	codeStarts                [2]movingAverage
}

// Lifetime runs the expiry of idle guests (see Service).
type Lifetime struct {
	*Sessions
}

// SettingsService runs changes to the project settings (see Service).
type SettingsService struct {
	*core
}

// Admin runs operators' actions (see Service).
type Admin struct {
	*Sessions
	// operators may sign in to the portal.
	operators operators
	// delivery: the delivery settings' status and test messages.
	delivery delivery.Sender
}

var errMissingPorts = errors.New("app: all dependencies are required")

func newCore(d Deps) (*core, error) {
	if d.Store == nil || d.Keys == nil || d.Config == nil || d.Clock == nil || d.Random == nil || d.Codes == nil ||
		d.Limiter == nil || d.FastLimiter == nil || d.Log == nil {
		return nil, errMissingPorts
	}
	return &core{store: d.Store, keys: d.Keys, cfg: d.Config, clock: d.Clock, random: d.Random, codes: codeBook{d.Codes},
		limiter: limits{d.Limiter}, fastLimiter: limits{d.FastLimiter}, log: d.Log,
		hashing: make(chan struct{}, max(1, d.Config.Password.MaxConcurrentHashes)), seedSettings: d.Config.Settings(),
		aggregates: newAggregateCache(d.Config.AggregateCacheSize())}, nil
}

func newSessions(c *core, activity Activity, proofIDs ProofIDs, secrets ClientSecrets) (*Sessions, error) {
	if c == nil || activity == nil || proofIDs == nil || secrets == nil {
		return nil, errMissingPorts
	}
	return &Sessions{core: c, activity: activity, proofIDs: proofIDs, secrets: secrets}, nil
}

func newKeyPairs(ss *Sessions) (*KeyPairs, error) {
	if ss == nil {
		return nil, errMissingPorts
	}
	return &KeyPairs{Sessions: ss}, nil
}

// newAccounts: without a sender every code send is
// delivery.ErrNotConfigured.
func newAccounts(ss *Sessions, kp *KeyPairs, sender delivery.Sender) (*Accounts, error) {
	if ss == nil || kp == nil {
		return nil, errMissingPorts
	}
	if sender == nil {
		sender = delivery.Router{}
	}
	return &Accounts{Sessions: ss, KeyPairs: kp, delivery: sender}, nil
}

func newAdmin(ss *Sessions, sender delivery.Sender) (*Admin, error) {
	if ss == nil {
		return nil, errMissingPorts
	}
	if sender == nil {
		sender = delivery.Router{}
	}
	ops, err := newOperators(ss.random, ss.cfg.Portal.Operators, ss.passwordParams())
	if err != nil {
		return nil, err
	}
	return &Admin{Sessions: ss, operators: ops, delivery: sender}, nil
}

// NewService builds every capability; it refuses missing dependencies
// (Delivery is optional).
func NewService(d Deps) (*Service, error) {
	c, err := newCore(d)
	if err != nil {
		return nil, err
	}
	ss, err := newSessions(c, d.Activity, d.ProofIDs, d.Secrets)
	if err != nil {
		return nil, err
	}
	kp, err := newKeyPairs(ss)
	if err != nil {
		return nil, err
	}
	ac, err := newAccounts(ss, kp, d.Delivery)
	if err != nil {
		return nil, err
	}
	ad, err := newAdmin(ss, d.Delivery)
	if err != nil {
		return nil, err
	}
	return &Service{core: c, Sessions: ss, KeyPairs: kp, Accounts: ac, Lifetime: &Lifetime{Sessions: ss},
		SettingsService: &SettingsService{core: c}, Admin: ad}, nil
}

// Config returns the configuration the service started with. Runtime
// settings (clients, anonymous users, lifetimes, rate limits) come from
// Settings instead.
func (s *core) Config() *config.Config { return s.cfg }

// Keys returns the token key ring.
func (s *core) Keys() *tokens.Keys { return s.keys }

// Meta traces a command through the log.
type Meta struct {
	CorrelationID string
	// Actor is who acted when it was not the user: an operator, e.g.
	// "admin-key:1a2b3c4d" (a fingerprint, never the key).
	Actor string
	// DPoPJKT is the thumbprint of the key whose DPoP proof the request
	// carried, verified (CheckDPoP); "" without a proof. A session started
	// by the request is bound to it, and a bound session's refresh needs
	// it.
	DPoPJKT string
	// proof is that proof, spent by the command's first append.
	proof *pendingProof
}

// maxAttempts bounds reload-and-decide retries after a conflict.
const maxAttempts = 4

// errDecideAgain, returned by an attempt of retryDecision, asks for another
// attempt on the leader's state although nothing conflicted: a replica that
// has not got a recent write yet answered a load.
var errDecideAgain = errors.New("app: decide again on the leader's state")

// retryOptions adjust retryDecision: attempts (default maxAttempts), and a
// pause of a little jitter before each retry, for writers that race on one
// aggregate in lockstep.
type retryOptions struct {
	attempts int
	jitter   bool
}

// retryDecision is the loop every command runs: attempt loads what it
// decides on, decides, and appends at the versions it saw; an append that
// conflicts (or errDecideAgain) makes it run again, on what the stream
// leader has (a replica may lag), a bounded number of times, then ErrBusy.
func retryDecision[T any](ctx context.Context, o retryOptions, attempt func(ctx context.Context) (T, error)) (T, error) {
	if o.attempts == 0 {
		o.attempts = maxAttempts
	}
	for n := range o.attempts {
		if n > 0 && o.jitter {
			jitter(ctx, n)
		}
		out, err := attempt(ctx)
		if !errors.Is(err, eventstore.ErrConflict) && !errors.Is(err, errDecideAgain) {
			return out, err
		}
		ctx = eventstore.WithLeaderCheck(ctx)
	}
	var zero T
	return zero, ErrBusy
}

func (s *core) envelope(ev domain.Event, meta Meta, causation string) (eventstore.Envelope, error) {
	data, err := json.Marshal(ev)
	if err != nil {
		return eventstore.Envelope{}, fmt.Errorf("app: encode %s: %w", ev.EventType(), err)
	}
	return eventstore.Envelope{
		ID:            uuid.NewString(),
		Type:          ev.EventType(),
		OccurredAt:    s.clock.Now(),
		CorrelationID: meta.CorrelationID,
		CausationID:   causation,
		Actor:         meta.Actor,
		Data:          data,
	}, nil
}

// pending is an event bound for a subject at an expected version.
type pending struct {
	subject  string
	expected uint64
	event    domain.Event
	msgID    string
}

// appendEvents writes the events of one command atomically. A command of
// a request with a DPoP proof spends the proof's jti first (CheckDPoP): a
// replayed proof writes nothing.
func (s *core) appendEvents(ctx context.Context, meta Meta, evs ...pending) error {
	if err := meta.proof.spend(ctx); err != nil {
		return err
	}
	msgs := make([]eventstore.Message, 0, len(evs))
	var causation string
	for _, p := range evs {
		env, err := s.envelope(p.event, meta, causation)
		if err != nil {
			return err
		}
		if causation == "" {
			causation = env.ID
		}
		msgs = append(msgs, eventstore.Message{Subject: p.subject, ExpectedLastSubjectSequence: p.expected, MsgID: p.msgID, Envelope: env})
	}
	seqs, err := s.store.Append(ctx, msgs...)
	if err != nil {
		return err
	}
	s.aggregates.appended(msgs, seqs)
	return nil
}

func (s *core) userSubject(id string) string    { return s.store.Subject("user", id) }
func (s *core) sessionSubject(id string) string { return s.store.Subject("session", id) }

func decodeAll(recs []eventstore.Record) ([]domain.Event, error) {
	out := make([]domain.Event, 0, len(recs))
	for _, r := range recs {
		ev, err := domain.DecodeEvent(r.Type, r.Data)
		if err != nil {
			return nil, fmt.Errorf("app: %s at %d: %w", r.Subject, r.Sequence, err)
		}
		out = append(out, ev)
	}
	return out, nil
}

// LoadUser rebuilds a user from the log.
func (s *core) LoadUser(ctx context.Context, id string) (domain.User, uint64, error) {
	return loadAggregate(ctx, s.store, s.aggregates, s.userSubject(id), domain.FoldUser)
}

// LoadSession rebuilds a session from the log.
func (s *core) LoadSession(ctx context.Context, id string) (domain.Session, uint64, error) {
	return loadAggregate(ctx, s.store, s.aggregates, s.sessionSubject(id), domain.FoldSession)
}

// ownerRefuses is the refusal, if any, of a session's use by its user: the
// user disabled, deleted or retired, or the session ended by one of its
// events. A cached state that allows the use is taken as it is, without
// reading the log (the caller checks the user read from the log after it
// writes: a refusal written on another node since may be seen only
// there); a refusal, or a user not cached, is read from the log (a refusal
// there once more from the stream leader when replicated), so a stale
// cache or replica never refuses (a user enabled again on another node). A
// user the log does not have (a lagging replica) is not a refusal here
// either.
func (s *core) ownerRefuses(ctx context.Context, sess domain.Session) error {
	if sess.UserID() == "" {
		return nil
	}
	refusal := func(u domain.User) error {
		if err := u.CanSignIn(); err != nil && !errors.Is(err, domain.ErrUserNotFound) {
			return err
		}
		if u.SessionEnded(sess.SessionID()) {
			return domain.ErrSessionRevoked
		}
		return nil
	}
	if cached, _, ok := s.aggregates.get(s.userSubject(sess.UserID()), reflect.TypeFor[domain.User]()); ok && refusal(cached.(domain.User)) == nil {
		return nil
	}
	u, _, err := s.LoadUser(ctx, sess.UserID())
	if err == nil && refusal(u) != nil && s.replicated() {
		// A replica that has not got the enable yet may have answered.
		u, _, err = s.LoadUser(eventstore.WithLeaderCheck(ctx), sess.UserID())
	}
	if err != nil {
		return err
	}
	return refusal(u)
}

// client looks up a client application.
func (s *core) client(id string) (domain.ClientSettings, error) {
	cl, ok := s.Settings().Client(id)
	if !ok {
		return domain.ClientSettings{}, ErrUnknownClient
	}
	return cl, nil
}

// lifetimes are the idle timeout and lifetime of a new session of the kind;
// a client whose session type does not allow the kind gets
// ErrSessionTypeNotAllowed.
func lifetimes(cl domain.ClientSettings, kind domain.SessionKind) (idle, life time.Duration, err error) {
	if !cl.AllowsSession(kind) {
		return 0, 0, ErrSessionTypeNotAllowed
	}
	if kind == domain.SessionKindCookie {
		return cl.CookieIdleTimeout.Duration(), cl.CookieLifetime.Duration(), nil
	}
	return cl.RefreshTokenIdleTimeout.Duration(), cl.RefreshTokenLifetime.Duration(), nil
}

// jitter pauses before retry attempt n (0 to n ms), so that writers racing
// for one aggregate do not collide in lockstep.
func jitter(ctx context.Context, n int) {
	clock.Sleep(ctx, time.Duration(rand.Int64N(int64(n)*int64(time.Millisecond)+1)))
}

// idempotencyMsgID scopes a client's idempotency key to the client and the
// operation; only its hash reaches the log.
func idempotencyMsgID(op, clientID, key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(op + "\x00" + clientID + "\x00" + key))
	return op + "-" + hex.EncodeToString(sum[:16])
}
