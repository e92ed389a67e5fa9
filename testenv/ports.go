package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server a test starts (and restarts) on a port it must know in advance.
// It is taken outside the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): a port the kernel hands out for
// ":0" listeners and outgoing connections, as every other test does, could
// be taken by one of them between this check and the server's bind, or
// while the server is down between two starts. A port is handed out once
// per test process.
func FreePort(t testing.TB) int {
	t.Helper()
	lo, hi := 32768, 60999
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		_, _ = fmt.Sscan(string(raw), &lo, &hi)
	}
	// Below the range if there is room, else above it.
	from, to := 10000, lo
	if to-from < 2000 {
		from, to = hi+1, 65536
	}
	if to-from < 2000 {
		t.Fatalf("testenv: no room outside the ephemeral port range %d-%d", lo, hi)
	}
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 200 {
		port := from + rand.IntN(to-from)
		if handedOut.ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		handedOut.ports[port] = true
		return port
	}
	t.Fatal("testenv: no free port outside the ephemeral range")
	return 0
}
