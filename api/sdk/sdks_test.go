package sdk_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/api/apitest"
	"github.com/idstream/idstream/testenv"
	"github.com/idstream/idstream/tokens"
)

// The Authgear mobile SDKs, as their public sources build the key-pair
// and DPoP requests (read at authgear-sdk-ios 01748e78, authgear-sdk-android
// 968c0194, authgear-sdk-flutter 4dc78313, authgear-sdk-js 2b0bfd46). Each
// wire knob names the source line it copies.
type sdkWire struct {
	name string
	// kid spelling of the anonymous key (a UUID).
	upperKID bool
	// jwkEveryTime: the public key in every JWT's header, not only the
	// first.
	jwkEveryTime bool
	// flutterTimes: iat and exp as millisecondsSinceEpoch / 1000 with exp
	// = iat + 300; androidDouble writes them as Android's org.json does
	// (1.796153971004E9).
	flutterTimes, androidDouble bool
	// deviceInfo goes in the JWT payload (device_info) and as x_device_info.
	deviceInfo map[string]any
	// slashes escaped as \/ (Apple's JSONSerialization, Android's org.json).
	escapeSlashes bool
	// challengeType is the challenge request's Content-Type.
	challengeType string
	// bearerOnChallenge: signed in, the challenge request carries the
	// access token.
	bearerOnChallenge bool
	// dpopAlg signs the DPoP proofs; dpopLife is exp - iat.
	dpopAlg  jose.SignatureAlgorithm
	dpopLife int64
}

var iosDeviceInfo = map[string]any{"ios": map[string]any{
	"uname":    map[string]any{"machine": "iPhone15,2", "sysname": "Darwin"},
	"UIDevice": map[string]any{"systemName": "iOS", "systemVersion": "17.4", "model": "iPhone"},
	"NSBundle": map[string]any{"CFBundleShortVersionString": "2.3.1", "CFBundleVersion": "451", "CFBundleIdentifier": "com.example/app"},
}}

var androidDeviceInfo = map[string]any{"android": map[string]any{
	"Build":       map[string]any{"MANUFACTURER": "Google", "MODEL": "Pixel 8", "VERSION": map[string]any{"RELEASE": "14", "SDK_INT": 34}},
	"PackageInfo": map[string]any{"versionName": "2.3.1", "versionCode": 451, "packageName": "com.example/app"},
}}

var sdkWires = []sdkWire{
	{
		// authgear-sdk-ios Sources/Authgear.swift:885 (UUID().uuidString,
		// upper case), :888-894 (jwk only when the key is generated),
		// Sources/JWT.swift:51-57 (iat integer, exp = iat + 60, device_info),
		// Sources/APIClient.swift:547 (x_device_info), :735 (challenge
		// content-type), :475-479 (a DPoP proof on every request, htu =
		// url.absoluteString), Sources/dpop/DefaultDPoPProvider.swift
		// (Secure Enclave P-256: ES256), Sources/JWT.swift:64-67 (proof exp
		// = iat + 60).
		name: "iOS", upperKID: true, deviceInfo: iosDeviceInfo, escapeSlashes: true, challengeType: "application/json",
		dpopAlg: jose.ES256, dpopLife: 60,
	},
	{
		// authgear-sdk-android sdk/src/main/java/com/oursky/authgear/
		// AuthgearCore.kt:189 (UUID.randomUUID(), lower case), :201-206
		// (jwk in every header), JWT.kt:44-50 (iat integer, exp = iat + 60,
		// device_info), AuthgearCore.kt:221 (x_device_info),
		// data/oauth/OAuthRepoHttp.kt:174 (challenge content-type),
		// :224-236 (a DPoP proof on every request),
		// dpop/DefaultDPoPProvider.kt:42 (SHA256withRSA), JWT.kt:52-58
		// (proof exp = iat + 60).
		name: "Android", jwkEveryTime: true, deviceInfo: androidDeviceInfo, escapeSlashes: true, challengeType: "application/json",
		dpopAlg: jose.RS256, dpopLife: 60,
	},
	{
		// authgear-sdk-js packages/authgear-react-native/src/index.ts:824-835
		// (iat integer, exp = iat + 60; the key from the native module,
		// jwk on first use), ios/AGAuthgearReactNative.m generates the kid
		// with NSUUID (upper case); packages/authgear-core/src/client.ts
		// _prepareHeaders (Bearer on every request when signed in,
		// challenge included) and _doFetch (a DPoP proof on every request),
		// packages/authgear-core/src/dpop.ts:81-88 (proof exp = iat + 300).
		name: "React Native (iOS)", upperKID: true, challengeType: "application/json", bearerOnChallenge: true,
		dpopAlg: jose.RS256, dpopLife: 300,
	},
	{
		// The same TypeScript; android/.../AuthgearReactNativeModule.java
		// generates the kid with UUID.randomUUID() (lower case).
		name: "React Native (Android)", challengeType: "application/json", bearerOnChallenge: true,
		dpopAlg: jose.RS256, dpopLife: 300,
	},
	{
		// authgear-sdk-flutter lib/src/container.dart:1140-1145 and
		// :1168-1173 (iat = millisecondsSinceEpoch / 1000, exp = iat + 300),
		// the native plugin puts the jwk in every header; lib/src/client.dart
		// :477 (application/json; charset=UTF-8), :501-507 (a DPoP proof on
		// every request), lib/src/dpop.dart:33-40 (fractional iat, exp =
		// iat + 300). On iOS Dart writes the fraction as a decimal.
		name: "Flutter (iOS)", upperKID: true, jwkEveryTime: true, flutterTimes: true,
		challengeType: "application/json; charset=UTF-8", dpopAlg: jose.RS256, dpopLife: 300,
	},
	{
		// The same Dart; on Android the JWT is serialised by org.json,
		// which writes a double like 1.796153971004E9.
		name: "Flutter (Android)", jwkEveryTime: true, flutterTimes: true, androidDouble: true, escapeSlashes: true,
		challengeType: "application/json; charset=UTF-8", dpopAlg: jose.RS256, dpopLife: 300,
	},
}

