package domain_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/domain"
)

func sampleSettings() domain.Settings {
	return domain.Settings{
		AnonymousEnabled: true, ConflictPolicy: "error", WebGuestGrace: 86400, KeyGuestInactivity: 90 * 86400,
		RateLimits: domain.RateLimitSettings{
			AnonymousSignup: domain.RateLimitSetting{Burst: 60, Per: 60}, Challenge: domain.RateLimitSetting{Burst: 60, Per: 60},
			SignInPerIP: domain.RateLimitSetting{Burst: 100, Per: 900}, SignInPerLoginID: domain.RateLimitSetting{Burst: 10, Per: 900},
		},
		Clients: []domain.ClientSettings{{
			ClientID: "web", Name: "Web app", AllowedOrigins: []string{"https://app.example.com", "http://localhost:*"},
			RedirectURIs: []string{"https://app.example.com/after-auth"}, SessionType: domain.SessionTypeAny,
			CookieIdleTimeout: 3600, CookieLifetime: 86400, RefreshTokenIdleTimeout: 3600, RefreshTokenLifetime: 86400,
			AccessTokenLifetime: 1800,
		}},
		Verification: domain.VerificationSettings{Promotion: domain.VerifyRequired, CodeLifetime: 300,
			Authenticators: map[string][]string{"email": {"password", "oob_otp"}, "phone": {"oob_otp"}, "username": {"password"}},
			SendPerTarget:  domain.RateLimitSetting{Burst: 5, Per: 3600}, SendPerIP: domain.RateLimitSetting{Burst: 20, Per: 3600}},
	}
}

func TestSettingsFirstChangeListsEverything(t *testing.T) {
	evs, err := domain.DecideSettingsChange(domain.ProjectSettings{}, sampleSettings(), "config-file", t0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("%v %v", evs, err)
	}
	ch := evs[0].(domain.SettingsChanged)
	if ch.ChangedBy != "config-file" || len(ch.Changes) < 15 {
		t.Fatalf("first change: %+v", ch)
	}
	for _, c := range ch.Changes {
		if c.From != "" || c.To == "" {
			t.Errorf("first change %+v should be from nothing", c)
		}
	}
}

func TestSettingsChangeRecordsFromAndTo(t *testing.T) {
	cur := domain.ProjectSettings{Settings: sampleSettings(), Initialized: true}
	next := sampleSettings()
	next.AnonymousEnabled = false
	next.Clients[0].RefreshTokenLifetime = 7200
	next.Clients = append(next.Clients, domain.ClientSettings{ClientID: "mobile", Name: "Mobile", SessionType: "refresh_token",
		CookieIdleTimeout: 60, CookieLifetime: 60, RefreshTokenIdleTimeout: 60, RefreshTokenLifetime: 60, AccessTokenLifetime: 60})
	evs, err := domain.DecideSettingsChange(cur, next, "portal:alice", t0)
	if err != nil {
		t.Fatal(err)
	}
	ch := evs[0].(domain.SettingsChanged)
	got := map[string][2]string{}
	for _, c := range ch.Changes {
		got[c.Field] = [2]string{c.From, c.To}
	}
	if got["anonymous_enabled"] != [2]string{"true", "false"} {
		t.Errorf("anonymous_enabled: %v", got["anonymous_enabled"])
	}
	if got["clients.web.refresh_token_lifetime"] != [2]string{"86400", "7200"} {
		t.Errorf("lifetime: %v", got["clients.web.refresh_token_lifetime"])
	}
	if got["clients.mobile.name"] != [2]string{"", `"Mobile"`} {
		t.Errorf("new client: %v", got["clients.mobile.name"])
	}
	if _, ok := got["clients.web.name"]; ok {
		t.Error("an unchanged field is listed")
	}
	after := domain.EvolveSettings(cur, ch)
	if after.Settings.AnonymousEnabled || len(after.Settings.Clients) != 2 {
		t.Errorf("evolve: %+v", after)
	}
	// The event's settings are a copy: editing the proposal later changes nothing.
	next.Clients[0].AllowedOrigins[0] = "https://evil.example"
	if ch.Settings.Clients[0].AllowedOrigins[0] != "https://app.example.com" {
		t.Error("the event shares memory with the proposal")
	}
	if _, err := domain.DecideSettingsChange(after, after.Settings, "portal:alice", t0); !errors.Is(err, domain.ErrSettingsUnchanged) {
		t.Errorf("no change: %v", err)
	}
}

