package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode"

	"github.com/idstream/idstream/node"
)

// A test binary can prove that no secret reaches the logs: CaptureLogs makes
// every node started afterwards write its log to one file as well, tests
// call RecordSecret with every token, password, code and key they see or
// make, and ScanLogs, after the run, looks for each of them (and for things
// that look like JWTs, PEM or JWK private keys, password hashes) in that
// file. Nothing is recorded while no capture is on, so packages that do not
// capture pay nothing.

// MinSecretLen is the shortest value RecordSecret keeps: shorter strings
// (and all-digit ones) would match ordinary log text by chance.
const MinSecretLen = 8

// LogCapture is the shared log sink of a test binary.
type LogCapture struct {
	mu    sync.Mutex
	path  string
	f     *os.File
	w     *bufio.Writer
	lines int
	err   error
}

var (
	captureMu sync.Mutex
	capture   *LogCapture

	secretsMu sync.Mutex
	secrets   = map[string]string{} // value -> kind
)

// CaptureLogs starts copying the log of every node started from now on
// into the file at path (created or truncated).
func CaptureLogs(path string) (*LogCapture, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	c := &LogCapture{path: path, f: f, w: bufio.NewWriterSize(f, 1<<20)}
	captureMu.Lock()
	capture = c
	captureMu.Unlock()
	return c, nil
}

// Write appends log records (each slog record is one Write of whole lines).
func (c *LogCapture) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil || c.f == nil {
		return len(p), nil // a node outliving the capture must not fail
	}
	for _, b := range p {
		if b == '\n' {
			c.lines++
		}
	}
	if _, err := c.w.Write(p); err != nil {
		c.err = err
	}
	return len(p), nil
}

// Lines is how many log lines were captured.
func (c *LogCapture) Lines() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lines
}

// Path is the capture file.
func (c *LogCapture) Path() string { return c.path }

// Stop ends the capture and flushes the file; later log lines are dropped.
func (c *LogCapture) Stop() error {
	captureMu.Lock()
	if capture == c {
		capture = nil
	}
	captureMu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.f == nil {
		return c.err
	}
	err := c.w.Flush()
	if cerr := c.f.Close(); err == nil {
		err = cerr
	}
	c.f = nil
	if c.err == nil {
		c.err = err
	}
	return c.err
}

// logWriter is where a node started now writes its log: its own buffer,
// and the capture if one is on.
func logWriter(own io.Writer) io.Writer {
	captureMu.Lock()
	defer captureMu.Unlock()
	if capture == nil {
		return own
	}
	return io.MultiWriter(own, capture)
}

func capturing() bool {
	captureMu.Lock()
	defer captureMu.Unlock()
	return capture != nil
}

// RecordSecret remembers a secret value of some kind ("access token",
// "password", ...) that must never appear in a log. It is a no-op while no
// capture is on, and for values too short or too plain to search for.
func RecordSecret(kind, value string) {
	if !capturing() || len(value) < MinSecretLen || strings.IndexFunc(value, func(r rune) bool { return !unicode.IsDigit(r) }) < 0 {
		return
	}
	secretsMu.Lock()
	defer secretsMu.Unlock()
	if _, ok := secrets[value]; !ok {
		secrets[value] = kind
	}
	// The secret half of an opaque token ("<session id>.<random>"), alone,
	// must not appear either.
	if id, rest, ok := strings.Cut(value, "."); ok && len(id) == 36 && len(rest) >= MinSecretLen && !strings.Contains(rest, ".") {
		if _, ok := secrets[rest]; !ok {
			secrets[rest] = kind + " (secret part)"
		}
	}
}

// RecordJWKPrivate records the private members of a JWK in JSON form.
func RecordJWKPrivate(kind string, jwk []byte) {
	var m map[string]any
	if json.Unmarshal(jwk, &m) != nil {
		return
	}
	for _, k := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if s, ok := m[k].(string); ok {
			RecordSecret(kind, s)
		}
	}
}

// SecretCounts is how many distinct secrets of each kind were recorded.
func SecretCounts() map[string]int {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	out := map[string]int{}
	for _, k := range secrets {
		out[k]++
	}
	return out
}

