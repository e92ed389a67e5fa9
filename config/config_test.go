package config_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/domain"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDevelopmentDefaults(t *testing.T) {
	c, err := config.LoadFrom(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Dev || c.Addr != "127.0.0.1:8080" || c.DataDir != "./data" || !*c.Anonymous.Enabled || *c.Cookie.Secure || c.NATS.Sync != "always" {
		t.Fatalf("dev defaults: %+v", c)
	}
	cl, ok := c.Client(config.DevClientID)
	m := domain.ClientSettings{AllowedOrigins: cl.AllowedOrigins, RedirectURIs: cl.RedirectURIs}
	if !ok || !m.AllowsOrigin("http://localhost:5173") || !m.AllowsOrigin("http://127.0.0.1:3000") || m.AllowsOrigin("https://localhost:5173") ||
		m.AllowsOrigin("http://localhost.evil.example:80") || !m.AllowsRedirect("http://localhost:3000/callback") {
		t.Fatalf("dev client: %+v", cl)
	}
	if cl.RefreshTokenIdleTimeout.Duration() != 30*24*time.Hour || cl.RefreshTokenLifetime.Duration() != 52*7*24*time.Hour || cl.AccessTokenLifetime.Duration() != 30*time.Minute {
		t.Fatalf("Authgear defaults: %+v", cl)
	}
	rl := c.Settings().RateLimits
	if rl.Refresh != (domain.RateLimitSetting{Burst: 120, Per: 3600}) || rl.DPoPProofs != (domain.RateLimitSetting{Burst: 120, Per: 300}) {
		t.Fatalf("per-session limits: %+v %+v", rl.Refresh, rl.DPoPProofs)
	}
	c, err = config.LoadFrom(env(map[string]string{"IDSTREAM_REFRESH_RATE_LIMIT": "5/1m", "IDSTREAM_DPOP_PROOF_RATE_LIMIT": "0"}))
	if err != nil {
		t.Fatal(err)
	}
	if rl := c.Settings().RateLimits; rl.Refresh != (domain.RateLimitSetting{Burst: 5, Per: 60}) || rl.DPoPProofs.Burst != 0 {
		t.Fatalf("per-session limits from the environment: %+v %+v", rl.Refresh, rl.DPoPProofs)
	}
}

func TestFileAndEnvironment(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "idstream.yaml")
	os.WriteFile(file, []byte(`
addr: 0.0.0.0:9000
public_url: https://id.example.com/
anonymous_users:
  enabled: true
clients:
  - client_id: web
    allowed_origins: ["https://app.example.com"]
    redirect_uris: ["https://app.example.com/after"]
    refresh_token_idle_timeout: 1h
    refresh_token_lifetime: 24h
    dpop_nonce_required: true
`), 0o600)
	c, err := config.LoadFrom(env(map[string]string{"IDSTREAM_CONFIG": file, "DATABASE_URL": "postgres://x@db/y", "IDSTREAM_NATS_REPLICAS": "3"}))
	if err != nil {
		t.Fatal(err)
	}
	cl, _ := c.Client("web")
	if c.Dev || c.Addr != "0.0.0.0:9000" || c.PublicURL != "https://id.example.com" || !*c.Cookie.Secure || c.DatabaseURL != "postgres://x@db/y" ||
		c.NATS.Replicas != 3 || cl.RefreshTokenIdleTimeout.Duration() != time.Hour || slices.Contains(cl.AllowedOrigins, "http://localhost:3000") {
		t.Fatalf("loaded: %+v %+v", c, cl)
	}
	// The file seeds the settings; a client without a name is named by its id.
	s := c.Settings()
	if sc, ok := s.Client("web"); !ok || sc.Name != "web" || sc.RefreshTokenIdleTimeout != 3600 || sc.SessionType != "any" || !s.AnonymousEnabled ||
		!sc.DPoPNonceRequired {
		t.Fatalf("settings: %+v", s)
	}
}

