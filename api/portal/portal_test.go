package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/app"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

func TestPortalOffWithoutOperators(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{})
	r := apitest.NewClient(t, n).Get("/portal/signin")
	if r.Status != 404 || !strings.Contains(r.Raw, "The portal is off") || !strings.Contains(r.Raw, "IDSTREAM_PORTAL_PASSWORD") {
		t.Fatalf("portal without operators: %d %s", r.Status, r.Raw)
	}
}

func TestPortalSignIn(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.WithOperator(c)
		three := 3
		c.RateLimits.SignInPerLoginID = config.RateLimit{Burst: &three, Per: config.Duration(time.Hour)}
	}})
	c := apitest.NewClient(t, n)
	if r := c.Get("/portal/users?kind=anonymous"); r.Status != 303 || r.Header.Get("Location") != "/portal/signin?next=%2Fportal%2Fusers%3Fkind%3Danonymous" {
		t.Fatalf("signed out: %d %v", r.Status, r.Header)
	}
	page := c.Get("/portal/signin")
	for _, h := range []string{"frame-ancestors 'none'", "default-src 'none'", "form-action 'self'"} {
		if !strings.Contains(page.Header.Get("Content-Security-Policy"), h) {
			t.Errorf("CSP %q lacks %s", page.Header.Get("Content-Security-Policy"), h)
		}
	}
	if page.Header.Get("Cache-Control") != "no-store" || page.Header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("headers: %v", page.Header)
	}
	// A form without the sign-in CSRF token is refused.
	if r := apitest.NewClient(t, n).PostForm("/portal/signin", url.Values{"username": {apitest.PortalUser}, "password": {apitest.PortalPassword}}); r.Status != 403 {
		t.Fatalf("no CSRF: %d", r.Status)
	}
	if r := c.PortalSignIn(apitest.PortalUser, "wrong password!"); r.Status != 401 || !strings.Contains(r.Raw, "username or password is not right") {
		t.Fatalf("wrong password: %d %s", r.Status, r.Raw)
	}
	if r := c.PortalSignIn("nobody", apitest.PortalPassword); r.Status != 401 || !strings.Contains(r.Raw, "username or password is not right") {
		t.Fatalf("unknown operator: %d %s", r.Status, r.Raw)
	}
	r := c.PortalSignIn(apitest.PortalUser, apitest.PortalPassword)
	if r.Status != 303 {
		t.Fatalf("sign-in: %d %s", r.Status, r.Raw)
	}
	var session *http.Cookie
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		if ck.Name == "idstream_portal" && ck.Value != "" {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Path != "/portal" {
		t.Fatalf("session cookie: %+v", session)
	}
	if r := c.Get("/portal/operations"); r.Status != 200 || !strings.Contains(r.Raw, "Signed in as <strong>ops</strong>") {
		t.Fatalf("operations: %d %s", r.Status, r.Raw)
	}
	// The portal session is not an end-user session.
	if r := c.Userinfo(""); r.Status != 401 {
		t.Fatalf("the portal cookie works as a user session: %d", r.Status)
	}
	// Sign-out ends the session on the server, not only in the browser.
	f := apitest.FormOf(t, c.Get("/portal/operations"))
	if r := c.PostForm("/portal/signout", f); r.Status != 303 {
		t.Fatalf("sign-out: %d", r.Status)
	}
	replay := apitest.NewClient(t, n)
	replay.HTTP.Jar.SetCookies(mustURL(t, n.URL+"/portal"), []*http.Cookie{{Name: "idstream_portal", Value: session.Value, Path: "/portal"}})
	if r := replay.Get("/portal/operations"); r.Status != 303 {
		t.Fatalf("a signed-out session still works: %d", r.Status)
	}
	// Attempts per operator name are limited (3 per hour here; 2 used).
	if r := c.PortalSignIn(apitest.PortalUser, "wrong again!"); r.Status != 401 {
		t.Fatalf("third attempt: %d", r.Status)
	}
	if r := c.PortalSignIn(apitest.PortalUser, apitest.PortalPassword); r.Status != 429 || !strings.Contains(r.Raw, "Too many sign-in attempts") {
		t.Fatalf("over the limit: %d %s", r.Status, r.Raw)
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
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: apitest.WithOperator})
	b := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: apitest.WithOperator})
	pa, cb := apitest.PortalClient(t, a), apitest.NewClient(t, b)
	apitest.Signup(t, cb)

	if r := pa.Save("/portal/authentication/anonymous-users", map[string]string{"anonymous_enabled": ""}); r.Status != 303 {
		t.Fatalf("save: %d %s", r.Status, r.Raw)
	}
	waitFor(t, "node B refuses guests", func() bool {
		r := cb.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil)
		return r.Status == 403 && r.Reason() == "AnonymousUserDisabled"
	})
	if r := pa.Get("/portal/authentication/anonymous-users?saved=1"); !strings.Contains(r.Raw, "Saved.") || strings.Contains(r.Raw, `name="anonymous_enabled" aria-describedby="anonymous_enabled-hint" checked`) {
		t.Fatalf("page after save: %s", r.Raw)
	}
	if r := pa.Save("/portal/authentication/anonymous-users", map[string]string{"anonymous_enabled": "on"}); r.Status != 303 {
		t.Fatalf("save: %d %s", r.Status, r.Raw)
	}
	waitFor(t, "node B accepts guests again", func() bool {
		return cb.PostJSON("/api/anonymous_user/signup", apitest.TokenSignup, nil).Status == 200
	})
	audit := pa.Get("/portal/audit")
	for _, want := range []string{"portal:ops", "config-file", "<code>anonymous_enabled</code>: true → false", "<code>anonymous_enabled</code>: false → true"} {
		if !strings.Contains(audit.Raw, want) {
			t.Errorf("audit lacks %q", want)
		}
	}
	// A node started later runs with the log's settings, not its file's.
	c := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: func(c *config.Config) {
		apitest.WithOperator(c)
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
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.WithOperator})
	p := apitest.PortalClient(t, n)
	before := apitest.LastSeq(t, n)
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
		r := p.Save(tc.path, tc.fields)
		if r.Status != 400 || !strings.Contains(r.Raw, "Nothing was saved") || !strings.Contains(r.Raw, `aria-invalid="true"`) {
			t.Errorf("%s %v: %d %s", tc.path, tc.fields, r.Status, r.Raw)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(r.Raw, w) {
				t.Errorf("%s: no %q in the page", tc.path, w)
			}
		}
		// The form keeps what was typed.
		for k, v := range tc.fields {
			if v != "" && k != "promotion_conflict_policy" && k != "session_type" && !strings.Contains(r.Raw, strings.ReplaceAll(v, "\n", "\n")) {
				t.Errorf("%s: the form lost %s=%q", tc.path, k, v)
			}
		}
	}
	// A form without its CSRF token, or from a stale page, saves nothing.
	if r := p.PostForm("/portal/authentication/anonymous-users", url.Values{"anonymous_enabled": {""}, "version": {"1"}}); r.Status != 403 {
		t.Fatalf("no CSRF token: %d", r.Status)
	}
	stale := apitest.FormOf(t, p.Get("/portal/authentication/anonymous-users"))
	stale.Set("version", "999999")
	stale.Set("web_guest_grace", "2h")
	stale.Set("key_guest_inactivity", "90d")
	stale.Set("promotion_conflict_policy", "error")
	if r := p.PostForm("/portal/authentication/anonymous-users", stale); r.Status != 400 || !strings.Contains(r.Raw, "Someone changed the settings") {
		t.Fatalf("stale form: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("a refused form wrote to the log")
	}
	if r := p.Save("/portal/authentication/anonymous-users", nil); r.Status != 400 || !strings.Contains(r.Raw, "Nothing changed") {
		t.Fatalf("unchanged: %d %s", r.Status, r.Raw)
	}
}

