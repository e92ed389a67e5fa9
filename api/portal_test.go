package api_test

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

const (
	portalUser     = "ops"
	portalPassword = "correct horse battery staple"
)

func withOperator(c *config.Config) {
	cheapHashes(c)
	c.Portal.Operators = []config.Operator{{Username: portalUser, Password: portalPassword}}
}

var (
	portalCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
)

var (
	inputTag    = regexp.MustCompile(`<input\s[^>]*>`)
	attr        = regexp.MustCompile(`([a-z_-]+)(?:="([^"]*)")?`)
	textareaTag = regexp.MustCompile(`(?s)<textarea\s[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>`)
	selectTag   = regexp.MustCompile(`(?s)<select\s[^>]*name="([^"]+)"[^>]*>(.*?)</select>`)
	selected    = regexp.MustCompile(`<option value="([^"]*)" selected>`)
)

// formOf reads the values a browser would submit from a page's form (with
// its CSRF token and settings version).
func formOf(t *testing.T, r response) url.Values {
	t.Helper()
	if r.status != 200 || !portalCSRF.MatchString(r.raw) {
		t.Fatalf("no form on the page: %d %s", r.status, r.raw)
	}
	f := url.Values{}
	for _, tag := range inputTag.FindAllString(r.raw, -1) {
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
	for _, m := range textareaTag.FindAllStringSubmatch(r.raw, -1) {
		f.Set(m[1], html.UnescapeString(m[2]))
	}
	for _, m := range selectTag.FindAllStringSubmatch(r.raw, -1) {
		if o := selected.FindStringSubmatch(m[2]); o != nil {
			f.Set(m[1], o[1])
		}
	}
	return f
}

func (c *client) portalSignIn(user, pw string) response {
	c.t.Helper()
	page := c.do(http.MethodGet, "/portal/signin?next=/portal/operations", "", "", nil)
	f := formOf(c.t, page)
	f.Set("username", user)
	f.Set("password", pw)
	f.Set("next", "/portal/operations")
	return c.postForm("/portal/signin", f)
}

func portalClient(t *testing.T, n *testenv.Node) *client {
	t.Helper()
	c := newClient(t, n)
	if r := c.portalSignIn(portalUser, portalPassword); r.status != 303 || r.header.Get("Location") != "/portal/operations" {
		t.Fatalf("sign-in: %d %s", r.status, r.raw)
	}
	return c
}

func (c *client) get(path string) response { return c.do(http.MethodGet, path, "", "", nil) }

// save submits a form page with the given fields over its own values.
func (c *client) save(path string, fields map[string]string) response {
	c.t.Helper()
	f := formOf(c.t, c.get(path))
	for k, v := range fields {
		f.Set(k, v)
	}
	return c.postForm(path, f)
}

func TestPortalOffWithoutOperators(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	r := newClient(t, n).get("/portal/signin")
	if r.status != 404 || !strings.Contains(r.raw, "The portal is off") || !strings.Contains(r.raw, "IDSTREAM_PORTAL_PASSWORD") {
		t.Fatalf("portal without operators: %d %s", r.status, r.raw)
	}
}

func TestPortalSignIn(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		withOperator(c)
		three := 3
		c.RateLimits.SignInPerLoginID = config.RateLimit{Burst: &three, Per: config.Duration(time.Hour)}
	}})
	c := newClient(t, n)
	if r := c.get("/portal/users?kind=anonymous"); r.status != 303 || r.header.Get("Location") != "/portal/signin?next=%2Fportal%2Fusers%3Fkind%3Danonymous" {
		t.Fatalf("signed out: %d %v", r.status, r.header)
	}
	page := c.get("/portal/signin")
	for _, h := range []string{"frame-ancestors 'none'", "default-src 'none'", "form-action 'self'"} {
		if !strings.Contains(page.header.Get("Content-Security-Policy"), h) {
			t.Errorf("CSP %q lacks %s", page.header.Get("Content-Security-Policy"), h)
		}
	}
	if page.header.Get("Cache-Control") != "no-store" || page.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers: %v", page.header)
	}
	// A form without the sign-in CSRF token is refused.
	if r := newClient(t, n).postForm("/portal/signin", url.Values{"username": {portalUser}, "password": {portalPassword}}); r.status != 403 {
		t.Fatalf("no CSRF: %d", r.status)
	}
	if r := c.portalSignIn(portalUser, "wrong password!"); r.status != 401 || !strings.Contains(r.raw, "username or password is not right") {
		t.Fatalf("wrong password: %d %s", r.status, r.raw)
	}
	if r := c.portalSignIn("nobody", portalPassword); r.status != 401 || !strings.Contains(r.raw, "username or password is not right") {
		t.Fatalf("unknown operator: %d %s", r.status, r.raw)
	}
	r := c.portalSignIn(portalUser, portalPassword)
	if r.status != 303 {
		t.Fatalf("sign-in: %d %s", r.status, r.raw)
	}
	var session *http.Cookie
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == "idstream_portal" && ck.Value != "" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/portal" {
		t.Fatalf("session cookie: %+v", session)
	}
	if r := c.get("/portal/operations"); r.status != 200 || !strings.Contains(r.raw, "Signed in as <strong>ops</strong>") {
		t.Fatalf("operations: %d %s", r.status, r.raw)
	}
	// The portal session is not an end-user session.
	if r := c.userinfo(""); r.status != 401 {
		t.Fatalf("the portal cookie works as a user session: %d", r.status)
	}
	// Sign-out ends the session on the server, not only in the browser.
	f := formOf(t, c.get("/portal/operations"))
	if r := c.postForm("/portal/signout", f); r.status != 303 {
		t.Fatalf("sign-out: %d", r.status)
	}
	replay := newClient(t, n)
	replay.http.Jar.SetCookies(mustURL(t, n.URL+"/portal"), []*http.Cookie{{Name: "idstream_portal", Value: session.Value, Path: "/portal"}})
	if r := replay.get("/portal/operations"); r.status != 303 {
		t.Fatalf("a signed-out session still works: %d", r.status)
	}
	// Attempts per operator name are limited (3 per hour here; 2 used).
	if r := c.portalSignIn(portalUser, "wrong again!"); r.status != 401 {
		t.Fatalf("third attempt: %d", r.status)
	}
	if r := c.portalSignIn(portalUser, portalPassword); r.status != 429 || !strings.Contains(r.raw, "Too many sign-in attempts") {
		t.Fatalf("over the limit: %d %s", r.status, r.raw)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// A change saved through one node's portal applies on another node without
// a restart, and is on the record.
func TestPortalSettingsApplyOnEveryNode(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: withOperator})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: withOperator})
	pa, cb := portalClient(t, a), newClient(t, b)
	signup(t, cb)

	if r := pa.save("/portal/authentication/anonymous-users", map[string]string{"anonymous_enabled": ""}); r.status != 303 {
		t.Fatalf("save: %d %s", r.status, r.raw)
	}
	waitFor(t, "node B refuses guests", func() bool {
		r := cb.postJSON("/api/anonymous_user/signup", tokenSignup, nil)
		return r.status == 403 && r.reason() == "AnonymousUserDisabled"
	})
	if r := pa.get("/portal/authentication/anonymous-users?saved=1"); !strings.Contains(r.raw, "Saved.") || strings.Contains(r.raw, `name="anonymous_enabled" aria-describedby="anonymous_enabled-hint" checked`) {
		t.Fatalf("page after save: %s", r.raw)
	}
	if r := pa.save("/portal/authentication/anonymous-users", map[string]string{"anonymous_enabled": "on"}); r.status != 303 {
		t.Fatalf("save: %d %s", r.status, r.raw)
	}
	waitFor(t, "node B accepts guests again", func() bool {
		return cb.postJSON("/api/anonymous_user/signup", tokenSignup, nil).status == 200
	})
	audit := pa.get("/portal/audit")
	for _, want := range []string{"portal:ops", "config-file", "<code>anonymous_enabled</code>: true → false", "<code>anonymous_enabled</code>: false → true"} {
		if !strings.Contains(audit.raw, want) {
			t.Errorf("audit lacks %q", want)
		}
	}
	// A node started later runs with the log's settings, not its file's.
	c := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: func(c *config.Config) {
		withOperator(c)
		c.Promotion.ConflictPolicy = "login"
	}})
	if got := c.Service.Settings().ConflictPolicy; got != "error" {
		t.Fatalf("a later node's configuration file won: %s", got)
	}
	if !strings.Contains(c.Logs.String(), "the log wins") {
		t.Error("no warning that the configuration file differs from the log")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	testenv.WaitFor(t, what, 3*time.Second, ok)
}

