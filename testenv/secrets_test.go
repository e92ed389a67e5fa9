package testenv

import (
	"encoding/json"
	"log/slog"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

func TestScanLogsFindsAndRedactsSecrets(t *testing.T) {
	c, err := CaptureLogs(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		refresh  = "7d8f3c4e-0000-4000-8000-000000000000.SECRETPARTsecretpartSECRETPARTsecretpart123"
		password = "pass word <&> 42"
		jwt      = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
	)
	RecordSecret("refresh token", refresh)
	RecordSecret("password", password)
	RecordSecret("too short", "short")
	RecordSecret("digits", "1234567890")
	jwk, _ := json.Marshal(map[string]string{"kty": "EC", "d": "cHJpdmF0ZS1rZXktbWF0ZXJpYWwtMDEyMzQ1Njc4OQ"})
	RecordJWKPrivate("signing key", jwk)
	if got := SecretCounts(); got["refresh token"] != 1 || got["refresh token (secret part)"] != 1 || got["password"] != 1 ||
		got["signing key"] != 1 || got["too short"] != 0 || got["digits"] != 0 {
		t.Fatalf("recorded: %v", got)
	}
	log := slog.New(slog.NewJSONHandler(logWriter(&SyncBuffer{}), nil))
	log.Info("clean", "n", 1234567890, "word", "short")
	log.Info("leak", "token", refresh)
	log.Info("leak", "half", strings.SplitN(refresh, ".", 2)[1])
	log.Info("leak", "pw", password) // JSON-escaped in the log
	log.Info("leak", "url", "/cb?x="+url.QueryEscape(password))
	log.Info("shape", "at", jwt)
	log.Info("shape", "key", string(jwk))
	log.Info("shape", "pem", "-----BEGIN PRIVATE KEY-----")
	log.Info("shape", "hash", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$a2V5")
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if c.Lines() != 9 {
		t.Fatalf("captured %d lines, want 9", c.Lines())
	}
	findings, err := ScanLogs(c.Path(), 0)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[int][]string{}
	for _, f := range findings {
		lines[f.Line] = append(lines[f.Line], f.Kind)
		for _, s := range []string{"SECRETPART", "pass word", "pass\\u0026", "c2lnbmF0dXJl", "eyJzdWIi", "cHJpdmF0ZS1rZXkt", "a2V5"} {
			if strings.Contains(f.Excerpt, s) {
				t.Errorf("excerpt shows %q: %s", s, f)
			}
		}
	}
	if len(lines[1]) != 0 {
		t.Errorf("clean line flagged: %v", lines[1])
	}
	for line := 2; line <= 9; line++ {
		if len(lines[line]) == 0 {
			t.Errorf("line %d: nothing found (%v)", line, findings)
		}
	}
	// Nothing is recorded once the capture is off.
	RecordSecret("late", "late-secret-value")
	if SecretCounts()["late"] != 0 {
		t.Fatal("a secret was recorded without a capture")
	}
}
