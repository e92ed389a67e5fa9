package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// TestHostedPromotionEndsCleanly: the hosted promotion command's refusals
// that end the flow (app.SubmitHostedPromotion): a cookie-mode link opened
// in a browser without the guest's cookie, and a sign-up link spent in the
// meantime. Each is a message page with a stable reason in the log, and
// nothing is written.
func TestHostedPromotionEndsCleanly(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) { apitest.CheapHashes(c) }})

	t.Run("another browser", func(t *testing.T) {
		guest := apitest.NewClient(t, n)
		if r := guest.PostJSON("/api/anonymous_user/signup", apitest.CookieSignup, nil); r.Status != 200 {
			t.Fatalf("cookie signup: %d %s", r.Status, r.Raw)
		}
		pc := guest.PostJSON("/api/anonymous_user/promotion_code", `{}`, nil)
		code := apitest.Str(pc.Result(), "promotion_code")
		params := apitest.AuthorizeParams("", apitest.PromotionHint(code))
		params.Set("response_type", "none")
		params.Del("code_challenge")
		params.Del("code_challenge_method")
		other := apitest.NewClient(t, n) // no guest cookie
		page, csrf, _ := other.HostedFlow(params)
		before := apitest.LastSeq(t, n)
		r := other.Submit(page, csrf, url.Values{"login_id": {"elsewhere@example.com"}, "password": {apitest.GoodPassword}})
		if r.Status != http.StatusForbidden || !strings.Contains(r.Raw, "belongs to a guest of another browser") || strings.Contains(r.Raw, `name="login_id"`) {
			t.Fatalf("another browser: %d %s", r.Status, r.Raw)
		}
		if apitest.LastSeq(t, n) != before || !strings.Contains(n.Logs.String(), "GuestOfAnotherBrowser") {
			t.Fatal("written, or no stable reason in the log")
		}
		// The guest's own browser still can.
		page, csrf, _ = guest.HostedFlow(params)
		if r := guest.Submit(page, csrf, url.Values{"login_id": {"own@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 302 {
			t.Fatalf("own browser: %d %s", r.Status, r.Raw)
		}
	})

	t.Run("the link opened with another challenge", func(t *testing.T) {
		// The app opens its promotion link; whoever reads the link (a
		// history, a shared URL) and opens it with a PKCE challenge of
		// their own, to exchange the code themselves, is refused before
		// any page.
		c := apitest.NewClient(t, n)
		at, rt := apitest.Signup(t, c)
		pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, bearerH(at))
		hint := apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code"))
		verifier, challenge := apitest.PKCE()
		params := apitest.AuthorizeParams(challenge, hint)
		page, csrf, _ := c.HostedFlow(params)
		_, theirs := apitest.PKCE()
		reader := apitest.NewClient(t, n)
		r := reader.Do(http.MethodGet, "/oauth2/authorize?"+apitest.AuthorizeParams(theirs, hint).Encode(), "", "", nil)
		if loc, _ := url.Parse(r.Header.Get("Location")); r.Status != 302 || loc == nil || loc.Query().Get("error") != "invalid_request" ||
			!strings.Contains(loc.Query().Get("error_description"), "in use by another sign-in") {
			t.Fatalf("the link with another challenge: %d %v", r.Status, r.Header)
		}
		// With the app's own challenge it opens (a reload), and only the
		// app's verifier exchanges the code it gives.
		if _, _, again := reader.HostedFlow(params); again.Status != 200 {
			t.Fatalf("the link reopened as the app opened it: %d %s", again.Status, again.Raw)
		}
		done := c.Submit(page, csrf, url.Values{"login_id": {"owner@example.com"}, "password": {apitest.GoodPassword}})
		loc, _ := url.Parse(done.Header.Get("Location"))
		if done.Status != 302 || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("the app's promotion: %d %s", done.Status, done.Raw)
		}
		if tok := c.Exchange(loc.Query().Get("code"), verifier); tok.Status != 200 {
			t.Fatalf("exchange: %d %s", tok.Status, tok.Raw)
		}
		if r := apitest.Refresh(c, rt); r.Status == 200 {
			t.Fatal("the guest's session outlived its promotion")
		}
	})

	t.Run("link spent meanwhile", func(t *testing.T) {
		c := apitest.NewClient(t, n)
		at, _ := apitest.Signup(t, c)
		pc := c.PostJSON("/api/anonymous_user/promotion_code", `{"session_type":"refresh_token"}`, bearerH(at))
		_, challenge := apitest.PKCE()
		params := apitest.AuthorizeParams(challenge, apitest.PromotionHint(apitest.Str(pc.Result(), "promotion_code")))
		page, csrf, _ := c.HostedFlow(params)
		page2, csrf2, _ := c.HostedFlow(params) // the same link, opened twice
		if r := c.Submit(page, csrf, url.Values{"login_id": {"first@example.com"}, "password": {apitest.GoodPassword}}); r.Status != 302 {
			t.Fatalf("first: %d %s", r.Status, r.Raw)
		}
		before := apitest.LastSeq(t, n)
		r := c.Submit(page2, csrf2, url.Values{"login_id": {"second@example.com"}, "password": {apitest.GoodPassword}})
		if r.Status != http.StatusBadRequest || !strings.Contains(r.Raw, "This page has expired") || !strings.Contains(r.Raw, "expired or was already used") {
			t.Fatalf("spent link: %d %s", r.Status, r.Raw)
		}
		if apitest.LastSeq(t, n) != before {
			t.Fatal("a spent link wrote events")
		}
	})
}