// sdkPhone is one phone running an SDK: its anonymous key, its DPoP key
// and what it has been given.
type sdkPhone struct {
	w       sdkWire
	t       *testing.T
	c       *apitest.Client
	n       *testenv.Node
	anon    *rsa.PrivateKey
	kid     string
	dpop    crypto.Signer
	dpopKID string
	sentJWK bool
	at, rt  string
}

func newPhone(t *testing.T, w sdkWire, c *apitest.Client, n *testenv.Node) *sdkPhone {
	anon, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	apitest.RecordDeviceKey(anon)
	var dp crypto.Signer
	if w.dpopAlg == jose.ES256 {
		dp, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	} else {
		dp, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	apitest.RecordDeviceKey(dp)
	kid := uuid.NewString()
	if w.upperKID {
		kid = strings.ToUpper(kid)
	}
	return &sdkPhone{w: w, t: t, c: c, n: n, anon: anon, kid: kid, dpop: dp, dpopKID: strings.ToUpper(uuid.NewString())}
}

// number writes a NumericDate the way the SDK's serialiser does.
func (p *sdkPhone) number(sec float64) string {
	switch {
	case p.w.androidDouble:
		// org.json: Double.toString, e.g. 1.796153971004E9.
		s := strconv.FormatFloat(sec/1e9, 'f', -1, 64)
		return s + "E9"
	case p.w.flutterTimes:
		return strconv.FormatFloat(sec, 'f', -1, 64)
	default:
		return strconv.FormatInt(int64(sec), 10)
	}
}

// object writes a JSON object with the members in the order given and
// raw values, escaping / as \/ when the platform does.
func (p *sdkPhone) object(members ...string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(members); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(members[i])
		b.Write(k)
		b.WriteByte(':')
		b.WriteString(members[i+1])
	}
	b.WriteByte('}')
	out := b.String()
	if p.w.escapeSlashes {
		out = strings.ReplaceAll(out, "/", `\/`)
	}
	return []byte(out)
}

