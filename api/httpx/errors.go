package httpx

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/idstream/idstream/api/upstream"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/app/delivery"
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
	// Field is the form field the error is about (FieldLoginID,
	// FieldPassword), for pages that mark it; empty for the form as a whole.
	Field string
	cause error
}

// Form fields errors are about.
const (
	FieldLoginID  = "login_id"
	FieldPassword = "password"
	FieldCode     = "code"
	// FieldFlow: the flow cannot go on; a hosted page shows a message
	// page (PageTitle, PageText) instead of its form.
	FieldFlow = "flow"
)

func (e *Error) Error() string { return e.Reason + ": " + e.Message }
func (e *Error) Unwrap() error { return e.cause }

// WithCause records the error e stands for (what Unwrap returns).
func (e *Error) WithCause(err error) *Error { e.cause = err; return e }

// NewError is an error of the table: status, name, reason, OAuth code and
// message.
func NewError(status int, name, reason, oauth, msg string) *Error {
	return &Error{Status: status, Name: name, Reason: reason, OAuth: oauth, Message: msg}
}

// Errors for bad requests, raised by the handlers themselves.
var (
	errUnsupportedMediaType = NewError(415, "UnsupportedMediaType", "UnsupportedMediaType", "invalid_request", "the request body must be application/json")
	errFormMediaType        = NewError(415, "UnsupportedMediaType", "UnsupportedMediaType", "invalid_request", "the request body must be application/x-www-form-urlencoded")
	errBodyTooLarge         = NewError(413, "RequestEntityTooLarge", "RequestEntityTooLarge", "invalid_request", "the request body is too large")
	ErrMissingToken         = NewError(401, "Unauthenticated", "InvalidToken", "invalid_token", "no access token or session cookie was presented")
	// OpenID Connect (issue 18): malformed client credentials, a logout's
	// client_id that is unknown or not its id_token_hint's audience.
	ErrInvalidClient = NewError(401, "Unauthenticated", "InvalidClient", "invalid_client", "client authentication failed: malformed credentials")
	ErrLogoutClient  = BadRequest("InvalidLogoutClient", "invalid_request", "client_id is unknown or not the id_token_hint's audience")
)

// BadRequest is a 400 of the JSON API shape.
func BadRequest(reason, oauth, msg string) *Error {
	return NewError(400, "Invalid", reason, oauth, msg)
}

