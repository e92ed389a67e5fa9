package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"testing"
)

// FreePort returns a loopback TCP port that was free a moment ago, for a
// server a test starts (and restarts) on a port it must know in advance.
// It is taken below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range): a port the kernel hands out for
// ":0" listeners and outgoing connections, as every other test does, could
// be taken by one of them between this check and the server's bind, or
// while the server is down between two starts.
func FreePort(t testing.TB) int {
	t.Helper()
	low := 32768
	if raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(raw), &lo, &hi); err == nil && lo > 12000 {
			low = lo
		}
	}
	for range 200 {
		port := 10000 + rand.IntN(low-10000)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	t.Fatal("testenv: no free port below the ephemeral range")
	return 0
}