func TestPortalFormsRejectBadInput(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: withOperator})
	p := portalClient(t, n)
	before := lastSeq(t, n)
	cases := []struct {
		path   string
		fields map[string]string
		want   []string
	}{
		{"/portal/authentication/anonymous-users", map[string]string{"web_guest_grace": "soon", "key_guest_inactivity": "-5d"},
			[]string{"use a duration such as 30m, 24h or 90d"}},
		{"/portal/authentication/anonymous-users", map[string]string{"promotion_conflict_policy": "merge"}, []string{`must be &#34;error&#34; or &#34;login&#34;`}},
		{"/portal/authentication/rate-limits", map[string]string{"challenge.burst": "many", "sign_in_per_ip.per": "0"},
			[]string{"enter a whole number", "must be at least one second"}},
		{"/portal/applications/new", map[string]string{"client_id": "has space", "name": "", "redirect_uris": "/relative\nhttps://ok.example/cb",
			"allowed_origins": "https://app.example/path", "refresh_token_idle_timeout": "2h", "refresh_token_lifetime": "1h",
			"access_token_lifetime": "10s"},
			[]string{"use 1 to 64 letters", "give the application a name", "is not an absolute http(s) URL", "is not an origin",
				"must not be shorter than the refresh token idle timeout", "must be between 1 minute and 24 hours"}},
		{"/portal/applications/new", map[string]string{"client_id": "idstream-dev", "name": "Twin"}, []string{"another application already has this client ID"}},
		{"/portal/applications/idstream-dev", map[string]string{"cookie_lifetime": "1h", "cookie_idle_timeout": "2h", "session_type": "jwt"},
			[]string{"must not be shorter than the cookie idle timeout", "must be &#34;refresh_token&#34;"}},
	}
	for _, tc := range cases {
		r := p.save(tc.path, tc.fields)
		if r.status != 400 || !strings.Contains(r.raw, "Nothing was saved") || !strings.Contains(r.raw, `aria-invalid="true"`) {
			t.Errorf("%s %v: %d %s", tc.path, tc.fields, r.status, r.raw)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(r.raw, w) {
				t.Errorf("%s: no %q in the page", tc.path, w)
			}
		}
		// The form keeps what was typed.
		for k, v := range tc.fields {
			if v != "" && k != "promotion_conflict_policy" && k != "session_type" && !strings.Contains(r.raw, strings.ReplaceAll(v, "\n", "\n")) {
				t.Errorf("%s: the form lost %s=%q", tc.path, k, v)
			}
		}
	}
	// A form without its CSRF token, or from a stale page, saves nothing.
	if r := p.postForm("/portal/authentication/anonymous-users", url.Values{"anonymous_enabled": {""}, "version": {"1"}}); r.status != 403 {
		t.Fatalf("no CSRF token: %d", r.status)
	}
	stale := formOf(t, p.get("/portal/authentication/anonymous-users"))
	stale.Set("version", "999999")
	stale.Set("web_guest_grace", "2h")
	stale.Set("key_guest_inactivity", "90d")
	stale.Set("promotion_conflict_policy", "error")
	if r := p.postForm("/portal/authentication/anonymous-users", stale); r.status != 400 || !strings.Contains(r.raw, "Someone changed the settings") {
		t.Fatalf("stale form: %d %s", r.status, r.raw)
	}
	if lastSeq(t, n) != before {
		t.Fatal("a refused form wrote to the log")
	}
	if r := p.save("/portal/authentication/anonymous-users", nil); r.status != 400 || !strings.Contains(r.raw, "Nothing changed") {
		t.Fatalf("unchanged: %d %s", r.status, r.raw)
	}
}