// Classify maps errors from the layers below to one API error. This is the
// only place that decides status codes and machine codes.
func Classify(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	wrap := func(x *Error) *Error { x.cause = err; return x }
	switch {
	case errors.Is(err, app.ErrNoSuchUser), errors.Is(err, projections.ErrNotFound):
		return wrap(NewError(404, "NotFound", "UserNotFound", "invalid_request", "no such user"))
	case errors.Is(err, app.ErrNoSuchSession):
		return wrap(NewError(404, "NotFound", "SessionNotFound", "invalid_request", "the user has no such session"))
	case errors.Is(err, domain.ErrReasonTooLong):
		return wrap(NewError(400, "Invalid", "InvalidReason", "invalid_request", "the reason is at most 500 characters"))
	case errors.Is(err, workers.ErrExportInProgress):
		return wrap(NewError(409, "Conflict", "ExportInProgress", "invalid_request", "another export is pending or running; one runs at a time"))
	case errors.Is(err, workers.ErrExportFormat):
		return wrap(BadRequest("InvalidExportFormat", "invalid_request", "format is ndjson or csv"))
	case errors.Is(err, workers.ErrExportField):
		return wrap(BadRequest("InvalidExportField", "invalid_request", err.Error()))
	case errors.Is(err, workers.ErrExportNotFound):
		return wrap(NewError(404, "NotFound", "ExportNotFound", "invalid_request", "no such export job (jobs are kept 24 hours)"))
	case errors.Is(err, workers.ErrExportNotReady):
		return wrap(NewError(404, "NotFound", "ExportNotReady", "invalid_request", "the export has not completed"))
	case errors.Is(err, webhooks.ErrNoSuchEndpoint):
		return wrap(NewError(404, "NotFound", "WebhookEndpointNotFound", "invalid_request", "no such webhook endpoint"))
	case errors.Is(err, webhooks.ErrNoSuchDeadLetter):
		return wrap(NewError(404, "NotFound", "DeadLetterNotFound", "invalid_request", "the endpoint has no such dead letter"))
	case errors.Is(err, webhooks.ErrInvalidEndpoint):
		return wrap(BadRequest("InvalidWebhookEndpoint", "invalid_request", strings.TrimPrefix(err.Error(), webhooks.ErrInvalidEndpoint.Error()+": ")))
	case errors.Is(err, webhooks.ErrConfigEndpoint):
		return wrap(NewError(409, "Conflict", "WebhookEndpointConfigured", "invalid_request", "the endpoint is defined by configuration: change it there (only its state can be set here)"))
	case errors.Is(err, app.ErrAnonymousDisabled):
		return wrap(NewError(403, "Forbidden", "AnonymousUserDisabled", "unauthorized_client", "anonymous users are disabled for this project"))
	case errors.Is(err, app.ErrInvalidClient):
		return wrap(NewError(401, "Unauthenticated", "InvalidClient", "invalid_client", "client authentication failed: unknown client, wrong or expired secret, or not the client's token_endpoint_auth_method"))
	case errors.Is(err, app.ErrConfidentialClient):
		return wrap(NewError(400, "Invalid", "ConfidentialClient", "unauthorized_client", "a confidential client cannot use the anonymous grants (guest sign-up, key pair)"))
	case errors.Is(err, app.ErrNoSuchClientSecret):
		return wrap(NewError(404, "NotFound", "ClientSecretNotFound", "invalid_request", "the client has no such secret"))
	case errors.Is(err, app.ErrInvalidOverlap):
		return wrap(NewError(400, "Invalid", "InvalidOverlap", "invalid_request", "overlap must be a duration between 0s and 720h"))
	case errors.Is(err, tokens.ErrInvalidIDToken):
		return wrap(NewError(400, "Invalid", "InvalidIDTokenHint", "invalid_request", "id_token_hint is not an ID token this issuer signed"))
	case errors.Is(err, app.ErrUnknownClient):
		return wrap(NewError(400, "Invalid", "UnknownClient", "invalid_client", "the client_id is not registered"))
	case errors.Is(err, app.ErrSessionTypeNotAllowed):
		return wrap(NewError(400, "Invalid", "SessionTypeNotAllowed", "unauthorized_client", "the application's session type does not allow this kind of session"))
	case errors.Is(err, app.ErrDuplicateRequest):
		return wrap(NewError(409, "Conflict", "DuplicateRequest", "invalid_request", "a request with this Idempotency-Key was already handled; its result is not repeated"))
	case errors.Is(err, app.ErrBusy):
		return wrap(NewError(409, "Conflict", "ConcurrentUpdate", "temporarily_unavailable", "the session was changed concurrently; try again"))
	case errors.As(err, new(*tokens.DPoPError)):
		var de *tokens.DPoPError
		errors.As(err, &de)
		if de.Reason == tokens.DPoPNonce {
			return wrap(BadRequest(de.Reason, "use_dpop_nonce", de.Detail))
		}
		return wrap(BadRequest(de.Reason, "invalid_dpop_proof", "the DPoP proof was refused: "+de.Detail))
	case errors.Is(err, domain.ErrDPoPProofRequired):
		return wrap(BadRequest(tokens.DPoPRequired, "invalid_dpop_proof", "the token is bound to a DPoP key; send a DPoP proof signed with it"))
	case errors.Is(err, domain.ErrDPoPKeyMismatch):
		return wrap(BadRequest(tokens.DPoPMismatch, "invalid_dpop_proof", "the DPoP proof is signed with another key than the one the token is bound to"))
	case errors.Is(err, app.ErrTokenNotBound):
		return wrap(NewError(401, "Unauthenticated", "TokenNotBound", "invalid_token", "the access token is not DPoP-bound; send it with the Bearer scheme"))
	case errors.Is(err, domain.ErrRefreshTokenReused):
		return wrap(NewError(400, "Invalid", "RefreshTokenReused", "invalid_grant", "the refresh token was already used; the session has been revoked"))
	case errors.Is(err, domain.ErrSessionRevoked):
		return wrap(NewError(401, "Unauthenticated", "SessionRevoked", "invalid_grant", "the session has ended"))
	case errors.Is(err, domain.ErrSessionExpired):
		return wrap(NewError(401, "Unauthenticated", "SessionExpired", "invalid_grant", "the session has expired"))
	case errors.Is(err, domain.ErrInvalidToken), errors.Is(err, domain.ErrSessionNotFound), errors.Is(err, domain.ErrUnsupportedSessionOp):
		return wrap(NewError(401, "Unauthenticated", "InvalidToken", "invalid_grant", "the token is invalid"))
	case errors.Is(err, tokens.ErrExpiredAccessToken):
		return wrap(NewError(401, "Unauthenticated", "AccessTokenExpired", "invalid_token", "the access token has expired"))
	case errors.Is(err, tokens.ErrInvalidAccessToken):
		return wrap(NewError(401, "Unauthenticated", "InvalidToken", "invalid_token", "the access token is invalid"))
	case errors.Is(err, domain.ErrLoginIDTaken):
		return onField(wrap(NewError(409, "Conflict", "LoginIDTaken", "invalid_request", "this login ID belongs to another account")), FieldLoginID)
	case errors.Is(err, domain.ErrNotAnonymous):
		return wrap(NewError(400, "Invalid", "NotAnonymous", "invalid_request", "the user is not anonymous"))
	case errors.Is(err, domain.ErrUserExpired):
		return wrap(NewError(401, "Unauthenticated", "UserExpired", "invalid_grant", "this guest expired after a period without activity"))
	case errors.Is(err, domain.ErrUserDisabled):
		return wrap(NewError(403, "Forbidden", "UserDisabled", "invalid_grant", "this user is disabled"))
	case errors.Is(err, domain.ErrUserRetired):
		return wrap(NewError(401, "Unauthenticated", "UserMerged", "invalid_grant", "this guest was merged into another account"))
	case errors.Is(err, loginid.ErrInvalidEmail):
		return onField(wrap(NewError(400, "Invalid", "InvalidEmail", "invalid_request", "that is not a valid email address")), FieldLoginID)
	case errors.Is(err, loginid.ErrInvalidPhone):
		return onField(wrap(NewError(400, "Invalid", "InvalidPhone", "invalid_request", "that is not a valid phone number in international form, e.g. +14155552671")), FieldLoginID)
	case errors.Is(err, loginid.ErrInvalidUsername):
		return onField(wrap(NewError(400, "Invalid", "InvalidUsername", "invalid_request", "a username has 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")), FieldLoginID)
	case errors.Is(err, loginid.ErrReservedName):
		return onField(wrap(NewError(400, "Invalid", "ReservedUsername", "invalid_request", "that username is reserved")), FieldLoginID)
	case errors.Is(err, loginid.ErrTypeDisabled), errors.Is(err, loginid.ErrUnknownType):
		return onField(wrap(NewError(400, "Invalid", "LoginIDTypeDisabled", "invalid_request", "this kind of login ID is not accepted here")), FieldLoginID)
	case errors.Is(err, password.ErrTooShort), errors.Is(err, password.ErrTooLong), errors.Is(err, password.ErrNotUnicode),
		errors.Is(err, password.ErrControlCharacter), errors.Is(err, password.ErrOnlyWhitespace):
		return onField(wrap(NewError(400, "Invalid", "PasswordPolicy", "invalid_request", "the password does not meet the policy: "+err.Error())), FieldPassword)
	case errors.Is(err, password.ErrTooCommon):
		return onField(wrap(NewError(400, "Invalid", "PasswordTooCommon", "invalid_request", "that password is too common; choose another")), FieldPassword)
	case errors.Is(err, app.ErrInvalidCredentials):
		return wrap(NewError(401, "Unauthenticated", "InvalidCredentials", "invalid_grant", "the login ID or password is not right"))
	case errors.Is(err, app.ErrRateLimited):
		x := NewError(429, "TooManyRequest", "RateLimited", "slow_down", "too many attempts; try again later")
		var rl *app.RateLimitedError
		if errors.As(err, &rl) {
			x.RetryAfter = rl.RetryAfter
		}
		return wrap(x)
	case errors.Is(err, app.ErrInvalidPromotionCode):
		return wrap(NewError(400, "Invalid", "InvalidPromotionCode", "invalid_request", "the promotion code is unknown, expired or already used"))
	case errors.Is(err, app.ErrInvalidAuthzCode):
		return wrap(NewError(400, "Invalid", "InvalidAuthorizationCode", "invalid_grant", "the authorization code is unknown, expired or not for this client and redirect URI"))
	case errors.Is(err, app.ErrAuthzCodeReused):
		return wrap(NewError(400, "Invalid", "AuthorizationCodeReused", "invalid_grant", "the authorization code was already used; the session it gave is revoked"))
	case errors.Is(err, app.ErrPKCEMismatch):
		return wrap(NewError(400, "Invalid", "PKCEMismatch", "invalid_grant", "code_verifier does not match the code_challenge"))
	case errors.Is(err, app.ErrInvalidChallenge):
		return wrap(NewError(400, "Invalid", "InvalidChallenge", "invalid_grant", "the challenge is missing, expired or already used"))
	case errors.Is(err, app.ErrInvalidPurpose):
		return wrap(NewError(400, "Invalid", "InvalidPurpose", "invalid_request", `purpose must be "anonymous_request"`))
	case errors.Is(err, app.ErrInvalidAction):
		return wrap(NewError(400, "Invalid", "InvalidAction", "invalid_grant", `action must be "auth" at the token endpoint`))
	case errors.Is(err, app.ErrUnknownKey):
		return wrap(NewError(400, "Invalid", "UnknownKey", "invalid_grant", "the key id is unknown and the header carries no jwk"))
	case errors.Is(err, app.ErrKeyMismatch):
		return wrap(NewError(400, "Invalid", "KeyMismatch", "invalid_grant", "the jwk in the header differs from the registered key"))
	case errors.Is(err, app.ErrKeyNotUsable):
		return wrap(NewError(400, "Invalid", "KeyNotUsable", "invalid_grant", "this key can no longer sign in"))
	case errors.Is(err, app.ErrTokenOtherClient):
		return wrap(NewError(400, "Invalid", "TokenOtherClient", "invalid_grant", "this access token was issued to another client application"))
	case errors.Is(err, app.ErrKeyOtherClient):
		return wrap(NewError(400, "Invalid", "KeyOtherClient", "invalid_grant", "this key was registered by another client application"))
	case errors.Is(err, domain.ErrKeyTaken):
		return wrap(NewError(400, "Invalid", "KeyTaken", "invalid_grant", "this key is already registered under another key id"))
	case errors.Is(err, tokens.ErrRequestMalformed):
		return wrap(NewError(400, "Invalid", "InvalidJWT", "invalid_request", "the jwt is malformed"))
	case errors.Is(err, tokens.ErrRequestAlgorithm):
		return wrap(NewError(400, "Invalid", "UnsupportedAlgorithm", "invalid_request", "the jwt's alg must be ES256, RS256 or EdDSA"))
	case errors.Is(err, tokens.ErrRequestType):
		return wrap(NewError(400, "Invalid", "InvalidJWTType", "invalid_request", "the jwt's typ must be vnd.authgear.anonymous-request"))
	case errors.Is(err, tokens.ErrRequestKeyID):
		return wrap(NewError(400, "Invalid", "InvalidKeyID", "invalid_request", "the kid must be 8 to 64 letters, digits, '-' or '_'"))
	case errors.Is(err, app.ErrInvalidDeviceInfo):
		return wrap(NewError(400, "Invalid", "InvalidDeviceInfo", "invalid_request", "device_info must be a JSON object (x_device_info: base64url JSON) of at most 8 KiB"))
	case errors.Is(err, tokens.ErrRequestNumericDate):
		return wrap(NewError(400, "Invalid", "InvalidNumericDate", "invalid_request", "iat and exp must be JSON numbers of seconds since 1970 (fractions allowed)"))
	case errors.Is(err, tokens.ErrRequestClaims):
		return wrap(NewError(400, "Invalid", "InvalidJWTClaims", "invalid_request", "the jwt needs challenge, action, iat and exp"))
	case errors.Is(err, tokens.ErrRequestKey):
		return wrap(NewError(400, "Invalid", "InvalidKey", "invalid_grant", "the key does not fit the algorithm (P-256, RSA of 2048 bits or more, Ed25519) or is not a public key"))
	case errors.Is(err, tokens.ErrRequestSignature):
		return wrap(NewError(400, "Invalid", "InvalidSignature", "invalid_grant", "the signature does not verify"))
	case errors.Is(err, tokens.ErrRequestExpired):
		return wrap(NewError(400, "Invalid", "JWTExpired", "invalid_grant", "the jwt has expired"))
	case errors.Is(err, tokens.ErrRequestNotYet):
		return wrap(NewError(400, "Invalid", "JWTNotYetValid", "invalid_grant", "the jwt is issued in the future"))
	case errors.Is(err, tokens.ErrRequestLifetime):
		return wrap(NewError(400, "Invalid", "JWTLifetime", "invalid_grant", "the jwt's exp must follow iat by at most 10 minutes"))
	// Upstream identity providers (issue 19).
	case errors.Is(err, domain.ErrExternalIdentityTaken):
		return wrap(NewError(409, "Conflict", "ExternalIdentityTaken", "invalid_request", "this external identity belongs to another account"))
	case errors.Is(err, domain.ErrExternalIdentityNotLinked):
		return wrap(NewError(404, "NotFound", "ExternalIdentityNotFound", "invalid_request", "the user has no such external identity"))
	case errors.Is(err, domain.ErrLastWayIn):
		return wrap(NewError(409, "Conflict", "LastWayToSignIn", "invalid_request", "this is the account's last way to sign in; add another before removing it"))
	case errors.Is(err, domain.ErrAnonymousCannotLink):
		return wrap(BadRequest("NotRegularUser", "invalid_request", "a guest links an external identity by promotion"))
	case errors.Is(err, upstream.ErrUnknownProvider):
		return wrap(BadRequest("UnknownIdentityProvider", "invalid_request", "no such identity provider for this application"))
	case errors.Is(err, upstream.ErrUnavailable):
		return wrap(NewError(502, "BadGateway", "UpstreamUnavailable", "temporarily_unavailable", "the identity provider is not answering; try again later"))
	case errors.Is(err, upstream.ErrRejected):
		return wrap(BadRequest("UpstreamRejected", "access_denied", "the identity provider's answer could not be verified"))
	case errors.Is(err, upstream.ErrEmailUnverified):
		return wrap(BadRequest("UpstreamEmailUnverified", "access_denied", "the identity provider has not verified the email address"))
	case errors.Is(err, upstream.ErrDenied):
		return wrap(BadRequest("UpstreamDenied", "access_denied", "the sign-in at the identity provider was cancelled or refused"))
	case errors.Is(err, domain.ErrUserNotFound):
		return wrap(NewError(401, "Unauthenticated", "UserNotFound", "invalid_grant", "the user does not exist"))
	case errors.Is(err, app.ErrInvalidCode):
		return onField(wrap(NewError(400, "Invalid", "InvalidCode", "invalid_grant", "the code is not right, or no code was sent for this")), FieldCode)
	case errors.Is(err, app.ErrCodeExpired):
		return onField(wrap(NewError(400, "Invalid", "CodeExpired", "invalid_grant", "the code has expired; ask for a new one")), FieldCode)
	case errors.Is(err, app.ErrCodeAttempts):
		return onField(wrap(NewError(400, "Invalid", "CodeAttemptsExceeded", "invalid_grant", "too many wrong codes; this code no longer works, ask for a new one")), FieldCode)
	case errors.Is(err, app.ErrNoCodePending):
		return wrap(NewError(400, "Invalid", "NoCodePending", "invalid_request", "no code is pending for this; start again"))
	case errors.Is(err, app.ErrResendTooSoon):
		x := NewError(429, "TooManyRequest", "ResendTooSoon", "slow_down", "a code was sent a moment ago; ask again after resend_after")
		var rs *app.ResendTooSoonError
		if errors.As(err, &rs) {
			x.RetryAfter = rs.RetryAfter
		}
		return wrap(x)
	case errors.Is(err, app.ErrReauthenticationOtherUser):
		return onField(wrap(BadRequest("ReauthenticationOtherUser", "login_required", "sign in as the account you are re-authenticating")), FieldLoginID)
	case errors.Is(err, app.ErrPromotionLinkSpent):
		return onField(wrap(BadRequest("PromotionLinkSpent", "invalid_request", "the sign-up link expired or was already used")), FieldFlow)
	case errors.Is(err, app.ErrGuestOfAnotherBrowser):
		return onField(wrap(NewError(403, "Forbidden", "GuestOfAnotherBrowser", "access_denied", "the sign-up link belongs to a guest of another browser")), FieldFlow)
	case errors.Is(err, app.ErrSignInChanged):
		return onField(wrap(BadRequest("SignInChanged", "invalid_grant", "the account's password was reset or removed since this was started; sign in again")), FieldFlow)
	case errors.Is(err, app.ErrFlowSpent):
		return onField(wrap(BadRequest("FlowSpent", "invalid_request", "this sign-in page was already used or has expired")), FieldFlow)
	case errors.Is(err, app.ErrFlowChanged):
		return onField(wrap(NewError(409, "Conflict", "FlowChanged", "invalid_request", "the page changed meanwhile (another tab?); start again")), FieldFlow)
	case errors.Is(err, app.ErrNotAGuestFlow):
		return onField(wrap(BadRequest("NotAGuestFlow", "invalid_request", "this flow promotes no guest")), FieldFlow)
	case errors.Is(err, app.ErrVerificationRequired):
		return wrap(NewError(403, "Forbidden", "VerificationRequired", "invalid_request", "this project requires the code sent to the login ID: use /api/anonymous_user/promote/start"))
	case errors.Is(err, app.ErrVerificationOff):
		return wrap(NewError(403, "Forbidden", "VerificationDisabled", "invalid_request", "verification by code is turned off for this project"))
	case errors.Is(err, app.ErrAuthenticatorNotOffered):
		return onField(wrap(NewError(400, "Invalid", "AuthenticatorNotOffered", "invalid_request", "this kind of login ID does not offer this way to sign in")), FieldLoginID)
	case errors.Is(err, app.ErrAlreadyVerified):
		return wrap(NewError(409, "Conflict", "AlreadyVerified", "invalid_request", "the login ID is verified already"))
	case errors.Is(err, domain.ErrNotUsersLoginID):
		return wrap(NewError(400, "Invalid", "NoLoginID", "invalid_request", "the user has no login ID to send a code to"))
	case errors.Is(err, domain.ErrNoCodeChannel):
		return onField(wrap(NewError(400, "Invalid", "NoCodeChannel", "invalid_request", "codes go to email addresses and phone numbers, not usernames")), FieldLoginID)
	case errors.Is(err, delivery.ErrInvalidRecipient):
		return onField(wrap(NewError(400, "Invalid", "InvalidRecipient", "invalid_request", "messages cannot be sent to this address or number")), FieldLoginID)
	case errors.Is(err, delivery.ErrFailed):
		return wrap(NewError(502, "BadGateway", "DeliveryFailed", "temporarily_unavailable", "the code could not be sent right now; nothing changed, try again in a moment"))
	case errors.Is(err, delivery.ErrNotConfigured):
		return wrap(NewError(503, "ServiceUnavailable", "DeliveryNotConfigured", "temporarily_unavailable", "this service cannot send codes to this kind of login ID"))
	case errors.Is(err, eventstore.ErrUnavailable), errors.Is(err, eventstore.ErrConflict), errors.Is(err, app.ErrLimiterUnavailable):
		return wrap(NewError(503, "ServiceUnavailable", "Unavailable", "temporarily_unavailable", "the service is temporarily unavailable; try again"))
	}
	return wrap(NewError(500, "InternalServerError", "InternalError", "server_error", "an internal error occurred"))
}

