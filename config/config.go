// Package config loads idstream's configuration: defaults, then the YAML file
// named by IDSTREAM_CONFIG, then environment variables. With no file, serve
// runs in development mode.
package config

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/idstream/idstream/domain"
)

// Duration is a time.Duration written as "30m", "720h" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (use e.g. 30m, 720h): %w", n.Line, n.Value, err)
	}
	*d = Duration(v)
	return nil
}

// D returns the time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Client is a client application as the configuration seeds it: the
// settings' own type (the YAML keys are its JSON names; durations are
// written as "30m", "720h"); zero lifetimes take the Authgear defaults and
// an empty session type is "any".
type Client = domain.ClientSettings

// Authgear's defaults.
const (
	DefaultIdleTimeout         = 30 * 24 * time.Hour
	DefaultSessionLifetime     = 52 * 7 * 24 * time.Hour
	DefaultAccessTokenLifetime = 30 * time.Minute
)

// Config is the whole configuration.
type Config struct {
	Addr        string `yaml:"addr"`
	PublicURL   string `yaml:"public_url"`
	DataDir     string `yaml:"data_dir"`
	DatabaseURL string `yaml:"database_url"`
	// MigrateOnStart runs migrations when serve starts (default true).
	MigrateOnStart *bool `yaml:"migrate_on_start"`
	// AggregateCache is how many aggregate states (users, sessions, keys,
	// login IDs) each node keeps, so that rebuilding one reads only the
	// events after the cached state (unset: DefaultAggregateCache; 0 turns
	// it off). Read it with AggregateCacheSize.
	AggregateCache *int `yaml:"aggregate_cache"`
	NATS           struct {
		URL      string `yaml:"url"`
		Replicas int    `yaml:"replicas"`
		// Sync is "always" (fsync before every acknowledgement, the default)
		// or a flush interval such as "2m".
		Sync string `yaml:"sync"`
		// Port of the embedded server on 127.0.0.1; -1 picks a free one.
		Port int `yaml:"port"`
		// AppendCommitters is how many grouped atomic batches may be in
		// flight; AppendMaxBatch caps messages per batch.
		AppendCommitters int `yaml:"append_committers"`
		AppendMaxBatch   int `yaml:"append_max_batch"`
		// Credentials for URL, at most one kind: a creds file (user JWT and
		// seed), an nkey seed file, user and password, or a token. The
		// embedded server has its own key (NATSKeyFile).
		Creds    string `yaml:"creds"`
		NkeySeed string `yaml:"nkey_seed"`
		User     string `yaml:"user"`
		Password string `yaml:"password"`
		Token    string `yaml:"token"`
	} `yaml:"nats"`
	Anonymous struct {
		Enabled *bool `yaml:"enabled"`
	} `yaml:"anonymous_users"`
	Cookie struct {
		Name   string `yaml:"name"`
		Secure *bool  `yaml:"secure"`
	} `yaml:"cookie"`
	Clients []Client `yaml:"clients"`
	// Providers are the upstream identity providers (providers.go).
	Providers []Provider `yaml:"providers"`
	// LoginIDTypes are the kinds of login ID people may use (email, phone,
	// username).
	LoginIDTypes []string `yaml:"login_id_types"`
	Promotion    struct {
		// ConflictPolicy: "error" (default) refuses a login ID that belongs
		// to someone else; "login" lets the person sign in to that account
		// with its password, retiring the guest into it.
		ConflictPolicy string `yaml:"conflict_policy"`
	} `yaml:"promotion"`
	Password struct {
		MinLength   int    `yaml:"min_length"`
		MaxLength   int    `yaml:"max_length"`
		MemoryKiB   uint32 `yaml:"argon2_memory_kib"`
		Iterations  uint32 `yaml:"argon2_iterations"`
		Parallelism uint8  `yaml:"argon2_parallelism"`
		// MaxConcurrentHashes bounds argon2id work at once (default: half
		// the CPUs, at least one), so hashing cannot starve other requests.
		MaxConcurrentHashes int `yaml:"max_concurrent_hashes"`
	} `yaml:"password"`
	// Guests: lifetime rules and the reaper that applies them.
	Guests struct {
		// WebGuestGrace: a guest without a key expires once it has had no
		// live session for this long (default 24h).
		WebGuestGrace Duration `yaml:"web_guest_grace"`
		// KeyGuestInactivity: a key-pair guest expires this long after its
		// last activity: key sign-in or session use (default 90 days); "0s" means never.
		KeyGuestInactivity *Duration `yaml:"key_guest_inactivity"`
		// ReaperInterval and ReaperBatch pace the reaper.
		ReaperInterval Duration `yaml:"reaper_interval"`
		ReaperBatch    int      `yaml:"reaper_batch"`
		// ReaperWorkers decide and expire candidates in parallel (their
		// appends share group commits).
		ReaperWorkers int `yaml:"reaper_workers"`
	} `yaml:"guests"`
	// Webhooks: event delivery to HTTP endpoints (config/webhooks.go).
	Webhooks Webhooks `yaml:"webhooks"`
	// RateLimits are shared by every node (PostgreSQL token buckets); a
	// burst of 0 turns one off.
	RateLimits struct {
		AnonymousSignup  RateLimit `yaml:"anonymous_signup"`
		Challenge        RateLimit `yaml:"challenge"`
		SignInPerIP      RateLimit `yaml:"sign_in_per_ip"`
		SignInPerLoginID RateLimit `yaml:"sign_in_per_login_id"`
		Authorize        RateLimit `yaml:"authorize"`
		Refresh          RateLimit `yaml:"refresh"`
		DPoPProofs       RateLimit `yaml:"dpop_proofs"`
	} `yaml:"rate_limits"`
	// AdminAPIKeys authorise the admin API (bearer); none configured turns
	// the admin API off.
	AdminAPIKeys []string `yaml:"admin_api_keys"`
	// Portal is the operators' web console at /portal; it is off while no
	// operator is configured.
	Portal struct {
		Operators []Operator `yaml:"operators"`
		// SessionLifetime bounds an operator's portal session (default 8h).
		SessionLifetime Duration `yaml:"session_lifetime"`
	} `yaml:"portal"`
	// TrustedProxies are the networks (CIDR) whose X-Forwarded-For is
	// believed; every other peer is the client itself.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MetricsAddr, if set, serves /metrics on a listener of its own (meant
	// for a private network) and not on Addr.
	MetricsAddr string `yaml:"metrics_addr"`
	// MetricsToken, if set, must be presented as a bearer token to read
	// /metrics wherever it is served. Without it, /metrics on Addr is open
	// in development mode only.
	MetricsToken string `yaml:"metrics_token"`
	// SMTP and SMS deliver one-time codes (config/delivery.go); secrets,
	// never in the log. Verification seeds the settings' verification.
	SMTP         SMTP                        `yaml:"smtp"`
	SMS          SMS                         `yaml:"sms"`
	Verification domain.VerificationSettings `yaml:"verification"`

	// Dev is true when no configuration file was given.
	Dev bool `yaml:"-"`
	// File is the configuration file read, if any.
	File string `yaml:"-"`
}

