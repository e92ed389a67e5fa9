package sdk_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// signedWithPayload signs an anonymous request whose payload has extra
// members (device_info), as the iOS and Android SDKs send it.
func signedWithPayload(t *testing.T, d device, withJWK bool, payload map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("vnd.authgear.anonymous-request").WithHeader("kid", d.KeyID)
	if withJWK {
		opts = opts.WithHeader("jwk", jose.JSONWebKey{Key: publicOf(d.Key), KeyID: d.KeyID, Algorithm: string(d.Alg)})
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: d.Alg, Key: d.Key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(payload)
	jws, err := signer.Sign(raw)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	testenv.RecordSecret("key-pair JWT", s)
	return s
}

func publicOf(key any) any {
	return (&jose.JSONWebKey{Key: key}).Public().Key
}

// Issue 17: device_info in the JWT (iOS) or x_device_info on the token
// request (Android, base64url JSON) is kept with the session and shown by
// the admin API; unknown members are ignored; malformed device info is
// refused with InvalidDeviceInfo.
func TestKeyPairDeviceInfo(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		apitest.CheapHashes(c)
		c.AdminAPIKeys = []string{apitest.AdminKey}
	}})
	c := apitest.NewClient(t, n)
	d := apitest.NewDevice(t, jose.RS256)
	now := n.Clock.Now()
	ios := map[string]any{"ios": map[string]any{
		"uname":         map[string]any{"machine": "iPhone15,2", "sysname": "Darwin"},
		"UIDevice":      map[string]any{"name": "Ada's iPhone", "systemName": "iOS", "systemVersion": "17.4", "model": "iPhone", "userInterfaceIdiom": "phone"},
		"NSProcessInfo": map[string]any{"isMacCatalystApp": false},
		"NSBundle":      map[string]any{"CFBundleIdentifier": "com.example.app", "CFBundleShortVersionString": "2.3.1", "CFBundleVersion": "451"},
		"later":         []any{"members", "an SDK may add"},
	}}
	r := c.KeyGrant(signedWithPayload(t, d, true, map[string]any{"challenge": c.Challenge(), "action": "auth",
		"iat": now.Unix(), "exp": now.Unix() + 60, "device_info": ios}))
	if r.Status != 200 {
		t.Fatalf("iOS sign-up with device_info: %d %s", r.Status, r.Raw)
	}
	sub := apitest.Str(c.Userinfo(apitest.Str(r.Body, "access_token")).Body, "sub")
	android := `{"android":{"Build":{"MANUFACTURER":"Google","MODEL":"Pixel 8","VERSION":{"RELEASE":"14","SDK_INT":34},"BOARD":5},"PackageInfo":{"versionName":"2.3.1","versionCode":451}}}`
	form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {"idstream-dev"},
		"jwt": {d.JWT(t, c.Challenge(), false, now)}, "x_device_info": {base64.RawURLEncoding.EncodeToString([]byte(android))}}
	if r := c.PostForm("/oauth2/token", form); r.Status != 200 {
		t.Fatalf("Android re-login with x_device_info: %d %s", r.Status, r.Raw)
	}
	waitRow(t, n, `SELECT count(*) FROM sessions WHERE user_id::text = $1 AND device_model = 'iPhone15,2' AND device_os = 'iOS 17.4'
		AND app_version = '2.3.1 (451)'`, sub)
	waitRow(t, n, `SELECT count(*) FROM sessions WHERE user_id::text = $1 AND device_model = 'Google Pixel 8' AND device_os = 'Android 14'
		AND app_version = '2.3.1'`, sub)
	// The admin API reads the users read model, projected apart from the
	// sessions: wait for every projection, or the lookup may lag (a CI run
	// saw 404 UserNotFound here).
	apitest.WaitProjected(t, c)
	a := c.Do(http.MethodGet, "/admin/users/"+sub, "", "", map[string]string{"Authorization": "Bearer " + apitest.AdminKey})
	if a.Status != 200 || !strings.Contains(a.Raw, `"device_model":"iPhone15,2"`) || !strings.Contains(a.Raw, `"device_os":"Android 14"`) {
		t.Fatalf("admin API sessions: %d %s", a.Status, a.Raw)
	}

	before := apitest.LastSeq(t, n)
	for name, f := range map[string]url.Values{
		"not base64url":    {"x_device_info": {"%%%"}},
		"not JSON":         {"x_device_info": {base64.RawURLEncoding.EncodeToString([]byte("{"))}},
		"not an object":    {"x_device_info": {base64.RawURLEncoding.EncodeToString([]byte(`["ios"]`))}},
		"larger than 8KiB": {"x_device_info": {base64.RawURLEncoding.EncodeToString([]byte(`{"x":"` + strings.Repeat("a", 9000) + `"}`))}},
	} {
		f.Set("grant_type", "urn:authgear:params:oauth:grant-type:anonymous-request")
		f.Set("client_id", "idstream-dev")
		f.Set("jwt", d.JWT(t, c.Challenge(), false, now))
		if r := c.PostForm("/oauth2/token", f); r.Status != 400 || r.Reason() != "InvalidDeviceInfo" {
			t.Errorf("%s: %d %s", name, r.Status, r.Raw)
		}
	}
	if r := c.KeyGrant(signedWithPayload(t, d, false, map[string]any{"challenge": c.Challenge(), "action": "auth",
		"iat": now.Unix(), "exp": now.Unix() + 60, "device_info": "iPhone"})); r.Status != 400 || r.Reason() != "InvalidDeviceInfo" {
		t.Errorf("device_info a string: %d %s", r.Status, r.Raw)
	}
	if apitest.LastSeq(t, n) != before {
		t.Fatal("refused device info wrote events")
	}
}
