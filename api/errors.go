package api

import (
	"encoding/json"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
	"github.com/idstream/idstream/eventstore"
	"github.com/idstream/idstream/loginid"
	"github.com/idstream/idstream/password"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/tokens"
	"github.com/idstream/idstream/workers"
	"github.com/idstream/idstream/workers/webhooks"
)

// Error is an error with everything the two response shapes need: the
// Authgear-style JSON API shape ({"error":{"name","reason","message","code"}},
// which the SDK parses; reason is the stable machine code) and the OAuth shape
// ({"error","error_description"}).
type Error struct {
	Status  int
	Name    string
	Reason  string
	Message string
	OAuth   string
	// RetryAfter is sent as Retry-After with 429s.
	RetryAfter time.Duration
	// Field is the form field the error is about (fieldLoginID,
	// fieldPassword), for pages that mark it; empty for the form as a whole.
	Field string
	cause error
}

// Form fields errors are about.
const (
	fieldLoginID  = "login_id"
	fieldPassword = "password"
)

func (e *Error) Error() string { return e.Reason + ": " + e.Message }
func (e *Error) Unwrap() error { return e.cause }

func newError(status int, name, reason, oauth, msg string) *Error {
	return &Error{Status: status, Name: name, Reason: reason, OAuth: oauth, Message: msg}
}

// Errors for bad requests, raised by the handlers themselves.
var (
	errUnsupportedMediaType = newError(415, "UnsupportedMediaType", "UnsupportedMediaType", "invalid_request", "the request body must be application/json")
	errFormMediaType        = newError(415, "UnsupportedMediaType", "UnsupportedMediaType", "invalid_request", "the request body must be application/x-www-form-urlencoded")
	errBodyTooLarge         = newError(413, "RequestEntityTooLarge", "RequestEntityTooLarge", "invalid_request", "the request body is too large")
	errMissingToken         = newError(401, "Unauthenticated", "InvalidToken", "invalid_token", "no access token or session cookie was presented")
)

func badRequest(reason, oauth, msg string) *Error {
	return newError(400, "Invalid", reason, oauth, msg)
}

