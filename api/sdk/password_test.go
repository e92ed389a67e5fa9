package sdk_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"testing"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/testenv"
)

// TestPasswordPolicyNormalises: the API applies the policy to the NFKC form
// of the password: whitespace-only and invisible passwords are refused with
// PasswordPolicy, ｐａｓｓｗｏｒｄ１２３ is password123 (too common), and a
// password set in full-width letters signs in typed in ASCII and the other
// way round (NIST SP 800-63B: normalise, then hash).
func TestPasswordPolicyNormalises(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	c := apitest.NewClient(t, n)
	at, _ := apitest.Signup(t, c)
	before := apitest.LastSeq(t, n)
	for _, tc := range []struct{ name, pw, reason string }{
		{"eight spaces", "        ", "PasswordPolicy"},
		{"eight zero-width spaces", "\u200b\u200b\u200b\u200b\u200b\u200b\u200b\u200b", "PasswordPolicy"},
		{"eight NULs", "\x00\x00\x00\x00\x00\x00\x00\x00", "PasswordPolicy"},
		{"eight combining marks", "\u0301\u0301\u0301\u0301\u0301\u0301\u0301\u0301", "PasswordPolicy"},
		{"full-width password123", "ｐａｓｓｗｏｒｄ１２３", "PasswordTooCommon"},
	} {
		// JSON-encoded (promoteBody's %q would write Go escapes).
		body, _ := json.Marshal(map[string]string{"login_id": "norm@example.com", "password": tc.pw})
		if r := c.PostJSON("/api/anonymous_user/promote", string(body), map[string]string{"Authorization": "Bearer " + at}); r.Status != 400 || r.Reason() != tc.reason {
			t.Errorf("%s: %d %s, want %s", tc.name, r.Status, r.Raw, tc.reason)
		}
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("refused promotions wrote events")
	}

	// Set in full width (with a full-width hyphen and digits): it is
	// goodPassword.
	if r := c.Promote(at, "norm@example.com", "ｖｉｏｌｅｔ－ｔａｎｇｅｒｉｎｅ－４２"); r.Status != 200 {
		t.Fatalf("promote: %d %s", r.Status, r.Raw)
	}
	signIn := func(pw string) int {
		_, challenge := apitest.PKCE()
		page, csrf, _ := c.HostedFlow(apitest.AuthorizeParams(challenge, ""))
		r := c.Submit(page, csrf, url.Values{"mode": {"signin"}, "login_id": {"norm@example.com"}, "password": {pw}})
		if r.Status == http.StatusFound {
			if loc, _ := url.Parse(r.Header.Get("Location")); loc == nil || loc.Query().Get("code") == "" {
				t.Fatalf("sign-in redirect without a code: %v", r.Header)
			}
		}
		return r.Status
	}
	for _, pw := range []string{apitest.GoodPassword, "ｖｉｏｌｅｔ－ｔａｎｇｅｒｉｎｅ－４２", "violet-ｔａｎｇｅｒｉｎｅ-42"} {
		if st := signIn(pw); st != http.StatusFound {
			t.Errorf("sign in with %q: %d", pw, st)
		}
	}
	if st := signIn("violet-tangerine-43"); st != http.StatusUnauthorized {
		t.Errorf("wrong password: %d", st)
	}
}
