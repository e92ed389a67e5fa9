// Command keypair-guest acts as a mobile device in idstream's key-pair
// protocol: on first run it makes a key pair, keeps the private key in a file
// only its owner can read, and signs up as a guest; on later runs it signs in
// to the same guest with the same key. It prints the sub each time.
//
//	go run ./examples/keypair-guest -url http://127.0.0.1:8080
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/idstream/idstream/tokens"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "idstream base URL")
	clientID := flag.String("client-id", "idstream-dev", "client_id")
	keyFile := flag.String("key-file", "device-key.json", "where the device keeps its private key (mode 0600)")
	flag.Parse()
	res, err := run(context.Background(), http.DefaultClient, *base, *clientID, *keyFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keypair-guest:", err)
		os.Exit(1)
	}
	fmt.Printf("sub=%s is_anonymous=%v first_use=%v\n", res.Sub, res.IsAnonymous, res.FirstUse)
}

// Result is what one run learned.
type Result struct {
	Sub         string
	IsAnonymous bool
	FirstUse    bool
}

// loadOrCreateKey reads the device key, or makes one (P-256, ES256) and
// stores it with mode 0600.
func loadOrCreateKey(path string) (*jose.JSONWebKey, bool, error) {
	raw, err := os.ReadFile(path)
	if err == nil {
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(raw); err != nil {
			return nil, false, fmt.Errorf("read %s: %w", path, err)
		}
		return &k, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, err
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, false, err
	}
	k := &jose.JSONWebKey{Key: priv, KeyID: "device-" + strings.ReplaceAll(uuid.NewString(), "-", ""), Algorithm: string(jose.ES256)}
	raw, err = k.MarshalJSON()
	if err != nil {
		return nil, false, err
	}
	// O_EXCL: never overwrite a key another run just made.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return nil, false, err
	}
	return k, true, f.Close()
}

func run(ctx context.Context, hc *http.Client, base, clientID, keyFile string) (Result, error) {
	key, first, err := loadOrCreateKey(keyFile)
	if err != nil {
		return Result{}, err
	}
	base = strings.TrimRight(base, "/")
	// 1. A single-use challenge.
	var ch struct {
		Result struct {
			Token string `json:"token"`
		} `json:"result"`
	}
	if err := call(ctx, hc, http.MethodPost, base+"/oauth2/challenge", "application/json", `{"purpose":"anonymous_request"}`, "", &ch); err != nil {
		return Result{}, fmt.Errorf("challenge: %w", err)
	}
	// 2. Sign it; the public key goes in the header on first use only.
	jwt, err := tokens.SignAnonymousRequest(tokens.DeviceRequest{Key: key.Key, Algorithm: jose.ES256, KeyID: key.KeyID,
		IncludeJWK: first, Challenge: ch.Result.Token, Action: "auth", IssuedAt: time.Now()})
	if err != nil {
		return Result{}, err
	}
	// 3. Exchange it for tokens.
	form := url.Values{"grant_type": {"urn:authgear:params:oauth:grant-type:anonymous-request"}, "client_id": {clientID}, "jwt": {jwt}}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := call(ctx, hc, http.MethodPost, base+"/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), "", &tok); err != nil {
		return Result{}, fmt.Errorf("token: %w", err)
	}
	// 4. Who am I?
	var info struct {
		Sub         string `json:"sub"`
		IsAnonymous bool   `json:"is_anonymous"`
	}
	if err := call(ctx, hc, http.MethodGet, base+"/oauth2/userinfo", "", "", tok.AccessToken, &info); err != nil {
		return Result{}, fmt.Errorf("userinfo: %w", err)
	}
	return Result{Sub: info.Sub, IsAnonymous: info.IsAnonymous, FirstUse: first}, nil
}

func call(ctx context.Context, hc *http.Client, method, u, contentType, body, bearer string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %d: %s", u, resp.StatusCode, raw)
	}
	return json.Unmarshal(raw, out)
}