// classify maps errors from the layers below to one API error. This is the
// only place that decides status codes and machine codes.
func classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	wrap := func(x *Error) *Error { x.cause = err; return x }
	switch {
	case errors.Is(err, app.ErrNoSuchUser), errors.Is(err, projections.ErrNotFound):
		return wrap(newError(404, "NotFound", "UserNotFound", "invalid_request", "no such user"))
	case errors.Is(err, app.ErrNoSuchSession):
		return wrap(newError(404, "NotFound", "SessionNotFound", "invalid_request", "the user has no such session"))
	case errors.Is(err, domain.ErrReasonTooLong):
		return wrap(newError(400, "Invalid", "InvalidReason", "invalid_request", "the reason is at most 500 characters"))
	case errors.Is(err, workers.ErrExportInProgress):
		return wrap(newError(409, "Conflict", "ExportInProgress", "invalid_request", "another export is pending or running; one runs at a time"))
	case errors.Is(err, workers.ErrExportFormat):
		return wrap(badRequest("InvalidExportFormat", "invalid_request", "format is ndjson or csv"))
	case errors.Is(err, workers.ErrExportField):
		return wrap(badRequest("InvalidExportField", "invalid_request", err.Error()))
	case errors.Is(err, workers.ErrExportNotFound):
		return wrap(newError(404, "NotFound", "ExportNotFound", "invalid_request", "no such export job (jobs are kept 24 hours)"))
	case errors.Is(err, workers.ErrExportNotReady):
		return wrap(newError(404, "NotFound", "ExportNotReady", "invalid_request", "the export has not completed"))
	case errors.Is(err, webhooks.ErrNoSuchEndpoint):
		return wrap(newError(404, "NotFound", "WebhookEndpointNotFound", "invalid_request", "no such webhook endpoint"))
	case errors.Is(err, webhooks.ErrNoSuchDeadLetter):
		return wrap(newError(404, "NotFound", "DeadLetterNotFound", "invalid_request", "the endpoint has no such dead letter"))
	case errors.Is(err, webhooks.ErrInvalidEndpoint):
		return wrap(badRequest("InvalidWebhookEndpoint", "invalid_request", strings.TrimPrefix(err.Error(), webhooks.ErrInvalidEndpoint.Error()+": ")))
	case errors.Is(err, webhooks.ErrConfigEndpoint):
		return wrap(newError(409, "Conflict", "WebhookEndpointConfigured", "invalid_request", "the endpoint is defined by configuration: change it there (only its state can be set here)"))
	case errors.Is(err, app.ErrAnonymousDisabled):
		return wrap(newError(403, "Forbidden", "AnonymousUserDisabled", "unauthorized_client", "anonymous users are disabled for this project"))
	case errors.Is(err, app.ErrUnknownClient):
		return wrap(newError(400, "Invalid", "UnknownClient", "invalid_client", "the client_id is not registered"))
	case errors.Is(err, app.ErrSessionTypeNotAllowed):
		return wrap(newError(400, "Invalid", "SessionTypeNotAllowed", "unauthorized_client", "the application's session type does not allow this kind of session"))
	case errors.Is(err, app.ErrDuplicateRequest):
		return wrap(newError(409, "Conflict", "DuplicateRequest", "invalid_request", "a request with this Idempotency-Key was already handled; its result is not repeated"))
	case errors.Is(err, app.ErrBusy):
		return wrap(newError(409, "Conflict", "ConcurrentUpdate", "temporarily_unavailable", "the session was changed concurrently; try again"))
	case errors.Is(err, domain.ErrRefreshTokenReused):
		return wrap(newError(400, "Invalid", "RefreshTokenReused", "invalid_grant", "the refresh token was already used; the session has been revoked"))
	case errors.Is(err, domain.ErrSessionRevoked):
		return wrap(newError(401, "Unauthenticated", "SessionRevoked", "invalid_grant", "the session has ended"))
	case errors.Is(err, domain.ErrSessionExpired):
		return wrap(newError(401, "Unauthenticated", "SessionExpired", "invalid_grant", "the session has expired"))
	case errors.Is(err, domain.ErrInvalidToken), errors.Is(err, domain.ErrSessionNotFound), errors.Is(err, domain.ErrUnsupportedSessionOp):
		return wrap(newError(401, "Unauthenticated", "InvalidToken", "invalid_grant", "the token is invalid"))
	case errors.Is(err, tokens.ErrExpiredAccessToken):
		return wrap(newError(401, "Unauthenticated", "AccessTokenExpired", "invalid_token", "the access token has expired"))
	case errors.Is(err, tokens.ErrInvalidAccessToken):
		return wrap(newError(401, "Unauthenticated", "InvalidToken", "invalid_token", "the access token is invalid"))
	case errors.Is(err, domain.ErrLoginIDTaken):
		return onField(wrap(newError(409, "Conflict", "LoginIDTaken", "invalid_request", "this login ID belongs to another account")), fieldLoginID)
	case errors.Is(err, domain.ErrNotAnonymous):
		return wrap(newError(400, "Invalid", "NotAnonymous", "invalid_request", "the user is not anonymous"))
	case errors.Is(err, domain.ErrUserExpired):
		return wrap(newError(401, "Unauthenticated", "UserExpired", "invalid_grant", "this guest expired after a period without activity"))
	case errors.Is(err, domain.ErrUserDisabled):
		return wrap(newError(403, "Forbidden", "UserDisabled", "invalid_grant", "this user is disabled"))
	case errors.Is(err, domain.ErrUserRetired):
		return wrap(newError(401, "Unauthenticated", "UserMerged", "invalid_grant", "this guest was merged into another account"))
	case errors.Is(err, loginid.ErrInvalidEmail):
		return onField(wrap(newError(400, "Invalid", "InvalidEmail", "invalid_request", "that is not a valid email address")), fieldLoginID)
	case errors.Is(err, loginid.ErrInvalidPhone):
		return onField(wrap(newError(400, "Invalid", "InvalidPhone", "invalid_request", "that is not a valid phone number in international form, e.g. +14155552671")), fieldLoginID)
	case errors.Is(err, loginid.ErrInvalidUsername):
		return onField(wrap(newError(400, "Invalid", "InvalidUsername", "invalid_request", "a username has 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")), fieldLoginID)
	case errors.Is(err, loginid.ErrReservedName):
		return onField(wrap(newError(400, "Invalid", "ReservedUsername", "invalid_request", "that username is reserved")), fieldLoginID)
	case errors.Is(err, loginid.ErrTypeDisabled), errors.Is(err, loginid.ErrUnknownType):
		return onField(wrap(newError(400, "Invalid", "LoginIDTypeDisabled", "invalid_request", "this kind of login ID is not accepted here")), fieldLoginID)
	case errors.Is(err, password.ErrTooShort), errors.Is(err, password.ErrTooLong), errors.Is(err, password.ErrNotUnicode),
		errors.Is(err, password.ErrControlCharacter), errors.Is(err, password.ErrOnlyWhitespace):
		return onField(wrap(newError(400, "Invalid", "PasswordPolicy", "invalid_request", "the password does not meet the policy: "+err.Error())), fieldPassword)
	case errors.Is(err, password.ErrTooCommon):
		return onField(wrap(newError(400, "Invalid", "PasswordTooCommon", "invalid_request", "that password is too common; choose another")), fieldPassword)
	case errors.Is(err, app.ErrInvalidCredentials):
		return wrap(newError(401, "Unauthenticated", "InvalidCredentials", "invalid_grant", "the login ID or password is not right"))
	case errors.Is(err, app.ErrRateLimited):
		x := newError(429, "TooManyRequest", "RateLimited", "slow_down", "too many attempts; try again later")
		var rl *app.RateLimitedError
		if errors.As(err, &rl) {
			x.RetryAfter = rl.RetryAfter
		}
		return wrap(x)
	case errors.Is(err, app.ErrInvalidPromotionCode):
		return wrap(newError(400, "Invalid", "InvalidPromotionCode", "invalid_request", "the promotion code is unknown, expired or already used"))
	case errors.Is(err, app.ErrInvalidAuthzCode):
		return wrap(newError(400, "Invalid", "InvalidAuthorizationCode", "invalid_grant", "the authorization code is unknown, expired or not for this client and redirect URI"))
	case errors.Is(err, app.ErrAuthzCodeReused):
		return wrap(newError(400, "Invalid", "AuthorizationCodeReused", "invalid_grant", "the authorization code was already used; the session it gave is revoked"))
	case errors.Is(err, app.ErrPKCEMismatch):
		return wrap(newError(400, "Invalid", "PKCEMismatch", "invalid_grant", "code_verifier does not match the code_challenge"))
	case errors.Is(err, app.ErrInvalidChallenge):
		return wrap(newError(400, "Invalid", "InvalidChallenge", "invalid_grant", "the challenge is missing, expired or already used"))
	case errors.Is(err, app.ErrInvalidPurpose):
		return wrap(newError(400, "Invalid", "InvalidPurpose", "invalid_request", `purpose must be "anonymous_request"`))
	case errors.Is(err, app.ErrInvalidAction):
		return wrap(newError(400, "Invalid", "InvalidAction", "invalid_grant", `action must be "auth" at the token endpoint`))
	case errors.Is(err, app.ErrUnknownKey):
		return wrap(newError(400, "Invalid", "UnknownKey", "invalid_grant", "the key id is unknown and the header carries no jwk"))
	case errors.Is(err, app.ErrKeyMismatch):
		return wrap(newError(400, "Invalid", "KeyMismatch", "invalid_grant", "the jwk in the header differs from the registered key"))
	case errors.Is(err, app.ErrKeyNotUsable):
		return wrap(newError(400, "Invalid", "KeyNotUsable", "invalid_grant", "this key can no longer sign in"))
	case errors.Is(err, app.ErrKeyOtherClient):
		return wrap(newError(400, "Invalid", "KeyOtherClient", "invalid_grant", "this key was registered by another client application"))
	case errors.Is(err, domain.ErrKeyTaken):
		return wrap(newError(400, "Invalid", "KeyTaken", "invalid_grant", "this key is already registered under another key id"))
	case errors.Is(err, tokens.ErrRequestMalformed):
		return wrap(newError(400, "Invalid", "InvalidJWT", "invalid_request", "the jwt is malformed"))
	case errors.Is(err, tokens.ErrRequestAlgorithm):
		return wrap(newError(400, "Invalid", "UnsupportedAlgorithm", "invalid_request", "the jwt's alg must be ES256, RS256 or EdDSA"))
	case errors.Is(err, tokens.ErrRequestType):
		return wrap(newError(400, "Invalid", "InvalidJWTType", "invalid_request", "the jwt's typ must be vnd.authgear.anonymous-request"))
	case errors.Is(err, tokens.ErrRequestKeyID):
		return wrap(newError(400, "Invalid", "InvalidKeyID", "invalid_request", "the kid must be 8 to 64 letters, digits, '-' or '_'"))
	case errors.Is(err, app.ErrInvalidDeviceInfo):
		return wrap(newError(400, "Invalid", "InvalidDeviceInfo", "invalid_request", "device_info must be a JSON object (x_device_info: base64url JSON) of at most 8 KiB"))
	case errors.Is(err, tokens.ErrRequestNumericDate):
		return wrap(newError(400, "Invalid", "InvalidNumericDate", "invalid_request", "iat and exp must be JSON numbers of seconds since 1970 (fractions allowed)"))
	case errors.Is(err, tokens.ErrRequestClaims):
		return wrap(newError(400, "Invalid", "InvalidJWTClaims", "invalid_request", "the jwt needs challenge, action, iat and exp"))
	case errors.Is(err, tokens.ErrRequestKey):
		return wrap(newError(400, "Invalid", "InvalidKey", "invalid_grant", "the key does not fit the algorithm (P-256, RSA of 2048 bits or more, Ed25519) or is not a public key"))
	case errors.Is(err, tokens.ErrRequestSignature):
		return wrap(newError(400, "Invalid", "InvalidSignature", "invalid_grant", "the signature does not verify"))
	case errors.Is(err, tokens.ErrRequestExpired):
		return wrap(newError(400, "Invalid", "JWTExpired", "invalid_grant", "the jwt has expired"))
	case errors.Is(err, tokens.ErrRequestNotYet):
		return wrap(newError(400, "Invalid", "JWTNotYetValid", "invalid_grant", "the jwt is issued in the future"))
	case errors.Is(err, tokens.ErrRequestLifetime):
		return wrap(newError(400, "Invalid", "JWTLifetime", "invalid_grant", "the jwt's exp must follow iat by at most 10 minutes"))
	case errors.Is(err, domain.ErrUserNotFound):
		return wrap(newError(401, "Unauthenticated", "UserNotFound", "invalid_grant", "the user does not exist"))
	case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, eventstore.ErrConflict), errors.Is(err, app.ErrLimiterUnavailable):
		return wrap(newError(503, "ServiceUnavailable", "Unavailable", "temporarily_unavailable", "the service is temporarily unavailable; try again"))
	}
	return wrap(newError(500, "InternalServerError", "InternalError", "server_error", "an internal error occurred"))
}

