// Package apitest is the HTTP test kit of the api packages' tests: a client
// of a test node that records every secret it sees, the sign-up,
// promotion, hosted-flow, device, portal and admin helpers, and the log
// scan every api test package runs from its TestMain. Only tests import it.
package apitest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/projections"
	"github.com/idstream/idstream/testenv"
)

type Client struct {
	t    *testing.T
	Base string
	HTTP *http.Client
	mu   sync.Mutex
	// secrets are the tokens and cookies the client received.
	secrets []string
	// From, when set, is sent as X-Forwarded-For (the node must trust the
	// loopback as a proxy): the client's address as rate limits see it.
	From string
	// Public, when set, is the node's public URL (a DPoP proof's htu) where
	// it is not the address the client calls.
	Public string
}

// newClient returns a client of the node; when the test ends, the node's
// logs are scanned for every token and cookie the client ever received.
func NewClient(t *testing.T, n *testenv.Node) *Client {
	jar, _ := cookiejar.New(nil)
	c := &Client{t: t, Base: n.URL, HTTP: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		scanLogs(t, n, c.secrets...)
	})
	return c
}

func (c *Client) remember(r Response) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range []map[string]any{r.Body, r.Result()} {
		for _, k := range []string{"access_token", "refresh_token"} {
			if s := Str(m, k); s != "" {
				c.secrets = append(c.secrets, s)
			}
		}
	}
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Value != "" {
			c.secrets = append(c.secrets, ck.Value)
		}
	}
}

type Response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (c *Client) Do(method, path, contentType, body string, headers map[string]string) Response {
	c.t.Helper()
	req, err := http.NewRequest(method, c.Base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.From != "" {
		req.Header.Set("X-Forwarded-For", c.From)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.Body)
	c.remember(r)
	RecordExchange(req, body, r)
	return r
}

func (c *Client) PostJSON(path, body string, headers map[string]string) Response {
	return c.Do(http.MethodPost, path, "application/json", body, headers)
}

func (c *Client) PostForm(path string, form url.Values) Response {
	return c.Do(http.MethodPost, path, "application/x-www-form-urlencoded", form.Encode(), nil)
}

func (c *Client) Userinfo(at string) Response {
	h := map[string]string{}
	if at != "" {
		h["Authorization"] = "Bearer " + at
	}
	return c.Do(http.MethodGet, "/oauth2/userinfo", "", "", h)
}

func (r Response) Result() map[string]any {
	m, _ := r.Body["result"].(map[string]any)
	return m
}

func (r Response) Reason() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		s, _ := e["reason"].(string)
		return s
	}
	s, _ := r.Body["reason"].(string)
	return s
}

func Str(m map[string]any, k string) string { s, _ := m[k].(string); return s }

const TokenSignup = `{"client_id":"idstream-dev","session_type":"refresh_token"}`

const CookieSignup = `{"client_id":"idstream-dev","session_type":"cookie"}`

func Signup(t *testing.T, c *Client) (at, rt string) {
	t.Helper()
	r := c.PostJSON("/api/anonymous_user/signup", TokenSignup, nil)
	if r.Status != 200 || Str(r.Result(), "access_token") == "" || Str(r.Result(), "refresh_token") == "" {
		t.Fatalf("signup: %d %s", r.Status, r.Raw)
	}
	return Str(r.Result(), "access_token"), Str(r.Result(), "refresh_token")
}