func jsonValue(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

// sign makes a compact JWS of header and payload bytes, as the SDKs'
// native code does (RSASSA-PKCS1-v1_5 SHA-256, or ES256 r||s).
func sign(t *testing.T, key crypto.Signer, header, payload []byte) string {
	t.Helper()
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch k := key.(type) {
	case *rsa.PrivateKey:
		s, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = s
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = append(pad32(r), pad32(s)...)
	}
	out := input + "." + base64.RawURLEncoding.EncodeToString(sig)
	testenv.RecordSecret("SDK JWT", out)
	return out
}

func pad32(x *big.Int) []byte {
	b := make([]byte, 32)
	return x.FillBytes(b)
}

func publicJWK(t *testing.T, key crypto.Signer, kid, alg string) string {
	t.Helper()
	raw, err := (&jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: alg}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// anonymousJWT signs the key-pair request for action over a challenge.
func (p *sdkPhone) anonymousJWT(challenge, action string) string {
	p.t.Helper()
	hdr := []string{"typ", `"vnd.authgear.anonymous-request"`, "kid", jsonValue(p.kid), "alg", `"RS256"`}
	if p.w.jwkEveryTime || !p.sentJWK {
		hdr = append(hdr, "jwk", publicJWK(p.t, p.anon, p.kid, "RS256"))
		p.sentJWK = true
	}
	now := float64(p.n.Clock.Now().UnixMilli()) / 1000
	if !p.w.flutterTimes {
		now = float64(p.n.Clock.Now().Unix())
	}
	life := 60.0
	if p.w.flutterTimes {
		life = 300
	}
	body := []string{"iat", p.number(now), "exp", p.number(now + life), "challenge", jsonValue(challenge), "action", jsonValue(action)}
	if p.w.deviceInfo != nil {
		body = append(body, "device_info", jsonValue(p.w.deviceInfo))
	}
	payload := p.object(body...)
	if p.w.androidDouble && !strings.Contains(string(payload), "E9,") {
		p.t.Fatalf("not org.json's double form: %s", payload)
	}
	return sign(p.t, p.anon, p.object(hdr...), payload)
}

// proof signs the DPoP proof the SDK sends with a request to path.
func (p *sdkPhone) proof(method, path string) string {
	p.t.Helper()
	alg := string(p.w.dpopAlg)
	hdr := p.object("typ", `"dpop+jwt"`, "kid", jsonValue(p.dpopKID), "alg", jsonValue(alg), "jwk", publicJWK(p.t, p.dpop, p.dpopKID, alg))
	now := float64(p.n.Clock.Now().Unix())
	if p.w.flutterTimes {
		now = float64(p.n.Clock.Now().UnixMilli()) / 1000
	}
	body := p.object("iat", p.number(now), "exp", p.number(now+float64(p.w.dpopLife)), "jti", jsonValue(strings.ToUpper(uuid.NewString())),
		"htm", jsonValue(method), "htu", jsonValue(p.c.Base+path))
	return sign(p.t, p.dpop, hdr, body)
}

func (p *sdkPhone) headers(method, path string, bearer bool) map[string]string {
	h := map[string]string{"DPoP": p.proof(method, path)}
	if bearer && p.at != "" {
		h["Authorization"] = "Bearer " + p.at
	}
	return h
}

func (p *sdkPhone) challenge() string {
	p.t.Helper()
	h := p.headers("POST", "/oauth2/challenge", p.w.bearerOnChallenge)
	r := p.c.Do(http.MethodPost, "/oauth2/challenge", p.w.challengeType, `{"purpose":"anonymous_request"}`, h)
	if r.Status != 200 {
		p.t.Fatalf("%s challenge: %d %s", p.w.name, r.Status, r.Raw)
	}
	return apitest.Str(r.Result(), "token")
}

func (p *sdkPhone) xDeviceInfo(form url.Values) {
	if p.w.deviceInfo != nil {
		raw, _ := json.Marshal(p.w.deviceInfo)
		form.Set("x_device_info", base64.RawURLEncoding.EncodeToString(raw))
	}
}

func (p *sdkPhone) token(form url.Values) apitest.Response {
	p.t.Helper()
	p.xDeviceInfo(form)
	r := p.c.Do(http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), p.headers("POST", "/oauth2/token", false))
	if r.Status == 200 {
		p.at, p.rt = apitest.Str(r.Body, "access_token"), apitest.Str(r.Body, "refresh_token")
	}
	return r
}

func (p *sdkPhone) authenticateAnonymously() apitest.Response {
	return p.token(url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {"idstream-dev"},
		"jwt": {p.anonymousJWT(p.challenge(), "auth")}})
}

