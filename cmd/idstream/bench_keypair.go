package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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
}

// benchKeypair registers devices, then measures re-logins: challenge +
// signed JWT + token exchange per operation. Projection lag is not sampled
// (a re-login creates no user row).
func benchKeypair(ctx context.Context, l *loadFlags, n int) error {
	client := l.httpClient()
	devs := make([]benchDevice, n)
	for i := range devs {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		devs[i] = benchDevice{key: key, kid: "bench-" + strings.ReplaceAll(uuid.NewString(), "-", "")}
		if _, status, err := keyLogin(ctx, client, l, devs[i], true); err != nil || status != http.StatusOK {
			return fmt.Errorf("bench: registering device %d: status %d, %v", i, status, err)
		}
	}
	fmt.Printf("registered %d devices\n", n)
	l.dbURL = ""
	return runLoad(ctx, l, "re-logins", func(ctx context.Context, w, i int) (string, int, error) {
		return keyLogin(ctx, client, l, devs[(i*l.conc+w)%len(devs)], false)
	})
}

func keyLogin(ctx context.Context, client *http.Client, l *loadFlags, d benchDevice, first bool) (string, int, error) {
	status, raw, err := post(ctx, client, l.target+"/oauth2/challenge", "application/json", `{"purpose":"anonymous_request"}`)
	if err != nil || status != http.StatusOK {
		return "", status, err
	}
	var ch struct {
		Result struct {
			Token string `json:"token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &ch); err != nil {
		return "", status, err
	}
	jwt, err := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: d.key, Algorithm: jose.ES256, KeyID: d.kid,
		IncludeJWK: first, Challenge: ch.Result.Token, Action: "auth", IssuedAt: time.Now()})
	if err != nil {
		return "", 0, err
	}
	form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {l.clientID}, "jwt": {jwt}}
	status, raw, err = post(ctx, client, l.target+"/oauth2/token", "application/x-www-form-urlencoded", form.Encode())
	if err != nil || status != http.StatusOK {
		return "", status, err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(raw, &tok)
	return jwtSubject(tok.AccessToken), status, nil
}

func post(ctx context.Context, client *http.Client, u, contentType, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, raw, err
}
