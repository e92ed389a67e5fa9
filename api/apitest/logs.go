package apitest

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"html"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/idstream/idstream/testenv"
)

// Main is the TestMain of every api test package: it captures the log of
// every node the package's tests and
// benchmarks start into one file, and after the run fails it if any secret
// the tests saw or made (tokens, cookies, passwords, codes, challenges,
// private keys, the admin key), or anything shaped like a JWT, a PEM or JWK
// private key or a password hash, is in that log.
//
// When the whole package ran (no -run filter), the check must not be
// vacuous: it also requires a minimum number of log lines, of secrets, and
// at least one secret of every kind its Floors name.
func Main(m *testing.M, f Floors) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "idstream-api-logs-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "log capture:", err)
		os.Exit(2)
	}
	capture, err := testenv.CaptureLogs(filepath.Join(dir, "nodes.log"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "log capture:", err)
		os.Exit(2)
	}
	testenv.RecordSecret("admin API key", AdminKey)

	code := m.Run()

	if err := capture.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "log capture:", err)
		os.Exit(2)
	}
	if !checkCapturedLogs(capture, f, code == 0 && wholePackageRan()) && code == 0 {
		code = 1
	}
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "captured node logs kept in", capture.Path())
	}
	os.Exit(code)
}

// wholePackageRan reports whether every test ran (no -run or -skip filter).
func wholePackageRan() bool {
	for _, name := range []string{"test.run", "test.skip"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" {
			return false
		}
	}
	return true
}

// Floors are a package's non-vacuity floors for a whole-package run: a
// broken capture or recorder gives far fewer log lines and secrets than the
// package's tests make (each package says what its full run makes).
type Floors struct {
	LogLines, Secrets int
	// Kinds must each have been recorded at least once in a full run (a
	// subset of SecretKinds).
	Kinds []string
}

// SecretKinds are the kinds of secret the kit records, as the api tests
// made them before they were split by package (all of them were required
// of that one package's full run).
var SecretKinds = []string{
	"access token", "refresh token", "session cookie", "flow binding cookie", "password",
	"promotion code", "authorization code", "PKCE verifier", "challenge", "key-pair JWT",
	"CSRF token", "flow id", "device private key (PEM)", "device private key (JWK private member)",
	"signing key (JWK private member)", "admin API key",
}

func checkCapturedLogs(capture *testenv.LogCapture, f Floors, full bool) bool {
	ok := true
	findings, err := testenv.ScanLogs(capture.Path(), 50)
	if err != nil {
		fmt.Fprintln(os.Stderr, "log scan:", err)
		return false
	}
	if len(findings) > 0 {
		ok = false
		fmt.Fprintf(os.Stderr, "FAIL: secrets in the node logs (%d findings shown, at most 50):\n", len(findings))
		for _, f := range findings {
			fmt.Fprintln(os.Stderr, "  ", f)
		}
	}
	counts := testenv.SecretCounts()
	total := 0
	var summary []string
	for k, n := range counts {
		total += n
		summary = append(summary, fmt.Sprintf("%s=%d", k, n))
	}
	sort.Strings(summary)
	lines := capture.Lines()
	if testing.Verbose() || !ok {
		fmt.Fprintf(os.Stderr, "log scan: %d log lines, %d secrets (%s)\n", lines, total, strings.Join(summary, ", "))
	}
	if full {
		if f.LogLines <= 0 || f.Secrets <= 0 || len(f.Kinds) == 0 {
			ok = false
			fmt.Fprintln(os.Stderr, "FAIL: log scan: the package sets no floors: the check would be vacuous")
		}
		if lines < f.LogLines {
			ok = false
			fmt.Fprintf(os.Stderr, "FAIL: log scan: only %d log lines captured (want at least %d): is the capture wired?\n", lines, f.LogLines)
		}
		if total < f.Secrets {
			ok = false
			fmt.Fprintf(os.Stderr, "FAIL: log scan: only %d secrets recorded (want at least %d)\n", total, f.Secrets)
		}
		for _, k := range f.Kinds {
			if counts[k] == 0 {
				ok = false
				fmt.Fprintf(os.Stderr, "FAIL: log scan: no %s was recorded: the scan would not see one leak\n", k)
			}
		}
	}
	return ok
}