func onField(e *Error, field string) *Error { e.Field = field; return e }

// Audiences of PageText.
const (
	AudienceFlow   = "flow"   // the hosted sign-up and sign-in pages
	AudiencePortal = "portal" // the operators' portal
)

// PageTitle is the heading of the message page a hosted flow shows for an
// error that ends it (FieldFlow).
func PageTitle(e *Error) string {
	switch {
	case e.Reason == "PromotionLinkSpent", e.Reason == "FlowSpent":
		return "This page has expired"
	case e.Status >= 500:
		return "Temporarily unavailable"
	}
	return "Cannot continue"
}

// PageText is the sentence a hosted page or the portal shows for an error,
// keyed by its reason: the one place that turns errors into words for
// people. typed is the login ID the person typed, to name its kind.
func PageText(e *Error, audience, typed string) string {
	if t, ok := upstreamText[e.Reason]; ok {
		return t
	}
	switch e.Reason {
	case "DeliveryFailed":
		return "We could not send the code just now. Nothing changed; try again in a moment."
	case "DeliveryNotConfigured":
		return "This service cannot send codes to a " + LoginNoun(typed) + ". Use another kind of login ID."
	}
	if e.Status >= 500 {
		if audience == AudiencePortal {
			return "Signing in is not possible right now. Try again in a moment."
		}
		return "Something went wrong on our side. Please try again."
	}
	switch e.Reason {
	case "PromotionLinkSpent":
		return "Your sign-up link expired or was already used. Go back to the application and start again."
	case "GuestOfAnotherBrowser":
		return "This sign-up link belongs to a guest of another browser. Open it from the application on your own device."
	case "SignInChanged":
		return "The account's password was reset or removed since you started this. Sign in again and start over."
	case "FlowSpent":
		return "This page was already used (in another tab, or by a second click) or has expired. Go back to the application and start again."
	case "FlowChanged":
		return "This page changed in another tab meanwhile. Go back to the application and start again."
	case "VerificationRequired":
		noun := "email address or phone number"
		if typed != "" {
			noun = LoginNoun(typed)
		}
		return "This service needs to confirm your " + noun + " with a code first. Go back and start again."
	case "NotAGuestFlow":
		return "This page does not create an account for a guest. Go back to the application and start again."
	case "LoginIDTaken":
		return "This " + LoginNoun(typed) + " already belongs to an account. Use another, or sign in to that account from the app."
	case "InvalidCredentials":
		if audience == AudiencePortal {
			return "The username or password is not right."
		}
		return "That login ID and password do not match an account."
	case "RateLimited":
		if audience == AudiencePortal {
			return "Too many sign-in attempts. Wait a few minutes and try again."
		}
		return "Too many attempts. Wait a while and try again."
	case "ReauthenticationOtherUser":
		return "Sign in as the account you are re-authenticating; this login ID is another account's."
	case "PasswordTooCommon":
		return "That password is one of the most common ones. Choose something harder to guess."
	case "PasswordPolicy":
		return "The password " + strings.TrimPrefix(e.Message, "the password does not meet the policy: password ") + "."
	case "InvalidCode":
		return "That code is not right. Check the latest message and try again."
	case "CodeExpired":
		return "That code has expired. Ask for a new one below."
	case "CodeAttemptsExceeded":
		return "Too many wrong codes: this one no longer works. Ask for a new one below."
	case "NoCodePending":
		return "There is no code to send again. Go back and start again."
	case "ResendTooSoon":
		return fmt.Sprintf("We sent a code a moment ago. You can ask for a new one in %d seconds.", int(math.Ceil(e.RetryAfter.Seconds())))
	case "InvalidRecipient":
		return "We cannot send messages to this " + LoginNoun(typed) + ". Check it, or use another."
	case "NoCodeChannel":
		return "Codes go to email addresses and phone numbers. Use one of those."
	case "AuthenticatorNotOffered":
		return "This kind of login ID cannot be used this way here."
	}
	return e.Message + "."
}