func TestSettingsRules(t *testing.T) {
	cases := []struct {
		field string
		edit  func(*domain.Settings)
	}{
		{"promotion_conflict_policy", func(s *domain.Settings) { s.ConflictPolicy = "merge" }},
		{"web_guest_grace", func(s *domain.Settings) { s.WebGuestGrace = -1 }},
		{"rate_limits.challenge.per", func(s *domain.Settings) { s.RateLimits.Challenge.Per = 0 }},
		{"rate_limits.sign_in_per_ip.burst", func(s *domain.Settings) { s.RateLimits.SignInPerIP.Burst = -5 }},
		{"clients[0].client_id", func(s *domain.Settings) { s.Clients[0].ClientID = "has space" }},
		{"clients[1].client_id", func(s *domain.Settings) { s.Clients = append(s.Clients, s.Clients[0]) }},
		{"clients[0].name", func(s *domain.Settings) { s.Clients[0].Name = "  " }},
		{"clients[0].session_type", func(s *domain.Settings) { s.Clients[0].SessionType = "jwt" }},
		{"clients[0].redirect_uris", func(s *domain.Settings) { s.Clients[0].RedirectURIs = []string{"/relative"} }},
		{"clients[0].redirect_uris", func(s *domain.Settings) { s.Clients[0].RedirectURIs = []string{"javascript:alert(1)"} }},
		{"clients[0].redirect_uris", func(s *domain.Settings) { s.Clients[0].RedirectURIs = []string{"myapp://callback"} }},
		{"clients[0].allowed_origins", func(s *domain.Settings) { s.Clients[0].AllowedOrigins = []string{"com.example.app:"} }},
		{"clients[0].redirect_uris", func(s *domain.Settings) { s.Clients[0].RedirectURIs = []string{"https://a.example/cb#frag"} }},
		{"clients[0].allowed_origins", func(s *domain.Settings) { s.Clients[0].AllowedOrigins = []string{"https://a.example/path"} }},
		{"clients[0].refresh_token_lifetime", func(s *domain.Settings) { s.Clients[0].RefreshTokenLifetime = 60 }},
		{"clients[0].cookie_lifetime", func(s *domain.Settings) { s.Clients[0].CookieLifetime = 60 }},
		{"clients[0].refresh_token_idle_timeout", func(s *domain.Settings) {
			s.Clients[0].RefreshTokenIdleTimeout = 0
		}},
		{"clients[0].access_token_lifetime", func(s *domain.Settings) { s.Clients[0].AccessTokenLifetime = 30 }},
		{"clients[0].access_token_lifetime", func(s *domain.Settings) { s.Clients[0].AccessTokenLifetime = 25 * 3600 }},
		{"clients[0].token_endpoint_auth_method", func(s *domain.Settings) { s.Clients[0].TokenEndpointAuthMethod = "private_key_jwt" }},
		{"clients[0].post_logout_redirect_uris", func(s *domain.Settings) {
			s.Clients[0].PostLogoutRedirectURIs = []string{"http://localhost:*/bye"}
		}},
		{"clients[0].post_logout_redirect_uris", func(s *domain.Settings) { s.Clients[0].PostLogoutRedirectURIs = []string{"/bye"} }},
	}
	cur := domain.ProjectSettings{Settings: sampleSettings(), Initialized: true}
	for _, c := range cases {
		next := sampleSettings()
		c.edit(&next)
		evs, err := domain.DecideSettingsChange(cur, next, "portal:alice", t0)
		var se *domain.SettingsError
		if !errors.As(err, &se) || len(evs) != 0 {
			t.Errorf("%s: want a settings error, got %v %v", c.field, evs, err)
			continue
		}
		if _, ok := se.Fields[c.field]; !ok {
			t.Errorf("%s: error names %v", c.field, se.Fields)
		}
		if !strings.Contains(err.Error(), c.field) {
			t.Errorf("%s: message %q", c.field, err)
		}
	}
}

func TestNativeRedirectURIs(t *testing.T) {
	s := sampleSettings()
	s.Clients[0].RedirectURIs = []string{"com.example.app:/oauth2redirect", "com.example.app://host/after-auth"}
	if err := domain.ValidateSettings(s); err != nil {
		t.Fatal(err)
	}
}

func TestClientSessionTypes(t *testing.T) {
	c := domain.ClientSettings{SessionType: domain.SessionTypeCookie}
	if !c.AllowsSession(domain.SessionKindCookie) || c.AllowsSession(domain.SessionKindRefreshToken) {
		t.Error("cookie client")
	}
	c.SessionType = domain.SessionTypeRefreshToken
	if c.AllowsSession(domain.SessionKindCookie) || !c.AllowsSession(domain.SessionKindRefreshToken) {
		t.Error("refresh token client")
	}
	c.SessionType = domain.SessionTypeAny
	if !c.AllowsSession(domain.SessionKindCookie) || !c.AllowsSession(domain.SessionKindRefreshToken) {
		t.Error("any")
	}
	if domain.SecondsOf(90*time.Second).Duration() != 90*time.Second {
		t.Error("seconds")
	}
}

// TestClientAuthMethods: an unset method is a public client; the
// confidential methods are accepted; post-logout URIs match exactly.
func TestClientAuthMethods(t *testing.T) {
	cl := sampleSettings().Clients[0]
	if cl.AuthMethod() != domain.AuthMethodNone || cl.Confidential() {
		t.Fatalf("unset method: %q %v", cl.AuthMethod(), cl.Confidential())
	}
	for _, m := range []string{domain.AuthMethodNone, domain.AuthMethodBasic, domain.AuthMethodPost} {
		s := sampleSettings()
		s.Clients[0].TokenEndpointAuthMethod = m
		s.Clients[0].PostLogoutRedirectURIs = []string{"https://app.example.com/bye"}
		if err := domain.ValidateSettings(s); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		if got := s.Clients[0].Confidential(); got != (m != domain.AuthMethodNone) {
			t.Fatalf("%s: confidential %v", m, got)
		}
		if !s.Clients[0].AllowsPostLogoutRedirect("https://app.example.com/bye") || s.Clients[0].AllowsPostLogoutRedirect("https://app.example.com/bye/x") {
			t.Fatal("post-logout URIs are not matched exactly")
		}
	}
}
