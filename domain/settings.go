package domain

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// TypeSettingsChanged: an operator (or the first node, from the
// configuration file) changed the project's runtime settings.
const TypeSettingsChanged = "settings.changed.v1"

// RateLimitSetting allows Burst requests at once, refilled over Per; a burst
// of 0 turns the limit off.
type RateLimitSetting struct {
	Burst int     `json:"burst"`
	Per   Seconds `json:"per"`
}

// RateLimitSettings are the shared rate limits.
type RateLimitSettings struct {
	AnonymousSignup  RateLimitSetting `json:"anonymous_signup"`
	Challenge        RateLimitSetting `json:"challenge"`
	SignInPerIP      RateLimitSetting `json:"sign_in_per_ip"`
	SignInPerLoginID RateLimitSetting `json:"sign_in_per_login_id"`
	// Authorize: hosted-page flows started (GET /oauth2/authorize) per
	// client IP; settings written before it have none, and InitSettings
	// writes the configuration's once.
	Authorize RateLimitSetting `json:"authorize,omitzero"`
	// Refresh: refresh-token exchanges per session; DPoPProofs: requests
	// with a DPoP-bound access token (each spends a proof's jti) per
	// session. Settings written before them have none, and InitSettings
	// writes the configuration's once.
	Refresh    RateLimitSetting `json:"refresh,omitzero"`
	DPoPProofs RateLimitSetting `json:"dpop_proofs,omitzero"`
}

// Later are the limits added after the first release, absent (zero) from
// settings written before them, by JSON name.
func (r *RateLimitSettings) Later() map[string]*RateLimitSetting {
	return map[string]*RateLimitSetting{"authorize": &r.Authorize, "refresh": &r.Refresh, "dpop_proofs": &r.DPoPProofs}
}

// Session types of a client application.
const (
	// SessionTypeRefreshToken: the SDK keeps a refresh token (SPAs, native
	// apps); cookie sessions are refused.
	SessionTypeRefreshToken = "refresh_token"
	// SessionTypeCookie: an idstream session cookie (first-party web apps);
	// refresh tokens are refused.
	SessionTypeCookie = "cookie"
	// SessionTypeAny allows both.
	SessionTypeAny = "any"
)

// ClientSettings are one client application's settings.
type ClientSettings struct {
	ClientID       string   `json:"client_id" yaml:"client_id"`
	Name           string   `json:"name" yaml:"name"`
	AllowedOrigins []string `json:"allowed_origins" yaml:"allowed_origins"`
	RedirectURIs   []string `json:"redirect_uris" yaml:"redirect_uris"`
	// SessionType is "refresh_token", "cookie" or "any".
	SessionType             string  `json:"session_type" yaml:"session_type"`
	CookieIdleTimeout       Seconds `json:"cookie_idle_timeout" yaml:"cookie_idle_timeout"`
	CookieLifetime          Seconds `json:"cookie_lifetime" yaml:"cookie_lifetime"`
	RefreshTokenIdleTimeout Seconds `json:"refresh_token_idle_timeout" yaml:"refresh_token_idle_timeout"`
	RefreshTokenLifetime    Seconds `json:"refresh_token_lifetime" yaml:"refresh_token_lifetime"`
	AccessTokenLifetime     Seconds `json:"access_token_lifetime" yaml:"access_token_lifetime"`
	// RefreshTokenReuseInterval: for this long after a rotation, the token
	// it replaced may be presented once more (a phone that lost the answer
	// and retries) and rotates again instead of revoking the session; 0 is
	// off (RFC 9700 reuse detection at once).
	RefreshTokenReuseInterval Seconds `json:"refresh_token_reuse_interval,omitempty" yaml:"refresh_token_reuse_interval"`
	// TokenEndpointAuthMethod is how the client authenticates at the token
	// and introspection endpoints: "none" (or empty: a public client, PKCE
	// only), "client_secret_basic" or "client_secret_post" (a confidential
	// client, with a secret the admin API issues).
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty" yaml:"token_endpoint_auth_method"`
	// PostLogoutRedirectURIs are where RP-initiated logout may return to.
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty" yaml:"post_logout_redirect_uris"`
	// DPoPNonceRequired: the client's DPoP proofs must carry a nonce this
	// service gave it (DPoP-Nonce, RFC 9449 §8 and §9), so a proof cannot be
	// made ahead of time. For clients whose library answers use_dpop_nonce
	// (openid-client, oauth4webapi); the Authgear SDKs do not.
	DPoPNonceRequired bool `json:"dpop_nonce_required,omitempty" yaml:"dpop_nonce_required"`
}