// Secret fields of request bodies (JSON and forms) and of JSON answers.
var (
	requestSecretFields = map[string]string{
		"password": "password", "new_password": "password", "refresh_token": "refresh token", "token": "revoked token", "code": "authorization code",
		"code_verifier": "PKCE verifier", "jwt": "key-pair JWT", "csrf_token": "CSRF token",
	}
	responseSecretFields = map[string]string{
		"access_token": "access token", "refresh_token": "refresh token", "id_token": "ID token",
		"promotion_code": "promotion code", "token": "challenge",
	}
	csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)
)

// recordExchange records every secret of a request the tests sent and of
// its answer.
func RecordExchange(req *http.Request, body string, r Response) {
	if a := authBearer(req.Header.Get("Authorization")); a != "" {
		kind := "admin API key"
		if strings.HasPrefix(a, "eyJ") {
			kind = "access token"
		}
		testenv.RecordSecret(kind, a)
	}
	q := req.URL.Query()
	if hint, err := url.Parse(q.Get("login_hint")); err == nil {
		testenv.RecordSecret("promotion code", hint.Query().Get("promotion_code"))
		testenv.RecordSecret("key-pair JWT", hint.Query().Get("jwt"))
	}
	mt, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		var m map[string]any
		_ = json.Unmarshal([]byte(body), &m)
		recordFields(m, requestSecretFields)
	case "application/x-www-form-urlencoded":
		if form, err := url.ParseQuery(body); err == nil {
			for k, kind := range requestSecretFields {
				for _, v := range form[k] {
					testenv.RecordSecret(kind, v)
				}
			}
		}
	}

	recordFields(r.Body, responseSecretFields)
	recordFields(r.Result(), responseSecretFields)
	for _, ck := range (&http.Response{Header: r.Header}).Cookies() {
		kind := "cookie " + ck.Name
		switch {
		case ck.Name == "idstream_session":
			kind = "session cookie"
		case strings.HasPrefix(ck.Name, "idstream_flow_"):
			kind = "flow binding cookie"
		}
		testenv.RecordSecret(kind, ck.Value)
	}
	if loc, err := url.Parse(r.Header.Get("Location")); err == nil {
		testenv.RecordSecret("authorization code", loc.Query().Get("code"))
		if id, ok := strings.CutPrefix(loc.Path, "/flows/"); ok {
			testenv.RecordSecret("flow id", id)
		}
	}
	for _, m := range csrfField.FindAllStringSubmatch(r.Raw, -1) {
		testenv.RecordSecret("CSRF token", html.UnescapeString(m[1]))
	}
}

func authBearer(h string) string {
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

func recordFields(m map[string]any, fields map[string]string) {
	for k, kind := range fields {
		if s, ok := m[k].(string); ok {
			testenv.RecordSecret(kind, s)
		}
	}
}

// recordDeviceKey records a device's private key, as PEM and as JWK.
func RecordDeviceKey(key any) {
	if der, err := x509.MarshalPKCS8PrivateKey(key); err == nil {
		b64 := strings.Join(strings.Split(strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))), "\n")[1:], "")
		b64 = strings.TrimSuffix(b64, "-----END PRIVATE KEY-----")
		// The whole key and its first PEM line (what a log would show first).
		testenv.RecordSecret("device private key (PEM)", b64)
		testenv.RecordSecret("device private key (PEM)", b64[:min(64, len(b64))])
	}
	if raw, err := (jose.JSONWebKey{Key: key}).MarshalJSON(); err == nil {
		testenv.RecordJWKPrivate("device private key (JWK private member)", raw)
	}
}
