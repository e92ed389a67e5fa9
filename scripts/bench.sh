#!/usr/bin/env bash
# Runs the figures of BENCHMARKS.md: each scenario three times against a
# fresh server (new data directory, new database idstream_bench), on this
# machine's loopback only. Takes about five minutes.
#
#   scripts/bench.sh                          the figures of BENCHMARKS.md
#   scripts/bench.sh --supabase PATH [ROUNDS] side by side with Supabase Auth
#
# --supabase runs the same sign-up and refresh load against idstream and
# against a Supabase Auth (GoTrue) binary you built yourself (this project
# never contains it: e.g. `git clone https://github.com/supabase/auth &&
# cd auth && go build -o /tmp/supabase-auth .`), alternating, each run on
# fresh data, ROUNDS rounds (default 2), and prints the medians and ratios.
# Supabase Auth gets a role and database of its own (supabase_auth_admin,
# supabase_bench, on the same PostgreSQL; both dropped at the end), a pool
# of 32, anonymous sign-ins on and its rate limits out of the way.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/idstream
go build -o "$bin" ./cmd/idstream
db=postgres://postgres@127.0.0.1:5432/idstream_bench?sslmode=disable
export IDSTREAM_ADDR=127.0.0.1:18080 IDSTREAM_NATS_PORT=-1 DATABASE_URL=$db
# All load comes from one address: keep the rate limits on (their checks are
# part of the measured path) but out of the way.
export IDSTREAM_SIGNUP_RATE_LIMIT=1000000000/1s IDSTREAM_CHALLENGE_RATE_LIMIT=1000000000/1s
export IDSTREAM_SIGNIN_IP_RATE_LIMIT=1000000000/1s IDSTREAM_SIGNIN_LOGIN_ID_RATE_LIMIT=1000000000/1s IDSTREAM_AUTHORIZE_RATE_LIMIT=1000000000/1s
export IDSTREAM_REFRESH_RATE_LIMIT=1000000000/1s IDSTREAM_DPOP_PROOF_RATE_LIMIT=1000000000/1s
url=http://$IDSTREAM_ADDR

stop() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  pid=
}

fresh() {
  stop
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idstream_bench WITH (FORCE)"
  IDSTREAM_DATA_DIR=$(mktemp -d) "$bin" serve 2>/dev/null &
  pid=$!
  for _ in $(seq 1 50); do curl -fs "$url/healthz" >/dev/null && return; sleep 0.2; done
  echo "server did not start" >&2; exit 1
}
trap stop EXIT

# --- side by side with Supabase Auth -------------------------------------

sb_port=19999
sb_url=http://127.0.0.1:$sb_port
# A role and database of its own on this machine's PostgreSQL, made for the
# run and dropped after it (the role's password is only ever a loopback
# benchmark's).
sb_db=postgres://supabase_auth_admin:root@127.0.0.1:5432/supabase_bench?sslmode=disable

# drop_supabase removes the benchmark's database and role.
drop_supabase() {
  psql -h 127.0.0.1 -U postgres -d postgres -q \
    -c "DROP DATABASE IF EXISTS supabase_bench WITH (FORCE)" -c "DROP ROLE IF EXISTS supabase_auth_admin" || true
}

# fresh_supabase starts Supabase Auth on a new, migrated database.
fresh_supabase() {
  stop
  psql -h 127.0.0.1 -U postgres -d postgres -q -v ON_ERROR_STOP=1 <<'SQL'
DROP DATABASE IF EXISTS supabase_bench WITH (FORCE);
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'supabase_auth_admin') THEN
    CREATE ROLE supabase_auth_admin NOINHERIT CREATEROLE LOGIN PASSWORD 'root';
  END IF;