func onField(e *Error, field string) *Error { e.Field = field; return e }

// Audiences of pageText.
const (
	audienceFlow   = "flow"   // the hosted sign-up and sign-in pages
	audiencePortal = "portal" // the operators' portal
)

// pageText is the sentence a hosted page or the portal shows for an error,
// keyed by its reason: the one place that turns errors into words for
// people. typed is the login ID the person typed, to name its kind.
func pageText(e *Error, audience, typed string) string {
	if e.Status >= 500 {
		if audience == audiencePortal {
			return "Signing in is not possible right now. Try again in a moment."
		}
		return "Something went wrong on our side. Please try again."
	}
	switch e.Reason {
	case "LoginIDTaken":
		return "This " + loginNoun(typed) + " already belongs to an account. Use another, or sign in to that account from the app."
	case "InvalidCredentials":
		if audience == audiencePortal {
			return "The username or password is not right."
		}
		return "That login ID and password do not match an account."
	case "RateLimited":
		if audience == audiencePortal {
			return "Too many sign-in attempts. Wait a few minutes and try again."
		}
		return "Too many attempts. Wait a while and try again."
	case "PasswordTooCommon":
		return "That password is one of the most common ones. Choose something harder to guess."
	case "PasswordPolicy":
		return "The password " + strings.TrimPrefix(e.Message, "the password does not meet the policy: password ") + "."
	}
	return e.Message + "."
}

