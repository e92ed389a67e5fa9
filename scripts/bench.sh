#!/usr/bin/env bash
# Runs the figures of BENCHMARKS.md: each scenario three times against a
# fresh server (new data directory, new database idstream_bench), on this
# machine's loopback only. Takes about five minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/idstream
go build -o "$bin" ./cmd/idstream
db=postgres://postgres@127.0.0.1:5432/idstream_bench?sslmode=disable
export IDSTREAM_ADDR=127.0.0.1:18080 IDSTREAM_NATS_PORT=-1 DATABASE_URL=$db
# All load comes from one address: keep the rate limits on (their checks are
# part of the measured path) but out of the way.
export IDSTREAM_SIGNUP_RATE_LIMIT=1000000000/1s IDSTREAM_CHALLENGE_RATE_LIMIT=1000000000/1s
export IDSTREAM_SIGNIN_IP_RATE_LIMIT=1000000000/1s IDSTREAM_SIGNIN_LOGIN_ID_RATE_LIMIT=1000000000/1s
url=http://$IDSTREAM_ADDR

fresh() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idstream_bench WITH (FORCE)"
  IDSTREAM_DATA_DIR=$(mktemp -d) "$bin" serve 2>/dev/null &
  pid=$!
  for _ in $(seq 1 50); do curl -fs "$url/healthz" >/dev/null && return; sleep 0.2; done
  echo "server did not start" >&2; exit 1
}
trap '[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null' EXIT

for run in 1 2 3; do
  echo "== run $run: signup, 64 clients";  fresh; "$bin" bench signup --url "$url" -c 64 -d 10s
  echo "== run $run: signup, 128 clients"; fresh; "$bin" bench signup --url "$url" -c 128 -d 10s
  echo "== run $run: signup at 1800/s";    fresh; "$bin" bench signup --url "$url" -c 64 -d 10s --rate 1800
  echo "== run $run: key-pair re-login";   fresh; "$bin" bench keypair --url "$url" -c 32 -d 10s --devices 200
  echo "== run $run: key-pair re-login, DPoP RS256"; fresh; "$bin" bench keypair --url "$url" -c 32 -d 10s --devices 200 --dpop rs256
  echo "== run $run: key-pair re-login, DPoP ES256"; fresh; "$bin" bench keypair --url "$url" -c 32 -d 10s --devices 200 --dpop es256
  echo "== run $run: refresh, 32 clients"; fresh; "$bin" bench refresh --url "$url" -c 32 -d 10s
  echo "== run $run: mixed, 32 clients";   fresh; "$bin" bench mixed --url "$url" -c 32 -d 10s
  echo "== run $run: promotion";           fresh; "$bin" bench promote --url "$url" -c 8 -d 10s
done
go test ./password -run XXX -bench Argon2 -benchtime 30x
