package api_test

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// BenchmarkSignInExistingVsUnknown times a hosted-page sign-in that fails,
// once for a login ID that exists (wrong password) and once for one that
// does not. The two must take the same time, or the time tells whether an
// account exists: an unknown login ID is checked against a dummy hash made
// with the configured argon2id parameters. The parameters here are raised
// above the defaults, as an operator would where hardware allows, which is
// where a dummy hash of the default parameters would give the difference
// away. Compare the medians of
//
//	go test ./api -run '^$' -bench SignIn -count 5 -benchtime 20x
//
// (a fixed 20 attempts per run: one attempt takes about 0.1 s, so the
// default one second would time very few.)
// The "interleaved" sub-benchmark alternates the two and reports their ratio
// (existing/unknown), which a changing machine load disturbs less. This is
// a measurement, not an assertion: timings on a shared machine vary.
func BenchmarkSignInExistingVsUnknown(b *testing.B) {
	n := testenv.StartNode(b, testenv.StartNATS(b), testenv.NodeOptions{Configure: func(c *config.Config) {
		off := 0
		c.RateLimits.SignInPerIP.Burst = &off
		c.RateLimits.SignInPerLoginID.Burst = &off
		c.Password.MemoryKiB = 32 * 1024
		c.Password.Iterations = 3
	}})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (int, string, http.Header) {
		b.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, n.URL+path, body)
		if err != nil {
			b.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw), resp.Header
	}
	flow := func() (string, string) {
		b.Helper()
		_, challenge := apitest.PKCE()
		status, _, h := do(http.MethodGet, "/oauth2/authorize?"+apitest.AuthorizeParams(challenge, "").Encode(), nil)
		page := h.Get("Location")
		if status != http.StatusFound || !strings.HasPrefix(page, "/flows/") {
			b.Fatalf("authorize: %d %v", status, h)
		}
		status, raw, _ := do(http.MethodGet, page, nil)
		m := apitest.CSRFRe.FindStringSubmatch(raw)
		if status != 200 || m == nil {
			b.Fatalf("flow page: %d %s", status, raw)
		}
		testenv.RecordSecret("flow id", strings.TrimPrefix(page, "/flows/"))
		testenv.RecordSecret("CSRF token", html.UnescapeString(m[1]))
		return page, html.UnescapeString(m[1])
	}
	const existing, unknown, wrong = "bench-existing@example.com", "bench-unknown@example.com", "bench-wrong-password"
	testenv.RecordSecret("password", apitest.GoodPassword)
	testenv.RecordSecret("password", wrong)

	// The account, made on the hosted sign-up page.
	page, csrf := flow()
	if status, raw, _ := do(http.MethodPost, page, url.Values{"csrf_token": {csrf}, "mode": {"signup"}, "login_id": {existing}, "password": {apitest.GoodPassword}}); status != http.StatusFound {
		b.Fatalf("sign-up: %d %s", status, raw)
	}
	page, csrf = flow()
	attempt := func(b *testing.B, loginID string) {
		status, raw, _ := do(http.MethodPost, page, url.Values{"csrf_token": {csrf}, "mode": {"signin"}, "login_id": {loginID}, "password": {wrong}})
		if status != http.StatusUnauthorized || !strings.Contains(raw, "do not match an account") {
			b.Fatalf("sign-in as %s: %d %s", loginID, status, raw)
		}
	}
	for _, bc := range []struct{ name, loginID string }{{"existing_wrong_password", existing}, {"unknown_login_id", unknown}} {
		b.Run(bc.name, func(b *testing.B) {
			attempt(b, bc.loginID) // warm up
			b.ResetTimer()
			for range b.N {
				attempt(b, bc.loginID)
			}
		})
	}
	// The same, alternating, so that a change in the machine's load falls on
	// both alike: reports each side's mean and their ratio.
	b.Run("interleaved", func(b *testing.B) {
		var took [2]time.Duration
		for i := range b.N {
			for j, id := range []string{existing, unknown} {
				if i%2 == 1 {
					j, id = 1-j, []string{existing, unknown}[1-j]
				}
				start := time.Now()
				attempt(b, id)
				took[j] += time.Since(start)
			}
		}
		b.ReportMetric(float64(took[0].Milliseconds())/float64(b.N), "existing-ms/op")
		b.ReportMetric(float64(took[1].Milliseconds())/float64(b.N), "unknown-ms/op")
		b.ReportMetric(float64(took[0])/float64(took[1]), "existing/unknown")
	})
}
