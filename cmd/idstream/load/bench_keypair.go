package load

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/tokens"
)

type benchDevice struct {
	key *ecdsa.PrivateKey
	kid string
	// dpop, when set, signs a DPoP proof on every request, as the mobile
	// SDKs do (their own key, apart from the anonymous key).
	dpop    any
	dpopAlg jose.SignatureAlgorithm
}

// benchKeypair registers devices, then measures re-logins: challenge +
// signed JWT + token exchange per operation. Projection lag is not sampled
// (a re-login creates no user row).
func benchKeypair(ctx context.Context, l *loadFlags, n int, dpop string) error {
	client := l.httpClient()
	devs := make([]benchDevice, n)
	for i := range devs {
		var err error
		if devs[i], err = newBenchDevice(); err != nil {
			return err
		}
		switch dpop {
		case "":
		case "rs256":
			if devs[i].dpop, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
				return err
			}
			devs[i].dpopAlg = jose.RS256
		case "es256":
			if devs[i].dpop, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
				return err
			}
			devs[i].dpopAlg = jose.ES256
		default:
			return fmt.Errorf("bench: --dpop is rs256 or es256, not %q", dpop)
		}
		if _, status, _, err := keyLogin(ctx, client, l, devs[i], true); err != nil || status != http.StatusOK {
			return fmt.Errorf("bench: registering device %d: status %d, %v", i, status, err)
		}
	}
	fmt.Printf("registered %d devices (DPoP: %s)\n", n, map[bool]string{true: dpop, false: "off"}[dpop != ""])
	l.dbURL = ""
	return runLoad(ctx, l, "re-logins", func(ctx context.Context, w, i int) (string, int, error) {
		sub, status, _, err := keyLogin(ctx, client, l, devs[(i*l.conc+w)%len(devs)], false)
		return sub, status, err
	})
}

// newBenchDevice makes a device key pair with a fresh key id.
func newBenchDevice() (benchDevice, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return benchDevice{}, err
	}
	return benchDevice{key: key, kid: "bench-" + strings.ReplaceAll(uuid.NewString(), "-", "")}, nil
}

// keyLogin signs a device up (first) or in: challenge, signed JWT, token
// exchange. It returns the sub, or the status and body of the failure.
func keyLogin(ctx context.Context, client *http.Client, l *loadFlags, d benchDevice, first bool) (string, int, []byte, error) {
	proof := func(path string) (map[string]string, error) {
		if d.dpop == nil {
			return nil, nil
		}
		p, err := tokens.SignDPoPProof(tokens.DeviceProof{Key: d.dpop, Algorithm: d.dpopAlg, KeyID: d.kid, Method: http.MethodPost,
			URL: l.target + path, JTI: uuid.NewString(), IssuedAt: time.Now()})
		return map[string]string{"DPoP": p}, err
	}
	h, err := proof("/oauth2/challenge")
	if err != nil {
		return "", 0, nil, err
	}
	status, raw, err := requestWith(ctx, client, http.MethodPost, l.target+"/oauth2/challenge", "application/json", `{"purpose":"anonymous_request"}`, h)
	if err != nil || status != http.StatusOK {
		return "", status, raw, err
	}
	var ch struct {
		Result struct {
			Token string `json:"token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &ch); err != nil {
		return "", status, raw, err
	}
	jwt, err := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: d.key, Algorithm: jose.ES256, KeyID: d.kid,
		IncludeJWK: first, Challenge: ch.Result.Token, Action: "auth", IssuedAt: time.Now()})
	if err != nil {
		return "", 0, nil, err
	}
	form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {l.clientID}, "jwt": {jwt}}
	if h, err = proof("/oauth2/token"); err != nil {
		return "", 0, nil, err
	}
	status, raw, err = requestWith(ctx, client, http.MethodPost, l.target+"/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), h)
	if err != nil || status != http.StatusOK {
		return "", status, raw, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(raw, &tok)
	return jwtSubject(tok.AccessToken), status, raw, nil
}

func post(ctx context.Context, client *http.Client, u, contentType, body string) (int, []byte, error) {
	return request(ctx, client, http.MethodPost, u, "", contentType, body)
}

// request sends one request (with a bearer token unless empty) and reads
// the whole answer.
func request(ctx context.Context, client *http.Client, method, u, bearer, contentType, body string) (int, []byte, error) {
	var h map[string]string
	if bearer != "" {
		h = map[string]string{"Authorization": "Bearer " + bearer}
	}
	return requestWith(ctx, client, method, u, contentType, body, h)
}

// requestWith sends one request with the headers given and reads the whole
// answer.
func requestWith(ctx context.Context, client *http.Client, method, u, contentType, body string, headers map[string]string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}