// Operator may sign in to the portal: with a password (hashed when the node
// starts, never kept) or, better, an argon2id PHC hash from
// `idstream portal hash-password`.
type Operator struct {
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordHash string `yaml:"password_hash"`
}

// RateLimit allows Burst requests at once, refilled over Per.
type RateLimit struct {
	Burst *int     `yaml:"burst"`
	Per   Duration `yaml:"per"`
}

// ParseRateLimit reads "60/1m" (burst/period); "0" turns the limit off.
func ParseRateLimit(v string) (RateLimit, error) {
	if v == "0" || v == "off" {
		zero := 0
		return RateLimit{Burst: &zero, Per: Duration(time.Minute)}, nil
	}
	b, p, ok := strings.Cut(v, "/")
	n, err1 := strconv.Atoi(b)
	d, err2 := time.ParseDuration(p)
	if !ok || err1 != nil || err2 != nil || n < 0 || d <= 0 {
		return RateLimit{}, fmt.Errorf("rate limit %q: want burst/period such as 60/1m, or 0", v)
	}
	return RateLimit{Burst: &n, Per: Duration(d)}, nil
}

func (r *RateLimit) fill(burst int, per time.Duration) {
	if r.Burst == nil {
		r.Burst = &burst
	}
	if r.Per == 0 {
		r.Per = Duration(per)
	}
}

