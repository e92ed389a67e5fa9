// Package faults holds idstream's fault-injection tests: real processes
// (nats-server built from the Go module, idstream, a private PostgreSQL)
// killed and restarted under load, on loopback only, each bounded in time.
// They prove that whatever was acknowledged is kept and whatever failed
// failed cleanly.
package faults
