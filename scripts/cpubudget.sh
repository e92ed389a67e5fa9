#!/usr/bin/env bash
# Where the two cores go under one load scenario: a fresh server (new data
# directory, new database idstream_bench), `idstream bench ARGS…` against
# it, and the CPU seconds the server (idstream with its embedded NATS),
# the load generator and PostgreSQL (every postgres process) used over the
# run, with the machine's idle time, then per operation.
#
#   scripts/cpubudget.sh keypair -c 32 -d 10s --devices 200
#   scripts/cpubudget.sh signup -c 128 -d 10s
#
# BIN (default: a build of this checkout) is the idstream binary to run.
# Needs GNU time (Debian: apt-get install time).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: scripts/cpubudget.sh SCENARIO [bench flags…]" >&2; exit 2; }
bin=${BIN:-}
if [ -z "$bin" ]; then
  bin=$(mktemp -d)/idstream
  go build -o "$bin" ./cmd/idstream
fi
export IDSTREAM_ADDR=127.0.0.1:18080 IDSTREAM_NATS_PORT=-1
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/idstream_bench?sslmode=disable
export IDSTREAM_SIGNUP_RATE_LIMIT=1000000000/1s IDSTREAM_CHALLENGE_RATE_LIMIT=1000000000/1s
export IDSTREAM_SIGNIN_IP_RATE_LIMIT=1000000000/1s IDSTREAM_SIGNIN_LOGIN_ID_RATE_LIMIT=1000000000/1s
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg() { local t=0; for p in $(pgrep -u postgres || true); do t=$((t + $(ticks "$p"))); done; echo "$t"; }
idle() { awk '/^cpu /{print $5}' /proc/stat; }
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idstream_bench WITH (FORCE)"
IDSTREAM_DATA_DIR=$(mktemp -d) "$bin" serve 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.2; done
s0=$(ticks $pid) p0=$(pg) i0=$(idle)
out=$( { /usr/bin/env time -f 'LOADGEN %U %S' "$bin" bench "$@" --url http://127.0.0.1:18080; } 2>&1 )
s1=$(ticks $pid) p1=$(pg) i1=$(idle)
echo "$out" | grep -v '^LOADGEN'
ops=$(echo "$out" | grep -oE '[0-9]+ ok' | head -1 | cut -d' ' -f1)
lg=$(echo "$out" | awk '/^LOADGEN/{print $2+$3}')
awk -v s=$(( s1 - s0 )) -v p=$(( p1 - p0 )) -v i=$(( i1 - i0 )) -v lg="$lg" -v hz="$hz" -v n="$ops" 'BEGIN {
  printf "cpu seconds: server %.2f, load generator %.2f, postgres %.2f, idle %.2f\n", s/hz, lg, p/hz, i/hz
  if (n > 0) printf "per operation (%d): server %.3f ms, load generator %.3f ms, postgres %.3f ms\n", n, s/hz*1000/n, lg*1000/n, p/hz*1000/n
}'