var operatorName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// DevClientID is the client application of development mode.
const DevClientID = "idstream-dev"

// Load reads the configuration from the environment (and the file it
// names). It refuses an IDSTREAM_ variable it does not read: a misspelt
// name (IDSTREAM_CONFIG_FILE for IDSTREAM_CONFIG, a singular
// IDSTREAM_ADMIN_API_KEY) would otherwise leave its setting at the default
// without a word, which for the file is development mode.
func Load() (*Config, error) { return LoadEnviron(os.Environ()) }

// OtherVariables are IDSTREAM_ variables that are not the configuration's
// but are read by the commands (logging, profiling) or by this project's
// test scripts: present in a server's environment, they are no mistake.
var OtherVariables = []string{"IDSTREAM_LOG_LEVEL", "IDSTREAM_PPROF_ADDR",
	"IDSTREAM_FUZZ_TIME", "IDSTREAM_POWERLOSS_CUTS", "IDSTREAM_POWERLOSS_CHILD", "IDSTREAM_URL", "IDSTREAM_URL_B"}

// LoadEnviron is Load with the environment given as KEY=value pairs.
func LoadEnviron(environ []string) (*Config, error) {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	read := map[string]bool{}
	c, err := LoadFrom(func(k string) string { read[k] = true; return env[k] })
	if err != nil {
		// It stopped at the first bad value: what it would have read after
		// it is what a pass with the file alone reads.
		_, _ = LoadFrom(func(k string) string {
			read[k] = true
			if k == "IDSTREAM_CONFIG" {
				return env[k]
			}
			return ""
		})
	}
	var unknown []string
	for k, v := range env {
		if strings.HasPrefix(k, "IDSTREAM_") && !read[k] && !slices.Contains(OtherVariables, k) && !serviceLink(k, v) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		// Told first: a setting misspelt may be why the rest failed.
		slices.Sort(unknown)
		return nil, errors.Join(fmt.Errorf("config: %s: not a variable this configuration reads (misspelt? README, Configuration, lists them; a provider's secret variable is read only for a provider the file configures without client_secret_file)",
			strings.Join(unknown, ", ")), err)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// serviceLinkName matches the variables Kubernetes puts in every pod for a
// Service named idstream or idstream-<something> (a Helm release's
// database, NATS): IDSTREAM_SERVICE_HOST, IDSTREAM_POSTGRESQL_PORT,
// IDSTREAM_NATS_PORT_4222_TCP_ADDR, ...
var serviceLinkName = regexp.MustCompile(`^IDSTREAM(_[A-Z0-9_]+?)??_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_[0-9]+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$`)

// serviceLinkURL is a service link's address value: tcp://10.0.0.7:8080.
var serviceLinkURL = regexp.MustCompile(`^(tcp|udp|sctp)://[0-9A-Fa-f.:\[\]]+:[0-9]+$`)

// serviceLink reports whether name=value is a Kubernetes service link: its
// name has the form, and its value the form the name says (an address, a
// port number, a protocol).
func serviceLink(name, value string) bool {
	m := serviceLinkName.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	isPort := func(v string) bool { n, err := strconv.Atoi(v); return err == nil && n > 0 && n < 65536 }
	switch {
	case m[2] == "SERVICE_HOST" || m[6] == "_ADDR":
		return net.ParseIP(value) != nil
	case strings.HasPrefix(m[2], "SERVICE_PORT") || m[6] == "_PORT":
		return isPort(value)
	case m[6] == "_PROTO":
		v := strings.ToUpper(value) // the kubelet writes it lower-case
		return v == "TCP" || v == "UDP" || v == "SCTP"
	}
	return serviceLinkURL.MatchString(value) // IDSTREAM_X_PORT, IDSTREAM_X_PORT_8080_TCP
}

// LoadFrom is Load with the environment given as a function.
func LoadFrom(getenv func(string) string) (*Config, error) {
	c := &Config{}
	if f := getenv("IDSTREAM_CONFIG"); f != "" {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(strings.NewReader(string(raw)))
		dec.KnownFields(true)
		if err := dec.Decode(c); err != nil {
			return nil, fmt.Errorf("config: %s: %w", f, err)
		}
		c.File = f
	} else {
		c.Dev = true
	}
	set := func(dst *string, name string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	set(&c.Addr, "IDSTREAM_ADDR")
	set(&c.PublicURL, "IDSTREAM_PUBLIC_URL")
	set(&c.DataDir, "IDSTREAM_DATA_DIR")
	set(&c.DatabaseURL, "DATABASE_URL")
	set(&c.NATS.URL, "NATS_URL")
	set(&c.NATS.Sync, "IDSTREAM_NATS_SYNC")
	set(&c.NATS.Creds, "NATS_CREDS")
	set(&c.NATS.NkeySeed, "NATS_NKEY_SEED")
	set(&c.NATS.User, "NATS_USER")
	set(&c.NATS.Password, "NATS_PASSWORD")
	set(&c.NATS.Token, "NATS_TOKEN")
	set(&c.MetricsAddr, "IDSTREAM_METRICS_ADDR")
	set(&c.MetricsToken, "IDSTREAM_METRICS_TOKEN")
	if v := getenv("IDSTREAM_ADMIN_API_KEYS"); v != "" {
		c.AdminAPIKeys = strings.Split(v, ",")
	}
	name, pw, hash := getenv("IDSTREAM_PORTAL_USERNAME"), getenv("IDSTREAM_PORTAL_PASSWORD"), getenv("IDSTREAM_PORTAL_PASSWORD_HASH")
	if pw != "" || hash != "" {
		c.Portal.Operators = append(c.Portal.Operators, Operator{Username: cmpOr(name, "admin"), Password: pw, PasswordHash: hash})
	} else if name != "" {
		return nil, errors.New("config: IDSTREAM_PORTAL_USERNAME without IDSTREAM_PORTAL_PASSWORD or IDSTREAM_PORTAL_PASSWORD_HASH names an operator who cannot sign in")
	}
	for name, dst := range map[string]**bool{
		"IDSTREAM_ANONYMOUS_ENABLED": &c.Anonymous.Enabled,
		"IDSTREAM_COOKIE_SECURE":     &c.Cookie.Secure,
		"IDSTREAM_MIGRATE_ON_START":  &c.MigrateOnStart,
	} {
		if v := getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("config: %s=%q is not a boolean", name, v)
			}
			*dst = &b
		}
	}
	for name, dst := range map[string]*int{"IDSTREAM_NATS_REPLICAS": &c.NATS.Replicas, "IDSTREAM_NATS_PORT": &c.NATS.Port,
		"IDSTREAM_APPEND_COMMITTERS": &c.NATS.AppendCommitters, "IDSTREAM_APPEND_MAX_BATCH": &c.NATS.AppendMaxBatch,
		"IDSTREAM_REAPER_BATCH": &c.Guests.ReaperBatch, "IDSTREAM_REAPER_WORKERS": &c.Guests.ReaperWorkers} {
		if v := getenv(name); v != "" {
			if strings.HasSuffix(name, "_PORT") && serviceLinkURL.MatchString(v) {
				// IDSTREAM_NATS_PORT=tcp://10.0.0.9:4222 is what
				// Kubernetes sets for a Service named idstream-nats, not
				// the embedded server's port.
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, fmt.Errorf("config: %s=%q is not a number", name, v)
			}
			*dst = n
		}
	}
	if v := getenv("IDSTREAM_AGGREGATE_CACHE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return nil, fmt.Errorf("config: IDSTREAM_AGGREGATE_CACHE=%q is not a number", v)
		}
		c.AggregateCache = &n
	}
	for name, dst := range map[string]*RateLimit{"IDSTREAM_SIGNUP_RATE_LIMIT": &c.RateLimits.AnonymousSignup,
		"IDSTREAM_CHALLENGE_RATE_LIMIT": &c.RateLimits.Challenge, "IDSTREAM_SIGNIN_IP_RATE_LIMIT": &c.RateLimits.SignInPerIP,
		"IDSTREAM_SIGNIN_LOGIN_ID_RATE_LIMIT": &c.RateLimits.SignInPerLoginID, "IDSTREAM_AUTHORIZE_RATE_LIMIT": &c.RateLimits.Authorize,
		"IDSTREAM_REFRESH_RATE_LIMIT": &c.RateLimits.Refresh, "IDSTREAM_DPOP_PROOF_RATE_LIMIT": &c.RateLimits.DPoPProofs} {
		if v := getenv(name); v != "" {
			rl, err := ParseRateLimit(v)
			if err != nil {
				return nil, fmt.Errorf("config: %s: %w", name, err)
			}
			*dst = rl
		}
	}
	if err := loadDeliveryEnv(c, getenv); err != nil {
		return nil, err
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := c.PrepareProviders(getenv); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return c, nil
}

func boolPtr(b bool) *bool { return &b }

// DefaultAggregateCache is the default of AggregateCache.
const DefaultAggregateCache = 50000

// AggregateCacheSize is AggregateCache, or its default when unset.
func (c *Config) AggregateCacheSize() int {
	if c.AggregateCache == nil {
		return DefaultAggregateCache
	}
	return *c.AggregateCache
}

func (c *Config) applyDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.Portal.SessionLifetime == 0 {
		c.Portal.SessionLifetime = Duration(8 * time.Hour)
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Addr
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.DatabaseURL == "" {
		c.DatabaseURL = "postgres://postgres@127.0.0.1:5432/idstream?sslmode=disable"
	}
	if c.MigrateOnStart == nil {
		c.MigrateOnStart = boolPtr(true)
	}
	if c.NATS.Replicas == 0 {
		c.NATS.Replicas = 1
	}
	if c.NATS.Sync == "" {
		c.NATS.Sync = "always"
	}
	if c.NATS.Port == 0 {
		c.NATS.Port = 4223
	}
	if c.Cookie.Name == "" {
		c.Cookie.Name = "idstream_session"
	}
	if c.Cookie.Secure == nil {
		// Plain-http localhost in development; Secure everywhere else, and
		// whenever the public URL is https.
		c.Cookie.Secure = boolPtr(!c.Dev || strings.HasPrefix(strings.ToLower(c.PublicURL), "https://"))
	}
	if c.Anonymous.Enabled == nil {
		c.Anonymous.Enabled = boolPtr(c.Dev)
	}
	if len(c.LoginIDTypes) == 0 {
		c.LoginIDTypes = []string{"email", "phone", "username"}
	}
	if c.Promotion.ConflictPolicy == "" {
		c.Promotion.ConflictPolicy = "error"
	}
	if c.Password.MinLength == 0 {
		c.Password.MinLength = 8
	}
	if c.Password.MaxLength == 0 {
		c.Password.MaxLength = 256
	}
	if c.Password.MemoryKiB == 0 {
		c.Password.MemoryKiB = 19 * 1024
	}
	if c.Password.Iterations == 0 {
		c.Password.Iterations = 2
	}
	if c.Password.Parallelism == 0 {
		c.Password.Parallelism = 1
	}
	if c.Password.MaxConcurrentHashes == 0 {
		c.Password.MaxConcurrentHashes = max(1, runtime.NumCPU()/2)
	}
	if c.Guests.WebGuestGrace == 0 {
		c.Guests.WebGuestGrace = Duration(24 * time.Hour)
	}
	if c.Guests.KeyGuestInactivity == nil {
		d := Duration(90 * 24 * time.Hour)
		c.Guests.KeyGuestInactivity = &d
	}
	if c.Guests.ReaperInterval == 0 {
		c.Guests.ReaperInterval = Duration(time.Minute)
	}
	if c.Guests.ReaperBatch == 0 {
		c.Guests.ReaperBatch = 1000
	}
	if c.Guests.ReaperWorkers == 0 {
		c.Guests.ReaperWorkers = 4
	}
	c.RateLimits.AnonymousSignup.fill(60, time.Minute)
	c.RateLimits.Challenge.fill(60, time.Minute)
	c.RateLimits.SignInPerIP.fill(100, 15*time.Minute)
	c.RateLimits.SignInPerLoginID.fill(10, 15*time.Minute)
	c.RateLimits.Authorize.fill(120, time.Minute)
	c.RateLimits.Refresh.fill(120, time.Hour)
	c.RateLimits.DPoPProofs.fill(120, 5*time.Minute)
	if c.Dev && len(c.Clients) == 0 {
		c.Clients = []Client{{
			ClientID:       DevClientID,
			Name:           "Development client",
			AllowedOrigins: []string{"http://localhost:*", "http://127.0.0.1:*"},
			RedirectURIs:   []string{"http://localhost:*", "http://127.0.0.1:*"},
		}}
	}
	for i := range c.Clients {
		cl := &c.Clients[i]
		def := func(d *domain.Seconds, v time.Duration) {
			if *d == 0 {
				*d = domain.SecondsOf(v)
			}
		}
		def(&cl.CookieIdleTimeout, DefaultIdleTimeout)
		def(&cl.CookieLifetime, DefaultSessionLifetime)
		def(&cl.RefreshTokenIdleTimeout, DefaultIdleTimeout)
		def(&cl.RefreshTokenLifetime, DefaultSessionLifetime)
		def(&cl.AccessTokenLifetime, DefaultAccessTokenLifetime)
		if cl.SessionType == "" {
			cl.SessionType = "any"
		}
	}
}

// Validate reports every problem it finds.
func (c *Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("public_url %q must be an absolute http(s) URL", c.PublicURL))
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		errs = append(errs, fmt.Errorf("nats.replicas must be 1 to 5, got %d", c.NATS.Replicas))
	}
	if _, err := c.SyncInterval(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, c.validateNATSAuth()...)
	errs = append(errs, c.Webhooks.validate()...)
	errs = append(errs, c.validateDelivery()...)
	if c.AggregateCache != nil && *c.AggregateCache < 0 {
		errs = append(errs, fmt.Errorf("aggregate_cache must be 0 (off) or more, got %d", *c.AggregateCache))
	}
	for _, t := range c.LoginIDTypes {
		if t != "email" && t != "phone" && t != "username" {
			errs = append(errs, fmt.Errorf("login_id_types: unknown type %q (email, phone, username)", t))
		}
	}
	if p := c.Promotion.ConflictPolicy; p != "error" && p != "login" {
		errs = append(errs, fmt.Errorf("promotion.conflict_policy must be \"error\" or \"login\", got %q", p))
	}
	if c.Password.MinLength < 8 || c.Password.MaxLength < c.Password.MinLength || c.Password.MaxLength > 1024 {
		errs = append(errs, errors.New("password: min_length must be at least 8 and max_length between it and 1024"))
	}
	if c.Password.MemoryKiB < 8*1024 || c.Password.Iterations < 1 {
		errs = append(errs, errors.New("password: argon2 memory must be at least 8192 KiB and iterations at least 1"))
	}
	for _, k := range c.AdminAPIKeys {
		if len(k) < 32 {
			errs = append(errs, errors.New("admin_api_keys: each key needs at least 32 characters"))
			break
		}
	}
	names := map[string]bool{}
	for _, o := range c.Portal.Operators {
		switch {
		case !operatorName.MatchString(o.Username):
			errs = append(errs, fmt.Errorf("portal.operators: username %q: use 1 to 64 letters, digits, dots, dashes or underscores", o.Username))
		case names[o.Username]:
			errs = append(errs, fmt.Errorf("portal.operators: %s is listed twice", o.Username))
		case (o.Password == "") == (o.PasswordHash == ""):
			errs = append(errs, fmt.Errorf("portal.operators: %s needs exactly one of password and password_hash", o.Username))
		case o.Password != "" && len(o.Password) < 12:
			errs = append(errs, fmt.Errorf("portal.operators: %s: the password needs at least 12 characters", o.Username))
		case o.PasswordHash != "" && !strings.HasPrefix(o.PasswordHash, "$argon2id$"):
			errs = append(errs, fmt.Errorf("portal.operators: %s: password_hash must be an argon2id PHC string", o.Username))
		}
		names[o.Username] = true
	}
	if c.Portal.SessionLifetime < Duration(time.Minute) {
		errs = append(errs, errors.New("portal.session_lifetime must be at least 1m"))
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil || c.MetricsAddr == c.Addr {
			errs = append(errs, fmt.Errorf("metrics_addr %q must be host:port, other than addr", c.MetricsAddr))
		}
	}
	if c.MetricsToken != "" && len(c.MetricsToken) < 32 {
		errs = append(errs, errors.New("metrics_token needs at least 32 characters"))
	}
	for _, p := range c.TrustedProxies {
		if _, err := netip.ParsePrefix(p); err != nil {
			errs = append(errs, fmt.Errorf("trusted_proxies: %q is not a CIDR prefix", p))
		}
	}
	if *c.Guests.KeyGuestInactivity < 0 || c.Guests.WebGuestGrace < 0 || c.Guests.ReaperInterval <= 0 || c.Guests.ReaperBatch < 1 {
		errs = append(errs, errors.New("guests: durations must not be negative, and the reaper interval and batch must be positive"))
	}
	for name, r := range map[string]RateLimit{"anonymous_signup": c.RateLimits.AnonymousSignup, "challenge": c.RateLimits.Challenge,
		"sign_in_per_ip": c.RateLimits.SignInPerIP, "sign_in_per_login_id": c.RateLimits.SignInPerLoginID, "authorize": c.RateLimits.Authorize,
		"refresh": c.RateLimits.Refresh, "dpop_proofs": c.RateLimits.DPoPProofs} {
		if *r.Burst < 0 || r.Per.D() < time.Second {
			errs = append(errs, fmt.Errorf("rate_limits.%s: the burst must not be negative and the period at least 1s", name))
		}
	}
	seen := map[string]bool{}
	for _, cl := range c.Clients {
		if cl.ClientID == "" {
			errs = append(errs, errors.New("a client has no client_id"))
			continue
		}
		if seen[cl.ClientID] {
			errs = append(errs, fmt.Errorf("client %s is listed twice", cl.ClientID))
		}
		seen[cl.ClientID] = true
		if cl.CookieLifetime < cl.CookieIdleTimeout || cl.RefreshTokenLifetime < cl.RefreshTokenIdleTimeout {
			errs = append(errs, fmt.Errorf("client %s: a lifetime is shorter than its idle timeout", cl.ClientID))
		}
		if t := cl.SessionType; t != "any" && t != "cookie" && t != "refresh_token" {
			errs = append(errs, fmt.Errorf("client %s: session_type must be refresh_token, cookie or any", cl.ClientID))
		}
		if at := cl.AccessTokenLifetime.Duration(); at < time.Minute || at > 24*time.Hour {
			errs = append(errs, fmt.Errorf("client %s: access_token_lifetime must be 1m to 24h", cl.ClientID))
		}
		for _, o := range append(append([]string{}, cl.AllowedOrigins...), cl.RedirectURIs...) {
			if msg := domain.CheckURLPattern(o, false); msg != "" {
				errs = append(errs, fmt.Errorf("client %s: %s", cl.ClientID, msg))
			}
		}
	}
	if len(errs) == 0 {
		// The settings the configuration seeds must pass the same rules as
		// a change made in the portal.
		if err := domain.ValidateSettings(c.Settings()); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// NATSKeyFile is where serve keeps the nkey seed its embedded server
// accepts; operator commands on the same data directory read it.
func (c *Config) NATSKeyFile() string { return filepath.Join(c.DataDir, "nats-user.nk") }

// validateNATSAuth never puts a secret (or the URL, which may hold one) in
// an error.
func (c *Config) validateNATSAuth() []error {
	n := c.NATS
	kinds := 0
	for _, set := range []bool{n.Creds != "", n.NkeySeed != "", n.User != "" || n.Password != "", n.Token != ""} {
		if set {
			kinds++
		}
	}
	if kinds == 0 {
		return nil
	}
	var errs []error
	if n.URL == "" {
		errs = append(errs, errors.New("nats: creds, nkey_seed, user, password and token are for nats.url (NATS_URL); the embedded server uses "+c.NATSKeyFile()))
	}
	if kinds > 1 {
		errs = append(errs, errors.New("nats: set one of creds, nkey_seed, user and password, or token"))
	}
	if (n.User == "") != (n.Password == "") {
		errs = append(errs, errors.New("nats: user and password go together"))
	}
	for _, s := range strings.Split(n.URL, ",") {
		if u, err := url.Parse(strings.TrimSpace(s)); err == nil && u.User != nil {
			errs = append(errs, errors.New("nats: nats.url carries credentials already; set them in one place"))
			break
		}
	}
	return errs
}

// SyncInterval returns 0 for "always", else the flush interval.
func (c *Config) SyncInterval() (time.Duration, error) {
	if c.NATS.Sync == "always" {
		return 0, nil
	}
	d, err := time.ParseDuration(c.NATS.Sync)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("nats.sync must be \"always\" or a positive duration, got %q", c.NATS.Sync)
	}
	return d, nil
}

