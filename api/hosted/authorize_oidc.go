package hosted

import (
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/idstream/idstream/api/httpx"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/domain"
)

// oidcRequest is what authorize reads of OpenID Connect's parameters
// (Core §3.1.2.1); ui_locales, display, claims_locales, acr_values and
// unknown parameters are ignored.
type oidcRequest struct {
	none, login  bool
	maxAge       time.Duration
	hasMaxAge    bool
	nonce        string
	responseMode string
	// subject is the user an id_token_hint named, hintSession its sid.
	subject, hintSession string
}

// maxNonce bounds the nonce kept with a flow and its code, maxScope the
// scope a session records.
const (
	maxNonce = 512
	maxScope = 1024
)

// parseOIDC checks the OpenID Connect parameters; on a problem it returns
// the error code and description to send back (Core §3.1.2.6).
func (s *Server) parseOIDC(r *http.Request, q url.Values, clientID string) (o oidcRequest, code, desc string) {
	switch rm := q.Get("response_mode"); rm {
	case "", "query", "form_post":
		o.responseMode = rm
	default:
		return o, "invalid_request", "response_mode must be query or form_post"
	}
	switch {
	case q.Has("request"):
		return o, "request_not_supported", "request objects are not supported"
	case q.Has("request_uri"):
		return o, "request_uri_not_supported", "request_uri is not supported"
	case q.Has("registration"):
		return o, "registration_not_supported", "the registration parameter is not supported"
	}
	for _, p := range strings.Fields(q.Get("prompt")) {
		switch p {
		case "none":
			o.none = true
		case "login", "select_account":
			o.login = true
		case "consent":
			// Every registered client is first-party: there is no consent
			// screen, and none is needed.
		default:
			return o, "invalid_request", "prompt values are none, login, consent and select_account"
		}
	}
	if o.none && (o.login || len(strings.Fields(q.Get("prompt"))) > 1) {
		return o, "invalid_request", "prompt=none cannot be combined with other prompt values"
	}
	if v := q.Get("max_age"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 1<<31 {
			return o, "invalid_request", "max_age must be a non-negative number of seconds"
		}
		o.maxAge, o.hasMaxAge = time.Duration(n)*time.Second, true
	}
	if len(q.Get("scope")) > maxScope {
		// The scope is recorded with the session (session.started.v1).
		return o, "invalid_scope", "scope is longer than 1024 characters"
	}
	if o.nonce = q.Get("nonce"); len(o.nonce) > maxNonce {
		return o, "invalid_request", "nonce is longer than 512 characters"
	}
	if hint := q.Get("id_token_hint"); hint != "" {
		c, err := s.Service.Keys().VerifyIDTokenHint(r.Context(), hint, idTokenHintMaxAge)
		if err != nil || c.Audience[0] != clientID {
			return o, "invalid_request", "id_token_hint is not an ID token this issuer signed for this client"
		}
		o.subject, o.hintSession = c.Subject, c.SessionID
	}
	return o, "", ""
}

// idTokenHintMaxAge bounds how old an ID token may be and still be a hint.
const idTokenHintMaxAge = 30 * 24 * time.Hour

// silentAuthorize answers prompt=none: without interaction, on the
// browser's idstream session (the session cookie), or login_required. A
// session older than max_age, or of another user than the id_token_hint's,
// is login_required too. With response_type=code the code carries the
// session's auth_time.
func (s *Server) silentAuthorize(w http.ResponseWriter, r *http.Request, cl domain.ClientSettings, flow app.CodeEntry, o oidcRequest) {
	fail := func(code, desc string) {
		s.respondToClient(w, r, flow.RedirectURI, o.responseMode, url.Values{"error": {code}, "error_description": {desc}}, flow.State)
	}
	if flow.UserID != "" || flow.PromotionCode != "" {
		fail("interaction_required", "a promotion needs the person to choose a login ID and password")
		return
	}
	c, err := r.Cookie(s.cfg.Cookie.Name)
	if err != nil || c.Value == "" {
		fail("login_required", "there is no session to use without interaction")
		return
	}
	p, err := s.Service.AuthenticateCookie(r.Context(), c.Value)
	switch {
	case err != nil && httpx.Classify(err).Status >= 500:
		fail("temporarily_unavailable", "please try again in a moment")
		return
	case err != nil:
		fail("login_required", "the session has ended")
		return
	case p.User.IsAnonymous():
		fail("login_required", "a guest's session has no sign-in to reuse")
		return
	case o.subject != "" && p.User.UserID() != o.subject:
		fail("login_required", "the session is another user's than the id_token_hint's")
		return
	case o.hasMaxAge && s.Service.Now().Sub(p.Session.AuthTime()) > o.maxAge:
		fail("login_required", "the user authenticated longer ago than max_age")
		return
	}
	if flow.ResponseType != "code" {
		s.respondToClient(w, r, flow.RedirectURI, o.responseMode, url.Values{}, flow.State)
		return
	}
	if err := s.Service.AllowSilentAuthorize(r.Context(), p.User.UserID()); err != nil {
		if s.LogError(r, err).Status >= 500 {
			fail("temporarily_unavailable", "please try again in a moment")
		} else {
			fail("temporarily_unavailable", "too many sign-ins without interaction for this user; try again later")
		}
		return
	}
	epoch := p.User.CredentialEpoch()
	code, err := s.Service.IssueAuthorizationCode(r.Context(), app.AuthorizationRequest{ClientID: cl.ClientID, RedirectURI: flow.RedirectURI,
		CodeChallenge: flow.CodeChallenge, Scope: flow.Scope, UserID: p.User.UserID(), Nonce: o.nonce, AuthTime: p.Session.AuthTime(),
		DPoPJKT: flow.DPoPJKT, Method: p.Session.Method(), Epoch: &epoch})
	if err != nil {
		fail("temporarily_unavailable", "please try again in a moment")
		return
	}
	s.respondToClient(w, r, flow.RedirectURI, o.responseMode, url.Values{"code": {code}}, flow.State)
}

// respondToClient returns an authorization response to the client's
// redirect URI: in the query (response_mode=query, the default) or as an
// auto-submitted form (form_post, OAuth 2.0 Form Post Response Mode).
func (s *Server) respondToClient(w http.ResponseWriter, r *http.Request, target, mode string, params url.Values, state string) {
	if mode != "form_post" {
		s.redirectWith(w, r, target, params, state)
		return
	}
	if state != "" {
		params.Set("state", state)
	}
	PageHeaders(w, target)
	// The one script hosted pages run: the form's submission, allowed by
	// its hash.
	h := w.Header()
	h.Set("Content-Security-Policy", strings.Replace(h.Get("Content-Security-Policy"), "default-src 'none'",
		"default-src 'none'; script-src '"+formPostScriptHash+"'", 1))
	type field struct{ Name, Value string }
	var fields []field
	for k, vs := range params {
		for _, v := range vs {
			fields = append(fields, field{k, v})
		}
	}
	w.WriteHeader(http.StatusOK)
	if err := formPostTemplate.Execute(w, map[string]any{"Target": target, "Fields": fields, "Script": template.JS(formPostScript)}); err != nil {
		s.Log.Error("render form_post", "error", err)
	}
}

const formPostScript = `document.forms[0].submit();`

var formPostScriptHash = func() string {
	sum := sha256.Sum256([]byte(formPostScript))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}()

var formPostTemplate = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continuing…</title></head>
<body><form method="post" action="{{.Target}}">{{range .Fields}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">{{end}}
<noscript><p>Continue to the application.</p><button type="submit">Continue</button></noscript></form>
<script>{{.Script}}</script></body></html>
`))
