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
for t in "${targets[@]}"; do
  set -- $t
  echo "fuzz: $2 ($1) for $time"
  go test "$1" -run '^$' -fuzz "^$2\$" -fuzztime "$time" -timeout 0 -parallel 1 2>&1 | tail -n 2
done