// A client created in the portal works at once; a refresh-token lifetime
// changed in the portal applies to sessions started after the change.
func TestPortalApplicationsAndLifetimes(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: withOperator})
	p, c := portalClient(t, n), newClient(t, n)
	if r := p.save("/portal/applications/new", map[string]string{"client_id": "mobile-app", "name": "Mobile app",
		"session_type": "refresh_token", "redirect_uris": "myapp://callback\nhttps://app.example.com/cb"}); r.status != 400 ||
		!strings.Contains(r.raw, "is not an absolute http(s) URL or a private-use scheme") {
		t.Fatalf("a scheme without a dot: %d", r.status)
	}
	if r := p.save("/portal/applications/new", map[string]string{"client_id": "mobile-app", "name": "Mobile app",
		"session_type": "refresh_token", "redirect_uris": "com.example.app:/oauth2redirect\nhttps://app.example.com/cb"}); r.status != 303 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/api/anonymous_user/signup", `{"client_id":"mobile-app","session_type":"refresh_token"}`, nil); r.status != 200 {
		t.Fatalf("new client: %d %s", r.status, r.raw)
	}
	if r := c.postJSON("/api/anonymous_user/signup", `{"client_id":"mobile-app","session_type":"cookie"}`, nil); r.status != 400 || r.reason() != "SessionTypeNotAllowed" {
		t.Fatalf("cookie session for a refresh-token client: %d %s", r.status, r.raw)
	}
	if r := p.get("/portal/applications?saved=created"); !strings.Contains(r.raw, "Mobile app") || !strings.Contains(r.raw, "The application was created") {
		t.Fatalf("list: %s", r.raw)
	}

	_, oldRT := signup(t, c)
	if r := p.save("/portal/applications/idstream-dev", map[string]string{"refresh_token_idle_timeout": "1h", "refresh_token_lifetime": "2h"}); r.status != 303 {
		t.Fatalf("edit: %d %s", r.status, r.raw)
	}
	if r := p.get("/portal/applications/idstream-dev?saved=1"); !strings.Contains(r.raw, "sessions started from now on") {
		t.Fatal("the page does not say lifetimes apply from now on")
	}
	_, newRT := signup(t, c)
	n.Clock.Advance(50 * time.Minute)
	r := refresh(c, newRT)
	if r.status != 200 {
		t.Fatalf("refresh within the new idle timeout: %d %s", r.status, r.raw)
	}
	newRT = str(r.body, "refresh_token")
	n.Clock.Advance(50 * time.Minute)
	if r = refresh(c, newRT); r.status != 200 {
		t.Fatalf("refresh: %d %s", r.status, r.raw)
	}
	newRT = str(r.body, "refresh_token")
	n.Clock.Advance(21 * time.Minute) // 2h01m after the start
	if r := refresh(c, newRT); r.status != 400 || r.reason() != "SessionExpired" {
		t.Fatalf("a session past the new 2h lifetime: %d %s", r.status, r.raw)
	}
	if r := refresh(c, oldRT); r.status != 200 {
		t.Fatalf("a session started before the change lost its lifetime: %d %s", r.status, r.raw)
	}
}