// Client authentication methods at the token endpoint.
const (
	AuthMethodNone   = "none"
	AuthMethodBasic  = "client_secret_basic"
	AuthMethodPost   = "client_secret_post"
	maxLogoutTargets = 50
)

// AuthMethod returns the client's token_endpoint_auth_method ("none" when
// unset).
func (c ClientSettings) AuthMethod() string {
	if c.TokenEndpointAuthMethod == "" {
		return AuthMethodNone
	}
	return c.TokenEndpointAuthMethod
}

// Confidential reports whether the client authenticates with a secret.
func (c ClientSettings) Confidential() bool { return c.AuthMethod() != AuthMethodNone }

// AllowsPostLogoutRedirect reports whether the client registered the URI
// as a post-logout redirect URI (exact match).
func (c ClientSettings) AllowsPostLogoutRedirect(uri string) bool {
	return uri != "" && slices.Contains(c.PostLogoutRedirectURIs, uri)
}

// MaxReuseInterval bounds a client's refresh token reuse interval.
const MaxReuseInterval = time.Minute

// AllowsSession reports whether the client may start a session of the kind.
func (c ClientSettings) AllowsSession(kind SessionKind) bool {
	switch c.SessionType {
	case SessionTypeCookie:
		return kind == SessionKindCookie
	case SessionTypeRefreshToken:
		return kind == SessionKindRefreshToken
	}
	return true
}

// Settings are the project's runtime settings. They live in the log on one
// subject (`idstream.settings.project`); every node applies each change as it
// arrives.
type Settings struct {
	AnonymousEnabled bool `json:"anonymous_enabled"`
	// ConflictPolicy is "error" or "login" (see config).
	ConflictPolicy string `json:"promotion_conflict_policy"`
	// WebGuestGrace and KeyGuestInactivity are the guest lifetime rules;
	// a KeyGuestInactivity of 0 means key-pair guests never expire.
	WebGuestGrace      Seconds           `json:"web_guest_grace"`
	KeyGuestInactivity Seconds           `json:"key_guest_inactivity"`
	RateLimits         RateLimitSettings `json:"rate_limits"`
	Clients            []ClientSettings  `json:"clients"`
	// Verification: one-time codes, verification and authenticators
	// (absent in settings written before they existed: the defaults).
	Verification VerificationSettings `json:"verification,omitzero"`
}

// Client returns the client application with the id.
func (s Settings) Client(id string) (ClientSettings, bool) {
	for _, c := range s.Clients {
		if c.ClientID == id {
			return c, true
		}
	}
	return ClientSettings{}, false
}

// LifetimeRules are the guest lifetime rules of the settings.
func (s Settings) LifetimeRules() LifetimeRules {
	return LifetimeRules{WebGuestGrace: s.WebGuestGrace.Duration(), KeyGuestInactivity: s.KeyGuestInactivity.Duration()}
}

// Clone returns a deep copy, safe to edit.
func (s Settings) Clone() Settings {
	out := s
	out.Clients = make([]ClientSettings, len(s.Clients))
	for i, c := range s.Clients {
		c.AllowedOrigins = slices.Clone(c.AllowedOrigins)
		c.RedirectURIs = slices.Clone(c.RedirectURIs)
		c.PostLogoutRedirectURIs = slices.Clone(c.PostLogoutRedirectURIs)
		out.Clients[i] = c
	}
	out.Verification = s.Verification.clone()
	return out
}

// SettingChange is one changed setting: a dotted path (clients are keyed by
// client_id, e.g. "clients.web.refresh_token_lifetime") with its JSON value
// before and after; an empty From is a setting that did not exist.
type SettingChange struct {
	Field string `json:"field"`
	From  string `json:"from,omitempty"`
	To    string `json:"to,omitempty"`
}

// SettingsChanged records a change of the settings: who, what changed (from
// and to), and the whole settings after it, so a reader needs only the latest
// event.
type SettingsChanged struct {
	ChangedBy string          `json:"changed_by"`
	ChangedAt time.Time       `json:"changed_at"`
	Changes   []SettingChange `json:"changes"`
	Settings  Settings        `json:"settings"`
}

// EventType implements Event.
func (SettingsChanged) EventType() string { return TypeSettingsChanged }

// ProjectSettings is the settings aggregate.
type ProjectSettings struct {
	Settings Settings
	// Initialized is false until the first settings.changed event.
	Initialized bool
}