// loginNoun names the kind of login ID a person typed.
func loginNoun(v string) string {
	switch {
	case strings.Contains(v, "@"):
		return "email address"
	case strings.HasPrefix(strings.TrimSpace(v), "+"):
		return "phone number"
	}
	return "username"
}

// writeJSON writes v with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type apiErrorBody struct {
	Error apiErrorFields `json:"error"`
}

type apiErrorFields struct {
	Name    string `json:"name"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Code    int    `json:"code"`
}

func setRetryAfter(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
}

// writeAPIError answers in the JSON API shape.
func (s *Server) writeAPIError(w http.ResponseWriter, r *http.Request, err error) {
	e := s.logError(r, err)
	setRetryAfter(w, e)
	writeJSON(w, e.Status, apiErrorBody{Error: apiErrorFields{Name: e.Name, Reason: e.Reason, Message: e.Message, Code: e.Status}})
}

// writeOAuthError answers in the OAuth shape.
func (s *Server) writeOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	e := s.logError(r, err)
	setRetryAfter(w, e)
	status := e.Status
	if e.Status != http.StatusTooManyRequests && e.Status < 500 {
		// RFC 6749 §5.2: token errors are 400 (invalid_client may be 401).
		status = http.StatusBadRequest
	}
	if e.OAuth == "invalid_token" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": e.OAuth, "error_description": e.Message, "reason": e.Reason})
}

func (s *Server) logError(r *http.Request, err error) *Error {
	e := classify(err)
	if r.Context().Err() != nil {
		// The client went away; its outcome is its own business.
		s.Log.InfoContext(r.Context(), "client closed the request", "request_id", requestID(r.Context()))
		return e
	}
	if e.Status >= 500 {
		s.Log.ErrorContext(r.Context(), "request failed", "request_id", requestID(r.Context()), "reason", e.Reason, "error", err)
	} else {
		s.Log.InfoContext(r.Context(), "request rejected", "request_id", requestID(r.Context()), "reason", e.Reason, slog.Int("status", e.Status))
	}
	return e
}