END $$;
CREATE DATABASE supabase_bench OWNER supabase_auth_admin;
SQL
  psql -h 127.0.0.1 -U postgres -d supabase_bench -q -v ON_ERROR_STOP=1 \
    -c "CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION supabase_auth_admin" \
    -c "ALTER ROLE supabase_auth_admin SET search_path = auth"
  local env=(GOTRUE_DB_DRIVER=postgres DATABASE_URL="$sb_db" GOTRUE_DB_DATABASE_URL="$sb_db" DB_NAMESPACE=auth
    GOTRUE_DB_MAX_POOL_SIZE=32 GOTRUE_JWT_SECRET=side-by-side-benchmark-secret-0123456789 GOTRUE_JWT_AUD=authenticated
    GOTRUE_JWT_ADMIN_ROLES=service_role API_EXTERNAL_URL="$sb_url" GOTRUE_API_HOST=127.0.0.1 PORT=$sb_port
    GOTRUE_SITE_URL=http://localhost:3000 GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED=true GOTRUE_MAILER_AUTOCONFIRM=true
    GOTRUE_RATE_LIMIT_ANONYMOUS_USERS=1000000000 GOTRUE_RATE_LIMIT_TOKEN_REFRESH=1000000000 GOTRUE_LOG_LEVEL=error)
  env "${env[@]}" "$supabase" migrate >/dev/null 2>&1 || { echo "supabase auth: migrate failed" >&2; exit 1; }
  env "${env[@]}" "$supabase" serve >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 50); do curl -fs "$sb_url/health" >/dev/null && return; sleep 0.2; done
  echo "supabase auth did not start" >&2; exit 1
}

# rate runs a bench command and prints its operations per second.
rate() {
  local out
  out=$("$@")
  echo "$out" >&2
  echo "$out" | sed -n 's/.* ok (\([0-9]*\)\/s).*/\1/p'
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%d\n", (v[NR/2]+v[NR/2+1])/2}'; }

side_by_side() {
  local rounds=$1
  local names=("sign-up, 32 connections" "sign-up, 128 connections" "refresh, 32 connections")
  local args=("signup -c 32 -d 10s" "signup -c 128 -d 10s" "refresh -c 32 -d 10s")
  local -a ours theirs
  for round in $(seq 1 "$rounds"); do
    for i in "${!args[@]}"; do
      echo "== round $round: ${names[$i]}: idstream" >&2
      fresh
      # shellcheck disable=SC2086
      ours[$i]="${ours[$i]:-} $(rate "$bin" bench ${args[$i]} --url "$url")"
      echo "== round $round: ${names[$i]}: Supabase Auth" >&2
      fresh_supabase
      # shellcheck disable=SC2086
      theirs[$i]="${theirs[$i]:-} $(rate "$bin" bench ${args[$i]} --url "$sb_url" --api supabase)"
    done
  done
  stop
  echo
  echo "| scenario | idstream | Supabase Auth | ratio | runs (idstream; Supabase) |"
  echo "|---|---|---|---|---|"
  for i in "${!args[@]}"; do
    local a b
    a=$(echo "${ours[$i]}" | median)
    b=$(echo "${theirs[$i]}" | median)
    printf '| %s | %s/s | %s/s | %s× | %s; %s |\n' "${names[$i]}" "$a" "$b" \
      "$(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "–" }')" "${ours[$i]# }" "${theirs[$i]# }"
  done
}

if [ "${1:-}" = "--supabase" ]; then
  supabase=${2:?"usage: scripts/bench.sh --supabase PATH-TO-SUPABASE-AUTH-BINARY [ROUNDS]"}
  [ -x "$supabase" ] || { echo "scripts/bench.sh: $supabase is not an executable" >&2; exit 2; }
  # The role and database are the script's own, made and dropped here:
  # never one that was there before (a real Supabase's role of that name).
  if [ -n "$(psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_roles WHERE rolname = 'supabase_auth_admin'")" ]; then
    echo "scripts/bench.sh: a role supabase_auth_admin exists on this PostgreSQL; the side by side makes and drops its own, so it will not touch that one" >&2
    exit 2
  fi
  trap 'stop; drop_supabase' EXIT
  side_by_side "${3:-2}"
  exit 0
fi

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
