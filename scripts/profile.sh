#!/usr/bin/env bash
# Profiles the server under one load scenario: a fresh server (new data
# directory, new database idstream_bench) with its pprof listener on
# loopback, `idstream bench ARGS…` against it, a CPU profile of 6 s taken
# from its fourth second, and the server's metrics after the run.
#
#   scripts/profile.sh keypair -c 32 -d 12s --devices 200
#   go tool pprof -top -cum "$OUT/idstream" "$OUT/cpu.prof"
#
# OUT (default: a new temporary directory) receives the binary, cpu.prof
# and metrics.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/profile.sh SCENARIO [bench flags…]" >&2; exit 2; }
out=${OUT:-$(mktemp -d)}
mkdir -p "$out"
go build -o "$out/idstream" ./cmd/idstream
export IDSTREAM_ADDR=127.0.0.1:18080 IDSTREAM_NATS_PORT=-1
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/idstream_bench?sslmode=disable
export IDSTREAM_SIGNUP_RATE_LIMIT=1000000000/1s IDSTREAM_CHALLENGE_RATE_LIMIT=1000000000/1s
export IDSTREAM_SIGNIN_IP_RATE_LIMIT=1000000000/1s IDSTREAM_SIGNIN_LOGIN_ID_RATE_LIMIT=1000000000/1s IDSTREAM_AUTHORIZE_RATE_LIMIT=1000000000/1s
export IDSTREAM_REFRESH_RATE_LIMIT=1000000000/1s IDSTREAM_DPOP_PROOF_RATE_LIMIT=1000000000/1s
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idstream_bench WITH (FORCE)"
IDSTREAM_PPROF_ADDR=127.0.0.1:16060 IDSTREAM_DATA_DIR=$(mktemp -d) "$out/idstream" serve 2>"$out/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
( sleep 4; curl -s -o "$out/cpu.prof" "http://127.0.0.1:16060/debug/pprof/profile?seconds=6" ) &
prof=$!
"$out/idstream" bench "$@" --url http://127.0.0.1:18080
wait $prof
curl -s http://127.0.0.1:18080/metrics >"$out/metrics.txt"
echo "profile: $out/cpu.prof (go tool pprof -top -cum $out/idstream $out/cpu.prof); metrics: $out/metrics.txt"
