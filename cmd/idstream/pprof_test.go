package main

import "testing"

// The profiling listener takes loopback addresses only: it asks for no
// credential.
func TestPprofAddrIsLoopbackOnly(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:6060": true, "[::1]:6060": true, "localhost:6060": true, "127.9.9.9:6060": true,
		":6060": false, "0.0.0.0:6060": false, "[::]:6060": false, "192.168.1.5:6060": false,
		"example.com:6060": false, "127.0.0.1": false, "localhost.example.com:6060": false,
	} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("%q: loopback %v, want %v", addr, got, want)
		}
	}
}