// EvolveSettings applies an event to the settings aggregate.
func EvolveSettings(p ProjectSettings, ev Event) ProjectSettings {
	if e, ok := ev.(SettingsChanged); ok {
		p.Settings = e.Settings.Clone()
		p.Initialized = true
	}
	return p
}

// SettingsError lists what is wrong with proposed settings, by field path
// (the same paths as SettingChange, but clients by position: "clients[0].name").
type SettingsError struct {
	Fields map[string]string
}

func (e *SettingsError) Error() string {
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + ": " + e.Fields[k]
	}
	return "invalid settings: " + strings.Join(parts, "; ")
}

// ErrSettingsUnchanged: the proposed settings equal the current ones.
var ErrSettingsUnchanged = errors.New("nothing changed")

var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Limits of the settings.
const (
	MinAccessTokenLifetime = time.Minute
	MaxAccessTokenLifetime = 24 * time.Hour
	// MaxIdleTimeout bounds idle timeouts (session activity is kept this long).
	MaxIdleTimeout   = 366 * 24 * time.Hour
	maxClients       = 100
	maxURIsPerClient = 50
)

// ValidateSettings checks every rule and returns a *SettingsError listing all
// problems, or nil.
func ValidateSettings(s Settings) error {
	bad := map[string]string{}
	if s.ConflictPolicy != "error" && s.ConflictPolicy != "login" {
		bad["promotion_conflict_policy"] = `must be "error" or "login"`
	}
	if s.WebGuestGrace < 0 {
		bad["web_guest_grace"] = "must not be negative"
	}
	if s.KeyGuestInactivity < 0 {
		bad["key_guest_inactivity"] = "must not be negative (0 means never)"
	}
	for name, rl := range map[string]RateLimitSetting{
		"anonymous_signup": s.RateLimits.AnonymousSignup, "challenge": s.RateLimits.Challenge,
		"sign_in_per_ip": s.RateLimits.SignInPerIP, "sign_in_per_login_id": s.RateLimits.SignInPerLoginID,
		"authorize": s.RateLimits.Authorize, "refresh": s.RateLimits.Refresh, "dpop_proofs": s.RateLimits.DPoPProofs,
	} {
		if rl.Burst < 0 {
			bad["rate_limits."+name+".burst"] = "must not be negative (0 turns the limit off)"
		}
		if _, later := s.RateLimits.Later()[name]; rl.Per <= 0 && (!later || rl.Burst != 0) {
			bad["rate_limits."+name+".per"] = "must be at least one second"
		}
	}
	s.Verification.validate(bad)
	if len(s.Clients) > maxClients {
		bad["clients"] = fmt.Sprintf("at most %d client applications", maxClients)
	}
	seen := map[string]bool{}
	for i, c := range s.Clients {
		f := func(name, msg string) { bad[fmt.Sprintf("clients[%d].%s", i, name)] = msg }
		switch {
		case !clientIDPattern.MatchString(c.ClientID):
			f("client_id", "use 1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit")
		case seen[c.ClientID]:
			f("client_id", "another application already has this client ID")
		}
		seen[c.ClientID] = true
		if strings.TrimSpace(c.Name) == "" || len(c.Name) > 100 {
			f("name", "give the application a name of at most 100 characters")
		}
		if c.SessionType != SessionTypeRefreshToken && c.SessionType != SessionTypeCookie && c.SessionType != SessionTypeAny {
			f("session_type", `must be "refresh_token", "cookie" or "any"`)
		}
		if len(c.AllowedOrigins) > maxURIsPerClient || len(c.RedirectURIs) > maxURIsPerClient {
			f("redirect_uris", fmt.Sprintf("at most %d origins and %d redirect URIs", maxURIsPerClient, maxURIsPerClient))
		}
		for _, o := range c.AllowedOrigins {
			if msg := CheckURLPattern(o, true); msg != "" {
				f("allowed_origins", msg)
				break
			}
		}
		for _, u := range c.RedirectURIs {
			if msg := CheckURLPattern(u, false); msg != "" {
				f("redirect_uris", msg)
				break
			}
		}
		for name, d := range map[string]Seconds{"cookie_idle_timeout": c.CookieIdleTimeout, "refresh_token_idle_timeout": c.RefreshTokenIdleTimeout} {
			if d <= 0 || d.Duration() > MaxIdleTimeout {
				f(name, "must be between one second and 366 days")
			}
		}
		if c.CookieLifetime < c.CookieIdleTimeout {
			f("cookie_lifetime", "must not be shorter than the cookie idle timeout")
		}
		if c.RefreshTokenLifetime < c.RefreshTokenIdleTimeout {
			f("refresh_token_lifetime", "must not be shorter than the refresh token idle timeout")
		}
		if d := c.AccessTokenLifetime.Duration(); d < MinAccessTokenLifetime || d > MaxAccessTokenLifetime {
			f("access_token_lifetime", "must be between 1 minute and 24 hours")
		}
		if d := c.RefreshTokenReuseInterval.Duration(); d < 0 || d > MaxReuseInterval {
			f("refresh_token_reuse_interval", "must be between 0 (off) and 1 minute")
		}
		switch c.TokenEndpointAuthMethod {
		case "", AuthMethodNone, AuthMethodBasic, AuthMethodPost:
		default:
			f("token_endpoint_auth_method", `must be "none", "client_secret_basic" or "client_secret_post"`)
		}
		if len(c.PostLogoutRedirectURIs) > maxLogoutTargets {
			f("post_logout_redirect_uris", fmt.Sprintf("at most %d post-logout redirect URIs", maxLogoutTargets))
		}
		for _, u := range c.PostLogoutRedirectURIs {
			if msg := CheckURLPattern(u, false); msg != "" || strings.Contains(u, ":*") {
				if msg == "" {
					msg = fmt.Sprintf("%q: a post-logout redirect URI is matched exactly, with no wildcard port", u)
				}
				f("post_logout_redirect_uris", msg)
				break
			}
		}
	}
	if len(bad) > 0 {
		return &SettingsError{Fields: bad}
	}
	return nil
}