// Client returns the client application with the id.
func (c *Config) Client(id string) (Client, bool) {
	for _, cl := range c.Clients {
		if cl.ClientID == id {
			return cl, true
		}
	}
	return Client{}, false
}

// Settings are the runtime settings the configuration seeds the log with
// (the first version; afterwards the log's settings win). A client without
// a name is named by its client_id.
func (c *Config) Settings() domain.Settings {
	rl := func(r RateLimit) domain.RateLimitSetting {
		return domain.RateLimitSetting{Burst: *r.Burst, Per: domain.SecondsOf(r.Per.D())}
	}
	s := domain.Settings{
		AnonymousEnabled:   *c.Anonymous.Enabled,
		ConflictPolicy:     c.Promotion.ConflictPolicy,
		WebGuestGrace:      domain.SecondsOf(c.Guests.WebGuestGrace.D()),
		KeyGuestInactivity: domain.SecondsOf(c.Guests.KeyGuestInactivity.D()),
		RateLimits: domain.RateLimitSettings{
			AnonymousSignup: rl(c.RateLimits.AnonymousSignup), Challenge: rl(c.RateLimits.Challenge),
			SignInPerIP: rl(c.RateLimits.SignInPerIP), SignInPerLoginID: rl(c.RateLimits.SignInPerLoginID),
			Authorize: rl(c.RateLimits.Authorize), Refresh: rl(c.RateLimits.Refresh), DPoPProofs: rl(c.RateLimits.DPoPProofs),
		},
		Clients:      make([]domain.ClientSettings, 0, len(c.Clients)),
		Verification: c.Verification,
	}
	for _, cl := range c.Clients {
		cl.Name = cmp.Or(cl.Name, cl.ClientID)
		cl.AllowedOrigins, cl.RedirectURIs = append([]string{}, cl.AllowedOrigins...), append([]string{}, cl.RedirectURIs...)
		s.Clients = append(s.Clients, cl)
	}
	return s
}
