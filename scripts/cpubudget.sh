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
built=
if [ -z "$bin" ]; then
  built=$(mktemp -d)
  bin=$built/idstream
  go build -o "$bin" ./cmd/idstream
fi
export IDSTREAM_ADDR=127.0.0.1:18080 IDSTREAM_NATS_PORT=-1
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/idstream_bench?sslmode=disable
export IDSTREAM_SIGNUP_RATE_LIMIT=1000000000/1s IDSTREAM_CHALLENGE_RATE_LIMIT=1000000000/1s
export IDSTREAM_SIGNIN_IP_RATE_LIMIT=1000000000/1s IDSTREAM_SIGNIN_LOGIN_ID_RATE_LIMIT=1000000000/1s IDSTREAM_AUTHORIZE_RATE_LIMIT=1000000000/1s
export IDSTREAM_REFRESH_RATE_LIMIT=1000000000/1s IDSTREAM_DPOP_PROOF_RATE_LIMIT=1000000000/1s
hz=$(getconf CLK_TCK)
ticks() { awk '{print $14+$15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
# PostgreSQL: per process, the CPU since the first sample (a process that
# started during the run counts from zero; one that exited is not counted:
# the server's pool keeps its connections for the whole run).
declare -A pg0
pgstart() { for p in $(pgrep -u postgres || true); do pg0[$p]=$(ticks "$p"); done; }
pgdelta() { local t=0; for p in $(pgrep -u postgres || true); do t=$((t + $(ticks "$p") - ${pg0[$p]:-0})); done; echo "$t"; }
idle() { awk '/^cpu /{print $5}' /proc/stat; }
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idstream_bench WITH (FORCE)"
if curl -fs http://127.0.0.1:18080/healthz >/dev/null 2>&1; then
  echo "scripts/cpubudget.sh: something already answers on 127.0.0.1:18080" >&2; exit 1
fi
data=$(mktemp -d)
IDSTREAM_DATA_DIR=$data "$bin" serve 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$data" ${built:+"$built"}' EXIT
up=
for _ in $(seq 1 50); do curl -fs http://127.0.0.1:18080/healthz >/dev/null && up=1 && break; sleep 0.2; done
[ -n "$up" ] || { echo "scripts/cpubudget.sh: the server did not start" >&2; exit 1; }
s0=$(ticks $pid) i0=$(idle)
pgstart
status=0
out=$( { /usr/bin/env time -f 'LOADGEN %U %S' "$bin" bench "$@" --url http://127.0.0.1:18080; } 2>&1 ) || status=$?
s1=$(ticks $pid) p=$(pgdelta) i1=$(idle)
echo "$out" | grep -v '^LOADGEN' || true
[ "$status" -eq 0 ] || { echo "scripts/cpubudget.sh: the benchmark failed ($status)" >&2; exit "$status"; }
ops=$(echo "$out" | grep -oE '[0-9]+ ok' | head -1 | cut -d' ' -f1 || true)
lg=$(echo "$out" | awk '/^LOADGEN/{print $2+$3}')
awk -v s=$(( s1 - s0 )) -v p="$p" -v i=$(( i1 - i0 )) -v lg="$lg" -v hz="$hz" -v n="$ops" 'BEGIN {
  printf "cpu seconds: server %.2f, load generator %.2f, postgres %.2f, idle %.2f\n", s/hz, lg, p/hz, i/hz
  if (n + 0 > 0) printf "per operation (%d): server %.3f ms, load generator %.3f ms, postgres %.3f ms\n", n, s/hz*1000/n, lg*1000/n, p/hz*1000/n
}'