// CheckURLPattern accepts an absolute http(s) URL whose port may be "*"; an
// origin has no path, query or fragment. A redirect URI may also use a
// native app's private-use scheme, one with a dot (RFC 8252 7.1:
// com.example.app:/callback). It returns what is wrong, or "".
func CheckURLPattern(p string, origin bool) string {
	u, err := url.Parse(strings.Replace(p, ":*", ":1", 1))
	if err == nil && !origin && strings.Contains(u.Scheme, ".") && u.Fragment == "" && u.User == nil &&
		(u.Host != "" || u.Path != "" || u.Opaque != "") {
		return ""
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Sprintf("%q is not an absolute http(s) URL or a private-use scheme (com.example.app:/callback)", p)
	}
	if u.Fragment != "" {
		return fmt.Sprintf("%q must not have a fragment", p)
	}
	if origin && (u.Path != "" || u.RawQuery != "") {
		return fmt.Sprintf("%q is not an origin (scheme, host and port only)", p)
	}
	return ""
}

// DecideSettingsChange validates the proposed settings and records what
// changed. by names who changed them ("portal:alice", "config-file").
func DecideSettingsChange(cur ProjectSettings, next Settings, by string, now time.Time) ([]Event, error) {
	if err := ValidateSettings(next); err != nil {
		return nil, err
	}
	var before Settings
	if cur.Initialized {
		before = cur.Settings
	}
	changes := DiffSettings(before, next, cur.Initialized)
	if cur.Initialized && len(changes) == 0 {
		return nil, ErrSettingsUnchanged
	}
	return []Event{SettingsChanged{ChangedBy: by, ChangedAt: now.UTC(), Changes: changes, Settings: next.Clone()}}, nil
}

// DiffSettings lists the settings that differ, sorted by path. With
// hadBefore false every setting of next is listed as new.
func DiffSettings(before, next Settings, hadBefore bool) []SettingChange {
	a, b := map[string]string{}, map[string]string{}
	if hadBefore {
		flattenSettings(before, a)
	}
	flattenSettings(next, b)
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []SettingChange
	for _, k := range keys {
		if a[k] != b[k] {
			out = append(out, SettingChange{Field: k, From: a[k], To: b[k]})
		}
	}
	return out
}

// flattenSettings writes each leaf of the settings as path → JSON value;
// clients are keyed by their client_id.
func flattenSettings(s Settings, out map[string]string) {
	clients := s.Clients
	s.Clients = nil
	var top map[string]any
	raw, _ := json.Marshal(s)
	_ = json.Unmarshal(raw, &top)
	delete(top, "clients")
	flattenJSON("", top, out)
	for _, c := range clients {
		var m map[string]any
		raw, _ := json.Marshal(c)
		_ = json.Unmarshal(raw, &m)
		delete(m, "client_id")
		flattenJSON("clients."+c.ClientID, m, out)
	}
}

func flattenJSON(prefix string, v any, out map[string]string) {
	if m, ok := v.(map[string]any); ok {
		for k, x := range m {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flattenJSON(p, x, out)
		}
		return
	}
	raw, _ := json.Marshal(v)
	out[prefix] = string(raw)
}