func Refresh(c *Client, rt string) Response {
	return c.PostForm("/oauth2/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {rt}})
}

func LastSeq(t *testing.T, n *testenv.Node) uint64 {
	t.Helper()
	s, err := n.Store.LastSequence(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// scanLogs fails the test if any secret appears in the node's logs.
func scanLogs(t *testing.T, n *testenv.Node, secrets ...string) {
	t.Helper()
	logs := n.Logs.String()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Fatalf("a token appears in the logs")
		}
		// The secret half of an opaque token, alone, must not appear either.
		if id, secret, ok := strings.Cut(s, "."); ok && len(id) == 36 && strings.Contains(logs, secret) {
			t.Fatalf("a token secret appears in the logs")
		}
	}
}

const AdminKey = "test-admin-key-0123456789abcdef0123456789"

// waitProjected waits until every projection has applied the whole log.
func WaitProjected(t *testing.T, c *Client) {
	t.Helper()
	auth := map[string]string{"Authorization": "Bearer " + AdminKey}
	testenv.WaitFor(t, "every projection caught up (admin API)", 10*time.Second, func() bool {
		r := c.Do(http.MethodGet, "/admin/projections", "", "", auth)
		ps, _ := r.Body["projections"].([]any)
		caught := r.Status == 200 && len(ps) == len(projections.All())
		for _, p := range ps {
			if p.(map[string]any)["lag_events"].(float64) != 0 || p.(map[string]any)["state"] != "running" {
				caught = false
			}
		}
		return caught
	})
}

func AdminNode(t *testing.T) (*testenv.Node, *Client) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		CheapHashes(c)
		c.AdminAPIKeys = []string{AdminKey}
	}})
	return n, NewClient(t, n)
}

func (c *Client) Admin(method, path, body string) Response {
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return c.Do(method, path, ct, body, map[string]string{"Authorization": "Bearer " + AdminKey})
}