func TestInvalidConfiguration(t *testing.T) {
	cases := map[string]string{
		"lifetime < idle":  "clients:\n  - client_id: a\n    cookie_idle_timeout: 2h\n    cookie_lifetime: 1h\n",
		"bad duration":     "clients:\n  - client_id: a\n    cookie_lifetime: forever\n",
		"relative origin":  "clients:\n  - client_id: a\n    allowed_origins: [\"app.example.com\"]\n",
		"duplicate client": "clients:\n  - client_id: a\n  - client_id: a\n",
		"unknown key":      "anonymous: true\n",
		"bad sync":         "nats:\n  sync: sometimes\n",
		"origin with path": "clients:\n  - client_id: a\n    allowed_origins: [\"https://app.example.com/x\"]\n",
		"bad client id":    "clients:\n  - client_id: \"a b\"\n",
		"sub-second limit": "rate_limits:\n  challenge:\n    burst: 5\n    per: 500ms\n",
		"negative cache":   "aggregate_cache: -1\n",
	}
	for name, body := range cases {
		file := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(file, []byte(body), 0o600)
		if _, err := config.LoadFrom(env(map[string]string{"IDSTREAM_CONFIG": file})); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := config.LoadFrom(env(map[string]string{"IDSTREAM_COOKIE_SECURE": "maybe"})); err == nil || !strings.Contains(err.Error(), "IDSTREAM_COOKIE_SECURE") {
		t.Errorf("bad boolean: %v", err)
	}
	if _, err := config.LoadFrom(env(map[string]string{"IDSTREAM_AGGREGATE_CACHE": "lots"})); err == nil || !strings.Contains(err.Error(), "IDSTREAM_AGGREGATE_CACHE") {
		t.Errorf("bad number: %v", err)
	}
}

func TestAggregateCacheSize(t *testing.T) {
	for v, want := range map[string]int{"": config.DefaultAggregateCache, "0": 0, "1000": 1000} {
		c, err := config.LoadFrom(env(map[string]string{"IDSTREAM_AGGREGATE_CACHE": v}))
		if err != nil {
			t.Fatalf("IDSTREAM_AGGREGATE_CACHE=%q: %v", v, err)
		}
		if c.AggregateCacheSize() != want {
			t.Errorf("IDSTREAM_AGGREGATE_CACHE=%q: %d, want %d", v, c.AggregateCacheSize(), want)
		}
	}
}

func TestMetricsSettings(t *testing.T) {
	tok := strings.Repeat("m", 32)
	c, err := config.LoadFrom(env(map[string]string{"IDSTREAM_METRICS_ADDR": "127.0.0.1:9100", "IDSTREAM_METRICS_TOKEN": tok}))
	if err != nil || c.MetricsAddr != "127.0.0.1:9100" || c.MetricsToken != tok {
		t.Fatalf("from the environment: %+v %v", c, err)
	}
	file := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(file, []byte("metrics_addr: \"10.0.0.5:9100\"\nmetrics_token: "+tok+"\n"), 0o600)
	if c, err := config.LoadFrom(env(map[string]string{"IDSTREAM_CONFIG": file})); err != nil || c.MetricsAddr != "10.0.0.5:9100" || c.MetricsToken != tok {
		t.Fatalf("from the file: %+v %v", c, err)
	}
	for name, e := range map[string]map[string]string{
		"short token":      {"IDSTREAM_METRICS_TOKEN": "short"},
		"not host:port":    {"IDSTREAM_METRICS_ADDR": "9100"},
		"the main address": {"IDSTREAM_METRICS_ADDR": "127.0.0.1:8080"},
	} {
		if _, err := config.LoadFrom(env(e)); err == nil || !strings.Contains(err.Error(), "metrics_") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestUnknownVariablesRefused: a variable the configuration does not read
// is a mistake to be told of, not a default to be kept quietly: a
// misspelt IDSTREAM_CONFIG would run a production server in development
// mode. The commands' and test scripts' own variables are not mistakes.
func TestUnknownVariablesRefused(t *testing.T) {
	file := filepath.Join(t.TempDir(), "idstream.yaml")
	if err := os.WriteFile(file, []byte("anonymous_users:\n  enabled: false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		environ []string
		want    string
	}{
		"the file's variable misspelt":      {[]string{"IDSTREAM_CONFIG_FILE=" + file, "IDSTREAM_PUBLIC_URL=https://id.example.com"}, "IDSTREAM_CONFIG_FILE"},
		"a singular admin key":              {[]string{"IDSTREAM_CONFIG=" + file, "IDSTREAM_ADMIN_API_KEY=0123456789abcdef0123456789abcdef"}, "IDSTREAM_ADMIN_API_KEY"},
		"an empty one":                      {[]string{"IDSTREAM_CONFIG=" + file, "IDSTREAM_ANONYMOUS=", "IDSTREAM_SMTP_HOSTNAME=mail"}, "IDSTREAM_ANONYMOUS, IDSTREAM_SMTP_HOSTNAME"},
		"an unconfigured provider's secret": {[]string{"IDSTREAM_CONFIG=" + file, "IDSTREAM_IDP_GOOGLE_CLIENT_SECRET=s3cret"}, "IDSTREAM_IDP_GOOGLE_CLIENT_SECRET"},
		"a portal user without a password":  {[]string{"IDSTREAM_PORTAL_USERNAME=ops"}, "cannot sign in"},
	} {
		_, err := config.LoadEnviron(tc.environ)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error carries a value: %v", name, err)
		}
	}
	// A misspelt name is told even when something else fails too.
	if _, err := config.LoadEnviron([]string{"IDSTREAM_CONFIG=" + file, "IDSTREAM_SMTP_PORT=x", "IDSTREAM_SMTP_HOSTNAME=mail"}); err == nil ||
		!strings.Contains(err.Error(), "IDSTREAM_SMTP_HOSTNAME") || !strings.Contains(err.Error(), "IDSTREAM_SMTP_PORT") {
		t.Errorf("a misspelt name beside a bad value: %v", err)
	}
	// A bad value stops the reading: the names after it are not taken for
	// misspelt ones.
	if _, err := config.LoadEnviron([]string{"IDSTREAM_ANONYMOUS_ENABLED=yes please", "IDSTREAM_SIGNUP_RATE_LIMIT=60/1m"}); err == nil ||
		strings.Contains(err.Error(), "IDSTREAM_SIGNUP_RATE_LIMIT") || !strings.Contains(err.Error(), "IDSTREAM_ANONYMOUS_ENABLED") {
		t.Errorf("a bad value before a good name: %v", err)
	}
	// What Kubernetes puts in every pod for a Service named idstream, and
	// for a release's idstream-postgresql and idstream-nats.
	var k8s []string
	for _, svc := range []struct{ prefix, port string }{{"IDSTREAM", "8080"}, {"IDSTREAM_POSTGRESQL", "5432"}, {"IDSTREAM_NATS", "4222"}, {"IDSTREAM_SMTP", "25"}} {
		k8s = append(k8s, svc.prefix+"_SERVICE_HOST=10.0.0.7", svc.prefix+"_SERVICE_PORT="+svc.port, svc.prefix+"_SERVICE_PORT_CLIENT="+svc.port,
			svc.prefix+"_PORT=tcp://10.0.0.7:"+svc.port, svc.prefix+"_PORT_"+svc.port+"_TCP=tcp://10.0.0.7:"+svc.port,
			svc.prefix+"_PORT_"+svc.port+"_TCP_ADDR=10.0.0.7", svc.prefix+"_PORT_"+svc.port+"_TCP_PORT="+svc.port, svc.prefix+"_PORT_"+svc.port+"_TCP_PROTO=tcp")
	}
	c, err := config.LoadEnviron(append([]string{"IDSTREAM_CONFIG=" + file, "IDSTREAM_ADDR=127.0.0.1:9999", "PATH=/bin", "NATS_ROUTES=x"}, k8s...))
	plain, _ := config.LoadEnviron([]string{"IDSTREAM_CONFIG=" + file})
	if err != nil || c.Addr != "127.0.0.1:9999" || c.NATS.Port != plain.NATS.Port {
		t.Fatalf("with Kubernetes service links: %v (NATS port %d)", err, c.NATS.Port)
	}
	// A name of that form with a value of another is no service link.
	if _, err := config.LoadEnviron([]string{"IDSTREAM_CONFIG=" + file, "IDSTREAM_SMTP_SERVICE_HOST=mail.example.com"}); err == nil {
		t.Error("IDSTREAM_SMTP_SERVICE_HOST=mail.example.com taken for a service link")
	}
	c, err = config.LoadEnviron(append([]string{"IDSTREAM_CONFIG=" + file, "IDSTREAM_ADDR=127.0.0.1:9999", "PATH=/bin", "NATS_ROUTES=x"},
		func() []string {
			var out []string
			for _, k := range config.OtherVariables {
				out = append(out, k+"=1")
			}
			return out
		}()...))
	if err != nil || c.Dev || c.Addr != "127.0.0.1:9999" {
		t.Fatalf("known variables: %v %+v", err, c)
	}
}