// upstreamText are the pages' words for the errors of "Continue with
// <provider>" (issue 19).
var upstreamText = map[string]string{
	"UpstreamUnavailable":     "The identity provider is not answering right now. Nothing was changed: try again in a moment, or use another way to continue.",
	"UpstreamRejected":        "The identity provider's answer could not be verified, so you were not signed in. Nothing was changed: go back and try again.",
	"UpstreamEmailUnverified": "The identity provider has not verified your email address. Verify it there first, or use another way to continue.",
	"UpstreamDenied":          "The sign-in at the identity provider was cancelled. Nothing was changed.",
	"ExternalIdentityTaken":   "This account at the identity provider is already linked to another account here. Sign in to that account instead, or use another way to continue.",
	"LastWayToSignIn":         "This is your account's last way to sign in, so it cannot be removed. Add another first.",
}

// LoginNoun names the kind of login ID a person typed.
func LoginNoun(v string) string {
	switch {
	case strings.Contains(v, "@"):
		return "email address"
	case strings.HasPrefix(strings.TrimSpace(v), "+"):
		return "phone number"
	}
	return "username"
}

// WriteJSON writes v with the status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
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

// setDPoPNonce sends the nonce a use_dpop_nonce refusal gives the client
// (RFC 9449 §8, §9).
func setDPoPNonce(w http.ResponseWriter, err error) {
	var de *tokens.DPoPError
	if errors.As(err, &de) && de.Nonce != "" {
		w.Header().Set("DPoP-Nonce", de.Nonce)
	}
}