func (c *Client) WaitExport(id string) Response {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := c.Admin(http.MethodGet, "/admin/users/export/"+id, "")
		if r.Status != 200 || Str(r.Body, "status") == "completed" || Str(r.Body, "status") == "failed" {
			return r
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("export did not finish: %s", r.Raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// NewDevice makes a device whose private key the log scan looks for.
func NewDevice(t *testing.T, alg jose.SignatureAlgorithm) testenv.Device {
	t.Helper()
	d := testenv.NewDevice(t, alg)
	RecordDeviceKey(d.Key)
	return d
}

func (c *Client) Challenge() string {
	c.t.Helper()
	r := c.PostJSON("/oauth2/challenge", `{"purpose":"anonymous_request"}`, nil)
	if r.Status != 200 || Str(r.Result(), "token") == "" || Str(r.Result(), "expire_at") == "" {
		c.t.Fatalf("challenge: %d %s", r.Status, r.Raw)
	}
	return Str(r.Result(), "token")
}

func (c *Client) KeyGrant(jwt string) Response {
	return c.PostForm("/oauth2/token", url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"},
		"client_id": {"idstream-dev"}, "jwt": {jwt}})
}

const (
	PortalUser     = "ops"
	PortalPassword = "correct horse battery staple"
)

func WithOperator(c *config.Config) {
	CheapHashes(c)
	c.Portal.Operators = []config.Operator{{Username: PortalUser, Password: PortalPassword}}
}

func (c *Client) PortalSignIn(user, pw string) Response {
	c.t.Helper()
	page := c.Do(http.MethodGet, "/portal/signin?next=/portal/operations", "", "", nil)
	f := FormOf(c.t, page)
	f.Set("username", user)
	f.Set("password", pw)
	f.Set("next", "/portal/operations")
	return c.PostForm("/portal/signin", f)
}

func PortalClient(t *testing.T, n *testenv.Node) *Client {
	t.Helper()
	c := NewClient(t, n)
	if r := c.PortalSignIn(PortalUser, PortalPassword); r.Status != 303 || r.Header.Get("Location") != "/portal/operations" {
		t.Fatalf("sign-in: %d %s", r.Status, r.Raw)
	}
	return c
}

func (c *Client) Get(path string) Response { return c.Do(http.MethodGet, path, "", "", nil) }

// save submits a form page with the given fields over its own values.
func (c *Client) Save(path string, fields map[string]string) Response {
	c.t.Helper()
	f := FormOf(c.t, c.Get(path))
	for k, v := range fields {
		f.Set(k, v)
	}
	return c.PostForm(path, f)
}

const GoodPassword = "violet-tangerine-42"

func PromoteBody(loginID, pw string) string {
	return fmt.Sprintf(`{"login_id":%q,"password":%q}`, loginID, pw)
}

func (c *Client) Promote(at, loginID, pw string) Response {
	h := map[string]string{}
	if at != "" {
		h["Authorization"] = "Bearer " + at
	}
	return c.PostJSON("/api/anonymous_user/promote", PromoteBody(loginID, pw), h)
}

// cheapHashes keeps argon2id at its minimum cost in tests that hash a lot.
func CheapHashes(c *config.Config) { testenv.CheapHashes(c) }

var CSRFRe = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func PKCE() (verifier, challenge string) {
	verifier = strings.Repeat("v", 20) + fmt.Sprint(time.Now().UnixNano()) + strings.Repeat("x", 20)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// hostedFlow opens /oauth2/authorize and follows to the page; it returns the
// page's path and CSRF token.
func (c *Client) HostedFlow(params url.Values) (string, string, Response) {
	c.t.Helper()
	r := c.Do(http.MethodGet, "/oauth2/authorize?"+params.Encode(), "", "", nil)
	if r.Status != 302 || !strings.HasPrefix(r.Header.Get("Location"), "/flows/") {
		return "", "", r
	}
	page := r.Header.Get("Location")
	p := c.Do(http.MethodGet, page, "", "", nil)
	m := CSRFRe.FindStringSubmatch(p.Raw)
	if p.Status != 200 || m == nil {
		c.t.Fatalf("flow page: %d %s", p.Status, p.Raw)
	}
	return page, html.UnescapeString(m[1]), p
}

func (c *Client) Submit(page, csrf string, form url.Values) Response {
	form.Set("csrf_token", csrf)
	return c.PostForm(page, form)
}

func AuthorizeParams(challenge, hint string) url.Values {
	v := url.Values{"response_type": {"code"}, "client_id": {"idstream-dev"}, "redirect_uri": {"http://localhost:3000/after"},
		"code_challenge_method": {"S256"}, "code_challenge": {challenge}, "state": {"st-1"}, "scope": {"openid offline_access"}}
	if hint != "" {
		v.Set("login_hint", hint)
	}
	return v
}

func PromotionHint(code string) string {
	return "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "promotion_code": {code}}.Encode()
}

func (c *Client) Exchange(code, verifier string) Response {
	return c.PostForm("/oauth2/token", url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"},
		"code": {code}, "redirect_uri": {"http://localhost:3000/after"}, "code_verifier": {verifier}})
}

func Limits(burst int, proxies ...string) func(*config.Config) {
	return func(c *config.Config) {
		c.RateLimits.AnonymousSignup = config.RateLimit{Burst: &burst, Per: config.Duration(time.Minute)}
		c.RateLimits.Challenge = config.RateLimit{Burst: &burst, Per: config.Duration(time.Minute)}
		c.TrustedProxies = proxies
	}
}

// cspDirectives splits a Content-Security-Policy into its directives.
func CSPDirectives(csp string) map[string][]string {
	out := map[string][]string{}
	for _, d := range strings.Split(csp, ";") {
		f := strings.Fields(d)
		if len(f) > 0 {
			out[strings.ToLower(f[0])] = f[1:]
		}
	}
	return out
}

// checkPageHeaders asserts the headers every hosted HTML page must carry.
func CheckPageHeaders(t *testing.T, name string, r Response) {
	t.Helper()
	h := r.Header
	csp := h.Get("Content-Security-Policy")
	d := CSPDirectives(csp)
	if csp == "" {
		t.Errorf("%s: no Content-Security-Policy", name)
	}
	if fa := d["frame-ancestors"]; len(fa) != 1 || fa[0] != "'none'" {
		t.Errorf("%s: frame-ancestors is %v, want 'none' (CSP %q)", name, fa, csp)
	}
	// Scripts: script-src, or default-src when it is absent, must be 'none'
	// (hosted pages run no script at all), and nothing may be unsafe.
	scripts, ok := d["script-src"]
	if !ok {
		scripts = d["default-src"]
	}
	if len(scripts) != 1 || scripts[0] != "'none'" {
		t.Errorf("%s: scripts are allowed from %v (CSP %q)", name, scripts, csp)
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "data:", "*"} {
		for _, dir := range d {
			for _, src := range dir {
				if src == bad {
					t.Errorf("%s: CSP allows %s: %q", name, bad, csp)
				}
			}
		}
	}
	if b := d["base-uri"]; len(b) != 1 || b[0] != "'none'" {
		t.Errorf("%s: base-uri is %v, want 'none'", name, b)
	}
	if _, ok := d["form-action"]; !ok {
		t.Errorf("%s: no form-action in CSP %q", name, csp)
	}
	for k, want := range map[string]string{
		"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s is %q, want %q", name, k, got, want)
		}
	}
	if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("%s: Content-Type %q", name, ct)
	}
	if strings.Contains(strings.ToLower(r.Raw), "<script") {
		t.Errorf("%s: the page has a script element", name)
	}
}