func TestPortalUsersOperationsAndRevoke(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		withOperator(c)
		c.AdminAPIKeys = []string{adminKey}
	}})
	p, c := portalClient(t, n), newClient(t, n)
	_, rt := signup(t, c)
	waitProjected(t, c)
	list := p.get("/portal/users?kind=anonymous")
	ids := regexp.MustCompile(`href="/portal/users/([0-9a-f-]{36})"`).FindAllStringSubmatch(list.raw, -1)
	if list.status != 200 || len(ids) != 1 {
		t.Fatalf("users: %d %s", list.status, list.raw)
	}
	if r := p.get("/portal/users?kind=regular"); strings.Contains(r.raw, ids[0][1]) || !strings.Contains(r.raw, "No users match") {
		t.Fatal("a guest listed as regular")
	}
	page := p.get("/portal/users/" + ids[0][1])
	for _, want := range []string{"user.anonymous.created.v1", "session.started.v1", "Revoke"} {
		if !strings.Contains(page.raw, want) {
			t.Fatalf("user page lacks %q: %s", want, page.raw)
		}
	}
	action := regexp.MustCompile(`action="(/portal/users/[^"]+/revoke)"`).FindStringSubmatch(page.raw)
	if action == nil {
		t.Fatal("no revoke form")
	}
	if r := p.postForm(action[1], formOf(t, page)); r.status != 303 {
		t.Fatalf("revoke: %d %s", r.status, r.raw)
	}
	if r := refresh(c, rt); r.status != 400 || r.reason() != "SessionRevoked" {
		t.Fatalf("refresh after the portal revoked the session: %d %s", r.status, r.raw)
	}
	page = p.get("/portal/users/" + ids[0][1])
	if !strings.Contains(page.raw, "session.revoked.v1") || !strings.Contains(page.raw, "by portal:ops") {
		t.Fatalf("the timeline lacks the revocation by the operator: %s", page.raw)
	}
	ops := p.get("/portal/operations")
	for _, want := range []string{"users", "sessions", "identities", "no node holds the reaper lease"} {
		if !strings.Contains(ops.raw, want) {
			t.Errorf("operations page lacks %q: %s", want, ops.raw)
		}
	}
	if r := p.get("/portal/users/not-a-uuid"); r.status != 404 || !strings.Contains(r.raw, "A user ID is a UUID") {
		t.Fatalf("bad user id: %d", r.status)
	}
}

// BenchmarkSettingsPropagation measures how long a settings change made on
// one node takes to be applied by another (one op = ChangeSettings on A
// until B runs with the new version).
func BenchmarkSettingsPropagation(b *testing.B) {
	ns := testenv.StartNATS(b)
	dbURL, _ := testenv.Database(b)
	na := testenv.StartNode(b, ns, testenv.NodeOptions{DatabaseURL: dbURL})
	nb := testenv.StartNode(b, ns, testenv.NodeOptions{DatabaseURL: dbURL})
	ctx := b.Context()
	b.ResetTimer()
	for i := range b.N {
		cur, v := na.Service.SettingsVersion()
		next := cur.Clone()
		next.RateLimits.Challenge.Burst = 100 + i%2
		changed := nb.Service.SettingsChanged()
		nv, err := na.Service.ChangeSettings(ctx, v, next, "bench", app.Meta{})
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, got := nb.Service.SettingsVersion(); got >= nv {
				break
			}
			<-changed
			changed = nb.Service.SettingsChanged()
		}
	}
}
