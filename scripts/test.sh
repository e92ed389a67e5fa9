#!/usr/bin/env bash
# Runs idstream's whole test suite on a fresh machine: makes sure PostgreSQL
# is up, installs what the browser tests need (Debian's chromium, the npm
# packages pinned in e2e/browser/package-lock.json), then runs
#   go test -count=1 ./...
# and then every fuzz target for 10 s (scripts/fuzz.sh).
# Extra arguments go to go test (e.g. -run TestName, -v).
set -euo pipefail
cd "$(dirname "$0")/.."

# PostgreSQL at 127.0.0.1:5432 (user postgres, trust auth).
if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  echo "test.sh: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
  for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
fi
psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
  || psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test"

# Headless Chromium for the browser tests.
if ! command -v chromium >/dev/null 2>&1; then
  echo "test.sh: installing chromium"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi

# The unmodified @authgear/web SDK and playwright-core, from the lock file.
if [ -f e2e/browser/package-lock.json ]; then
  if [ ! -d e2e/browser/node_modules ] || [ e2e/browser/package-lock.json -nt e2e/browser/node_modules/.package-lock.json ]; then
    echo "test.sh: npm ci in e2e/browser"
    (cd e2e/browser && npm ci --no-audit --no-fund --loglevel=error)
  fi
fi

go test -count=1 -timeout 30m "$@" ./...

# With no arguments (the whole suite, as CI runs it): every fuzz target for
# a short time on top of its seed corpus.
if [ "$#" -eq 0 ]; then
  ./scripts/fuzz.sh "${IDSTREAM_FUZZ_TIME:-10s}"
fi
