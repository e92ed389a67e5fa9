package load

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/idstream/idstream/config"
	"github.com/idstream/idstream/testenv"
)

// TestSoak runs the soak mode for a few seconds against a test node: every
// operation of the mix succeeds at least once, nothing fails, and the
// report carries the server's memory and projection lag.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak runs for seconds")
	}
	n := testenv.StartNode(t, testenv.StartNATS(t), testenv.NodeOptions{Configure: func(c *config.Config) {
		testenv.CheapHashes(c)
		// Every promotion of the load comes from one address, as
		// scripts/bench.sh's server allows.
		off := 0
		c.RateLimits.SignInPerIP.Burst = &off
	}})
	l, err := parseLoadFlags("soak", []string{"--url", n.URL, "--duration", "4s", "-c", "4"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The test node runs in this process: --pid reads our own RSS, and the
	// metrics are this process's.
	var out strings.Builder
	sum, err := runSoak(context.Background(), soakOptions{load: l, every: time.Second, pid: os.Getpid(),
		mix: "signup=3,refresh=3,userinfo=3,key_signup=2,key_login=3,promote=2", keepPerUser: 4}, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	for _, op := range soakOps {
		if sum.Counts[op] == 0 {
			t.Errorf("no successful %s", op)
		}
	}
	if len(sum.Errors) > 0 {
		t.Errorf("errors: %v", sum.Errors)
	}
	if sum.RSSStart == 0 || sum.RSSEnd == 0 {
		t.Errorf("no RSS: %+v", sum)
	}
	if lines := strings.Count(out.String(), "\n[") + strings.Count(out.String(), "\nsummary"); lines < 3 {
		t.Errorf("want interval lines and a summary, got:\n%s", out.String())
	}
	for _, want := range []string{"signup ", "key_login ", "promote ", "rss ", "lag "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestSoakHelpers(t *testing.T) {
	m := parseMetrics([]byte("# HELP x\nprocess_resident_memory_bytes 1.2345e+07\n" +
		"idstream_projection_lag_seconds_sum{projection=\"users\"} 1.5\nidstream_projection_lag_seconds_sum{projection=\"sessions\"} 0.5\n"))
	if m["process_resident_memory_bytes"] != 12345000 || m["idstream_projection_lag_seconds_sum"] != 2 {
		t.Errorf("parseMetrics: %v", m)
	}
	var h latHist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	if p := h.quantile(50); p < 480*time.Millisecond || p > 520*time.Millisecond {
		t.Errorf("p50 %s", p)
	}
	if p := h.quantile(99); p < 960*time.Millisecond || p > 1020*time.Millisecond {
		t.Errorf("p99 %s", p)
	}
	if got := failureCode(401, []byte(`{"error":"invalid_token","reason":"InvalidToken"}`), nil); got != "401 InvalidToken" {
		t.Errorf("oauth error: %q", got)
	}
	if got := failureCode(409, []byte(`{"error":{"name":"Invalid","reason":"LoginIDTaken"}}`), nil); got != "409 LoginIDTaken" {
		t.Errorf("api error: %q", got)
	}
	if _, err := parseMix("signup=1,bogus=2"); err == nil {
		t.Error("parseMix accepted an unknown op")
	}
}
