#!/usr/bin/env bash
# Runs every fuzz target for a while (default 10s each; use 10m or more in
# development):   scripts/fuzz.sh [duration]
# Seed corpora live in each package's testdata/fuzz/<Target>/ and in f.Add
# calls; plain `go test` runs them as regression tests.
set -euo pipefail
cd "$(dirname "$0")/.."
time="${1:-10s}"
targets=(
  "./tokens FuzzParseAnonymousRequest"
  "./loginid FuzzParse"
  "./domain FuzzDecodeEvent"
  "./api FuzzRequestDecoders"
)
# run_target PKG TARGET: 0 on success; on failure prints the whole output.
# The engine minimizes every input that finds new code, for up to 60 s by
# default, and counts nothing meanwhile; a minimization still running when
# the fuzz time is up fails the run ("context deadline exceeded") with no
# failing input. -fuzzminimizetime 2s keeps those short (a failing input is
# still saved, if less minimized).
run_target() {
  local out; out=$(mktemp)
  if go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$time" -fuzzminimizetime 2s -timeout 0 -parallel 1 >"$out" 2>&1; then
    tail -n 2 "$out"; rm -f "$out"; return 0
  fi
  cat "$out"; rm -f "$out"; return 1
}
for t in "${targets[@]}"; do
  set -- $t
  echo "fuzz: $2 ($1) for $time"
  corpus="$1/testdata/fuzz/$2"
  before=$(ls "$corpus" 2>/dev/null | wc -l)
  if ! run_target "$1" "$2"; then
    # A failing input is written to the package's testdata: that is a real
    # failure. A fuzzing engine that stopped without one (a worker lost
    # under load, a minimization past the deadline) is run once more, and
    # must pass then.
    if [ "$(ls "$corpus" 2>/dev/null | wc -l)" != "$before" ]; then
      echo "fuzz: $2 found a failing input (saved in $corpus)"; exit 1
    fi
    echo "fuzz: $2 stopped without a failing input; running it again"
    run_target "$1" "$2" || exit 1
  fi
done