var (
	PortalCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
)

// FormOf reads the values a browser would submit from a page's form (with
// its CSRF token and settings version).
func FormOf(t *testing.T, r Response) url.Values {
	t.Helper()
	if r.Status != 200 || !PortalCSRF.MatchString(r.Raw) {
		t.Fatalf("no form on the page: %d %s", r.Status, r.Raw)
	}
	f := url.Values{}
	for _, tag := range inputTag.FindAllString(r.Raw, -1) {
		a := map[string]string{}
		for _, m := range attr.FindAllStringSubmatch(tag[len("<input"):], -1) {
			a[m[1]] = html.UnescapeString(m[2])
		}
		_, checked := a["checked"]
		switch {
		case a["name"] == "":
		case a["type"] == "checkbox" || a["type"] == "radio":
			if checked {
				v := a["value"]
				if v == "" {
					v = "on"
				}
				f.Set(a["name"], v)
			}
		default:
			f.Set(a["name"], a["value"])
		}
	}
	for _, m := range textareaTag.FindAllStringSubmatch(r.Raw, -1) {
		f.Set(m[1], html.UnescapeString(m[2]))
	}
	for _, m := range selectTag.FindAllStringSubmatch(r.Raw, -1) {
		if o := selected.FindStringSubmatch(m[2]); o != nil {
			f.Set(m[1], o[1])
		}
	}
	return f
}

var (
	inputTag    = regexp.MustCompile(`<input\s[^>]*>`)
	attr        = regexp.MustCompile(`([a-z_-]+)(?:="([^"]*)")?`)
	textareaTag = regexp.MustCompile(`(?s)<textarea\s[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>`)
	selectTag   = regexp.MustCompile(`(?s)<select\s[^>]*name="([^"]+)"[^>]*>(.*?)</select>`)
	selected    = regexp.MustCompile(`<option value="([^"]*)" selected>`)
)

// BasicAuth is the credentials of client_secret_basic (RFC 6749 §2.3.1:
// id and secret form-url-encoded), for an Authorization: Basic header.
func BasicAuth(id, secret string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// RegularUser signs a guest up and promotes it headlessly to loginID (with
// goodPassword); it returns the sub.
func RegularUser(t *testing.T, c *Client, loginID string) string {
	t.Helper()
	at, _ := Signup(t, c)
	sub := Str(c.Userinfo(at).Body, "sub")
	if r := c.Promote(at, loginID, GoodPassword); r.Status != 200 {
		t.Fatalf("promote to %s: %d %s", loginID, r.Status, r.Raw)
	}
	return sub
}