// A client created in the portal works at once; a refresh-token lifetime
// changed in the portal applies to sessions started after the change.
func TestPortalApplicationsAndLifetimes(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.WithOperator})
	p, c := apitest.PortalClient(t, n), apitest.NewClient(t, n)
	if r := p.Save("/portal/applications/new", map[string]string{"client_id": "mobile-app", "name": "Mobile app",
		"session_type": "refresh_token", "redirect_uris": "myapp://callback\nhttps://app.example.com/cb"}); r.Status != 400 ||
		!strings.Contains(r.Raw, "is not an absolute http(s) URL or a private-use scheme") {
		t.Fatalf("a scheme without a dot: %d", r.Status)
	}
	if r := p.Save("/portal/applications/new", map[string]string{"client_id": "mobile-app", "name": "Mobile app",
		"session_type": "refresh_token", "redirect_uris": "com.example.app:/oauth2redirect\nhttps://app.example.com/cb"}); r.Status != 303 {
		t.Fatalf("create: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/api/anonymous_user/signup", `{"client_id":"mobile-app","session_type":"refresh_token"}`, nil); r.Status != 200 {
		t.Fatalf("new client: %d %s", r.Status, r.Raw)
	}
	if r := c.PostJSON("/api/anonymous_user/signup", `{"client_id":"mobile-app","session_type":"cookie"}`, nil); r.Status != 400 || r.Reason() != "SessionTypeNotAllowed" {
		t.Fatalf("cookie session for a refresh-token client: %d %s", r.Status, r.Raw)
	}
	if r := p.Get("/portal/applications?saved=created"); !strings.Contains(r.Raw, "Mobile app") || !strings.Contains(r.Raw, "The application was created") {
		t.Fatalf("list: %s", r.Raw)
	}

	_, oldRT := apitest.Signup(t, c)
	if r := p.Save("/portal/applications/idstream-dev", map[string]string{"refresh_token_idle_timeout": "1h", "refresh_token_lifetime": "2h"}); r.Status != 303 {
		t.Fatalf("edit: %d %s", r.Status, r.Raw)
	}
	if r := p.Get("/portal/applications/idstream-dev?saved=1"); !strings.Contains(r.Raw, "sessions started from now on") {
		t.Fatal("the page does not say lifetimes apply from now on")
	}
	_, newRT := apitest.Signup(t, c)
	n.Clock.Advance(50 * time.Minute)
	r := apitest.Refresh(c, newRT)
	if r.Status != 200 {
		t.Fatalf("refresh within the new idle timeout: %d %s", r.Status, r.Raw)
	}
	newRT = apitest.Str(r.Body, "refresh_token")
	n.Clock.Advance(50 * time.Minute)
	if r = apitest.Refresh(c, newRT); r.Status != 200 {
		t.Fatalf("refresh: %d %s", r.Status, r.Raw)
	}
	newRT = apitest.Str(r.Body, "refresh_token")
	n.Clock.Advance(21 * time.Minute) // 2h01m after the start
	if r := apitest.Refresh(c, newRT); r.Status != 400 || r.Reason() != "SessionExpired" {
		t.Fatalf("a session past the new 2h lifetime: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, oldRT); r.Status != 200 {
		t.Fatalf("a session started before the change lost its lifetime: %d %s", r.Status, r.Raw)
	}

	// DPoP nonces (issue 17): the box turns them on, a later save that
	// leaves it alone keeps them, clearing it turns them off.
	nonces := func() bool { return n.Service.NonceRequired("mobile-app") }
	if r := p.Save("/portal/applications/mobile-app", map[string]string{"dpop_nonce_required": "on"}); r.Status != 303 || !nonces() {
		t.Fatalf("require DPoP nonces: %d %v", r.Status, nonces())
	}
	if r := p.Save("/portal/applications/mobile-app", map[string]string{"name": "Mobile app 2"}); r.Status != 303 || !nonces() {
		t.Fatalf("another change dropped the DPoP nonce setting: %d %v", r.Status, nonces())
	}
	f := apitest.FormOf(t, p.Get("/portal/applications/mobile-app"))
	f.Del("dpop_nonce_required")
	if r := p.PostForm("/portal/applications/mobile-app", f); r.Status != 303 || nonces() {
		t.Fatalf("clear DPoP nonces: %d %v", r.Status, nonces())
	}
}

func TestPortalUsersOperationsAndRevoke(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.WithOperator(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
	}})
	p, c := apitest.PortalClient(t, n), apitest.NewClient(t, n)
	_, rt := apitest.Signup(t, c)
	apitest.WaitProjected(t, c)
	list := p.Get("/portal/users?kind=anonymous")
	ids := regexp.MustCompile(`href="/portal/users/([0-9a-f-]{36})"`).FindAllStringSubmatch(list.Raw, -1)
	if list.Status != 200 || len(ids) != 1 {
		t.Fatalf("users: %d %s", list.Status, list.Raw)
	}
	if r := p.Get("/portal/users?kind=regular"); strings.Contains(r.Raw, ids[0][1]) || !strings.Contains(r.Raw, "No users match") {
		t.Fatal("a guest listed as regular")
	}
	page := p.Get("/portal/users/" + ids[0][1])
	for _, want := range []string{"user.anonymous.created.v1", "session.started.v1", "Revoke"} {
		if !strings.Contains(page.Raw, want) {
			t.Fatalf("user page lacks %q: %s", want, page.Raw)
		}
	}
	action := regexp.MustCompile(`action="(/portal/users/[^"]+/revoke)"`).FindStringSubmatch(page.Raw)
	if action == nil {
		t.Fatal("no revoke form")
	}
	if r := p.PostForm(action[1], apitest.FormOf(t, page)); r.Status != 303 {
		t.Fatalf("revoke: %d %s", r.Status, r.Raw)
	}
	if r := apitest.Refresh(c, rt); r.Status != 400 || r.Reason() != "SessionRevoked" {
		t.Fatalf("refresh after the portal revoked the session: %d %s", r.Status, r.Raw)
	}
	page = p.Get("/portal/users/" + ids[0][1])
	if !strings.Contains(page.Raw, "session.revoked.v1") || !strings.Contains(page.Raw, "by portal:ops") {
		t.Fatalf("the timeline lacks the revocation by the operator: %s", page.Raw)
	}
	ops := p.Get("/portal/operations")
	for _, want := range []string{"users", "sessions", "identities", "no node holds the reaper lease"} {
		if !strings.Contains(ops.Raw, want) {
			t.Errorf("operations page lacks %q: %s", want, ops.Raw)
		}
	}
	if r := p.Get("/portal/users/not-a-uuid"); r.Status != 404 || !strings.Contains(r.Raw, "A user ID is a UUID") {
		t.Fatalf("bad user id: %d", r.Status)
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

// TestPortalSessionsEndWithTheirOperator: a portal session is bound to its
// operator's credential as configured. Another node with the same
// configuration (a plain password, hashed there with a salt of its own)
// accepts it; a node where the operator's password changed, or where the
// operator is gone, refuses it and ends it.
func TestPortalSessionsEndWithTheirOperator(t *testing.T) {
	ns := testenv.StartNATS(t)
	dbURL, _ := testenv.Database(t)
	a := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: apitest.WithOperator})
	same := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: apitest.WithOperator})
	changed := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.Portal.Operators = []config.Operator{{Username: apitest.PortalUser, Password: "a new password for ops 9"}}
	}})
	gone := testenv.StartNode(t, ns, testenv.NodeOptions{DatabaseURL: dbURL, Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.Portal.Operators = []config.Operator{{Username: "someone-else", Password: apitest.PortalPassword}}
	}})
	on := func(c *apitest.Client, n *testenv.Node) apitest.Response {
		c.Base = n.URL // the cookie jar keys by host, not port: the same cookie
		return c.Get("/portal/operations")
	}
	signedIn := func(r apitest.Response) bool { return r.Status == 200 && strings.Contains(r.Raw, "Sign out") }

	c := apitest.PortalClient(t, a)
	if r := on(c, same); !signedIn(r) {
		t.Fatalf("a node configured alike: %d %v", r.Status, r.Header)
	}
	if r := on(c, changed); signedIn(r) || r.Status != 303 {
		t.Fatalf("a node where the password changed: %d %v", r.Status, r.Header)
	}
	if r := on(c, a); signedIn(r) {
		t.Fatalf("the session refused for a changed password still works on its own node: %d", r.Status)
	}

	c = apitest.PortalClient(t, a)
	if r := on(c, gone); signedIn(r) || r.Status != 303 {
		t.Fatalf("a node without the operator: %d %v", r.Status, r.Header)
	}
	// A session from before credentials were kept (no fingerprint) ends too.
	c = apitest.PortalClient(t, a)
	if _, err := a.Pool.Exec(context.Background(), `UPDATE portal_sessions SET credential = NULL`); err != nil {
		t.Fatal(err)
	}
	if r := on(c, a); signedIn(r) {
		t.Fatalf("a session without a credential fingerprint: %d", r.Status)
	}
}