func (p *sdkPhone) userInfo() apitest.Response {
	return p.c.Do(http.MethodGet, "/oauth2/userinfo", "", "", p.headers("GET", "/oauth2/userinfo", true))
}

// Issue 17: each official mobile SDK, as its source builds the requests,
// signs up a key-pair guest, signs in again to the same sub, refreshes,
// promotes it on the hosted page with the promote JWT (PKCE, prompt=login,
// the code exchanged with a DPoP proof), keeps the sub, and its old key is
// refused afterwards; every token is DPoP-bound.
func TestOfficialMobileSDKs(t *testing.T) {
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: apitest.CheapHashes})
	for i, w := range sdkWires {
		t.Run(w.name, func(t *testing.T) {
			c := apitest.NewClient(t, n)
			p := newPhone(t, w, c, n)
			r := p.authenticateAnonymously()
			if r.Status != 200 || apitest.Str(r.Body, "token_type") != "DPoP" {
				t.Fatalf("sign-up: %d %s", r.Status, r.Raw)
			}
			info := p.userInfo()
			sub := apitest.Str(info.Body, "sub")
			if info.Status != 200 || sub == "" || info.Body["is_anonymous"] != true {
				t.Fatalf("userinfo: %d %s", info.Status, info.Raw)
			}
			if r := p.authenticateAnonymously(); r.Status != 200 {
				t.Fatalf("re-login: %d %s", r.Status, r.Raw)
			}
			if again := apitest.Str(p.userInfo().Body, "sub"); again != sub {
				t.Fatalf("re-login gave %q, want %q", again, sub)
			}
			if r := p.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {p.rt}}); r.Status != 200 {
				t.Fatalf("refresh: %d %s", r.Status, r.Raw)
			}
			guestRT := p.rt

			// promoteAnonymousUser: the promote JWT in login_hint,
			// prompt=login, PKCE, the SDKs' scopes.
			jwt := p.anonymousJWT(p.challenge(), "promote")
			hint := "https://authgear.com/login_hint?" + url.Values{"type": {"anonymous"}, "jwt": {jwt}}.Encode()
			verifier, challenge := apitest.PKCE()
			params := apitest.AuthorizeParams(challenge, hint)
			params.Set("scope", "openid offline_access https://authgear.com/scopes/full-access")
			params.Set("prompt", "login")
			page, csrf, pg := c.HostedFlow(params)
			if page == "" || !strings.Contains(pg.Raw, "Create your account") {
				t.Fatalf("promotion page: %d %s", pg.Status, pg.Raw)
			}
			sub2 := c.Submit(page, csrf, url.Values{"login_id": {fmt.Sprintf("sdk.owner.%d", i)}, "password": {apitest.GoodPassword}})
			loc, _ := url.Parse(sub2.Header.Get("Location"))
			code := loc.Query().Get("code")
			if code == "" {
				t.Fatalf("promotion submit: %d %s", sub2.Status, sub2.Raw)
			}
			tok := p.token(url.Values{"grant_type": {"authorization_code"}, "client_id": {"idstream-dev"}, "code": {code},
				"redirect_uri": {"http://localhost:3000/after"}, "code_verifier": {verifier}})
			if tok.Status != 200 || apitest.Str(tok.Body, "token_type") != "DPoP" {
				t.Fatalf("code exchange: %d %s", tok.Status, tok.Raw)
			}
			info = p.userInfo()
			if apitest.Str(info.Body, "sub") != sub || info.Body["is_anonymous"] != false {
				t.Fatalf("after promotion: %s", info.Raw)
			}
			// The SDK deletes its key; a copy of it no longer signs in, and
			// the guest's refresh token ended with the promotion.
			p.sentJWK = false
			if r := p.authenticateAnonymously(); r.Status == 200 || r.Reason() != "KeyNotUsable" {
				t.Fatalf("old key after promotion: %d %s", r.Status, r.Raw)
			}
			if r := p.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"idstream-dev"}, "refresh_token": {guestRT}}); r.Status == 200 {
				t.Fatalf("the guest's refresh token after promotion: %s", r.Raw)
			}
		})
	}
	// The proofs' algorithms are what discovery says.
	if got := fmt.Sprint(tokens.DPoPAlgorithms); !strings.Contains(got, "RS256") || !strings.Contains(got, "ES256") {
		t.Fatalf("DPoP algorithms %s", got)
	}
}