// recordSigningKeys records the private parts of every access-token signing
// key in the node's database.
func recordSigningKeys(t testing.TB, nd *node.Node) {
	if !capturing() {
		return
	}
	rows, err := nd.Pool.Query(context.Background(), `SELECT private_jwk::text FROM signing_keys`)
	if err != nil {
		t.Logf("secrets: cannot read signing keys: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var raw string
		if rows.Scan(&raw) == nil {
			RecordJWKPrivate("signing key (JWK private member)", []byte(raw))
		}
	}
}

// Finding is a secret, or something shaped like one, in a log line.
type Finding struct {
	Kind string
	Line int
	// Excerpt is the line with the secret redacted, shortened.
	Excerpt string
}

func (f Finding) String() string { return fmt.Sprintf("line %d: %s: %s", f.Line, f.Kind, f.Excerpt) }

// Shapes of secrets that need not have been recorded to be caught.
var secretShapes = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"JWT-shaped string", regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}(\.[A-Za-z0-9_-]*)?`)},
	{"PEM private key", regexp.MustCompile(`PRIVATE KEY`)},
	{"JWK private member", regexp.MustCompile(`\\*"(d|p|q|dp|dq|qi)\\*"\s*:\s*\\*"[A-Za-z0-9_-]{16,}`)},
	{"password hash", regexp.MustCompile(`\$argon2(id|i|d)?\$[^"\s\\]*`)},
}

type needle struct{ value, kind string }

// ScanLogs reads the capture file and reports every recorded secret (raw,
// JSON-escaped or URL-encoded) and every secret-shaped string in it, at
// most max findings (0: all).
func ScanLogs(path string, max int) ([]Finding, error) {
	// Index the needles by their first MinSecretLen bytes, so each log byte
	// costs one map look-up whatever the number of secrets.
	index := map[string][]needle{}
	secretsMu.Lock()
	for v, kind := range secrets {
		variants := map[string]bool{v: true, url.QueryEscape(v): true}
		if b, err := json.Marshal(v); err == nil {
			variants[strings.Trim(string(b), `"`)] = true
		}
		for s := range variants {
			index[s[:MinSecretLen]] = append(index[s[:MinSecretLen]], needle{s, kind})
		}
	}
	secretsMu.Unlock()
	for k := range index {
		sort.Slice(index[k], func(i, j int) bool { return len(index[k][i].value) > len(index[k][j].value) })
	}

	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var out []Finding
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		for i := 0; i+MinSecretLen <= len(line); i++ {
			for _, n := range index[line[i:i+MinSecretLen]] {
				if strings.HasPrefix(line[i:], n.value) {
					out = append(out, Finding{Kind: n.kind, Line: lineNo, Excerpt: excerpt(index, line, i, i+len(n.value), n.kind)})
					i += len(n.value) - 1
					break
				}
			}
			if max > 0 && len(out) >= max {
				return out, nil
			}
		}
		for _, s := range secretShapes {
			if loc := s.re.FindStringIndex(line); loc != nil {
				out = append(out, Finding{Kind: s.kind, Line: lineNo, Excerpt: excerpt(index, line, loc[0], loc[1], s.kind)})
			}
		}
		if max > 0 && len(out) >= max {
			return out, nil
		}
	}
	return out, sc.Err()
}

// excerpt redacts line[from:to] and keeps some context around it, itself
// redacted of any other secret.
func excerpt(index map[string][]needle, line string, from, to int, kind string) string {
	const ctx = 120
	start, end := max(0, from-ctx), min(len(line), to+ctx)
	left, right := line[start:from], line[to:end]
	// A cut through a token at either edge could show part of a secret.
	if start > 0 {
		left = strings.TrimLeftFunc(left, isTokenRune)
	}
	if end < len(line) {
		right = strings.TrimRightFunc(right, isTokenRune)
	}
	s := redact(index, left) + "[REDACTED " + kind + "]" + redact(index, right)
	if start > 0 {
		s = "…" + s
	}
	if end < len(line) {
		s += "…"
	}
	return s
}

func isTokenRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_.~+/=%", r)
}

func redact(index map[string][]needle, s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if i+MinSecretLen <= len(s) {
			hit := false
			for _, n := range index[s[i:i+MinSecretLen]] {
				if strings.HasPrefix(s[i:], n.value) {
					b.WriteString("[REDACTED " + n.kind + "]")
					i += len(n.value) - 1
					hit = true
					break
				}
			}
			if hit {
				continue
			}
		}
		b.WriteByte(s[i])
	}
	out := b.String()
	for _, sh := range secretShapes {
		out = sh.re.ReplaceAllString(out, "[REDACTED "+sh.kind+"]")
	}
	return out
}
