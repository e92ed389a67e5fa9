package load

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
)

// The HTTP APIs the sign-up and refresh scenarios speak: idstream's own
// (the Authgear SDKs' wire) and Supabase Auth's (GoTrue), so that
// scripts/bench.sh --supabase runs the same load against both servers on
// one machine and reports the ratios (issue 22). Supabase Auth is never part
// of this project: the script runs a binary the operator builds.
const (
	apiIdstream = "idstream"
	apiSupabase = "supabase"
)

// checkAPI validates --api for a scenario.
func (l *loadFlags) checkAPI() error {
	switch {
	case l.api == apiIdstream:
		return nil
	case l.api != apiSupabase:
		return fmt.Errorf("bench: --api %q: want %s or %s", l.api, apiIdstream, apiSupabase)
	case !l.supabaseOK:
		return errors.New("bench: --api supabase is for the signup and refresh scenarios")
	}
	// Supabase Auth has no idstream read model to watch for lag.
	l.dbURL = ""
	return nil
}

// guestSignup is the request of one anonymous sign-up (refresh-token mode).
func (l *loadFlags) guestSignup() (endpoint string, body []byte) {
	if l.api == apiSupabase {
		// POST /signup without email or phone: an anonymous user
		// (GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED=true).
		return l.target + "/signup", []byte(`{}`)
	}
	body, _ = json.Marshal(map[string]string{"client_id": l.clientID, "session_type": "refresh_token"})
	return l.target + "/api/anonymous_user/signup", body
}

// refreshRequest is the request of one refresh-token exchange.
func (l *loadFlags) refreshRequest(token string) (endpoint, contentType, body string) {
	if l.api == apiSupabase {
		b, _ := json.Marshal(map[string]string{"refresh_token": token})
		return l.target + "/token?grant_type=refresh_token", "application/json", string(b)
	}
	return l.target + "/oauth2/token", "application/x-www-form-urlencoded",
		url.Values{"grant_type": {"refresh_token"}, "client_id": {l.clientID}, "refresh_token": {token}}.Encode()
}

// parseSession reads the tokens of a sign-up or refresh answer: idstream's
// sign-up wraps them in "result" (the Authgear SDK's shape); its token
// endpoint and Supabase Auth answer them at the top level.
func parseSession(raw []byte) (benchSession, error) {
	var out struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		Result       struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		} `json:"result"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return benchSession{}, err
	}
	if out.Result.AccessToken != "" {
		return benchSession{access: out.Result.AccessToken, refresh: out.Result.RefreshToken}, nil
	}
	if out.AccessToken == "" {
		return benchSession{}, errors.New("bench: the answer carries no access token")
	}
	return benchSession{access: out.AccessToken, refresh: out.RefreshToken}, nil
}