// SetRetryAfter sends Retry-After for an error that carries one.
func SetRetryAfter(w http.ResponseWriter, e *Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(e.RetryAfter.Seconds()))))
	}
}

// WriteAPIError answers in the JSON API shape.
func (b *Base) WriteAPIError(w http.ResponseWriter, r *http.Request, err error) {
	e := b.LogError(r, err)
	SetRetryAfter(w, e)
	setDPoPNonce(w, err)
	WriteJSON(w, e.Status, apiErrorBody{Error: apiErrorFields{Name: e.Name, Reason: e.Reason, Message: e.Message, Code: e.Status}})
}

// WriteOAuthError answers in the OAuth shape.
func (b *Base) WriteOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	e := b.LogError(r, err)
	SetRetryAfter(w, e)
	setDPoPNonce(w, err)
	status := e.Status
	if e.Status != http.StatusTooManyRequests && e.Status < 500 && (e.Status != http.StatusUnauthorized || e.OAuth != "invalid_client") {
		// RFC 6749 §5.2: token errors are 400, but a failed client
		// authentication is 401 (with a Basic challenge).
		status = http.StatusBadRequest
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="idstream", charset="UTF-8"`)
	}
	if e.OAuth == "invalid_token" {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, status, map[string]string{"error": e.OAuth, "error_description": e.Message, "reason": e.Reason})
}

// WriteResourceError answers a protected resource's refusal (userinfo): an
// unusable token is 401 invalid_token with a Bearer challenge (RFC 6750
// §3.1), a bad or missing DPoP proof for a bound token 401
// invalid_dpop_proof with a DPoP challenge naming the algorithms taken
// (RFC 9449 §7.1); a failure of the service, or a rate limit, stays what it
// is.
func (b *Base) WriteResourceError(w http.ResponseWriter, r *http.Request, err error, dpopAlgs []string) {
	e := Classify(err)
	if e.Status >= 500 || e.Status == http.StatusTooManyRequests {
		// A failure of the service, or a request over its session's limit
		// (429 with Retry-After): the token is fine, and a client must not
		// take the answer for a dead session.
		b.WriteOAuthError(w, r, err)
		return
	}
	oauth, challenge := "invalid_token", `Bearer error="invalid_token"`
	switch e.OAuth {
	case "invalid_dpop_proof":
		oauth = e.OAuth
		challenge = `DPoP error="invalid_dpop_proof", algs="` + strings.Join(dpopAlgs, " ") + `"`
	case "use_dpop_nonce":
		oauth = e.OAuth
		challenge = `DPoP error="use_dpop_nonce", error_description="the DPoP proof must carry the DPoP-Nonce given", algs="` + strings.Join(dpopAlgs, " ") + `"`
		setDPoPNonce(w, err)
	}
	e = (&Error{Status: http.StatusUnauthorized, Name: e.Name, Reason: e.Reason, Message: e.Message, OAuth: oauth}).WithCause(err)
	b.LogError(r, e)
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Cache-Control", "no-store")
	WriteJSON(w, e.Status, map[string]string{"error": e.OAuth, "error_description": e.Message, "reason": e.Reason})
}

func (b *Base) LogError(r *http.Request, err error) *Error {
	e := Classify(err)
	if r.Context().Err() != nil {
		// The client went away; its outcome is its own business.
		b.Log.InfoContext(r.Context(), "client closed the request", "request_id", RequestID(r.Context()))
		return e
	}
	if e.Status >= 500 {
		b.Log.ErrorContext(r.Context(), "request failed", "request_id", RequestID(r.Context()), "reason", e.Reason, "error", err)
	} else {
		b.Log.InfoContext(r.Context(), "request rejected", "request_id", RequestID(r.Context()), "reason", e.Reason, slog.Int("status", e.Status))
	}
	return e
}
