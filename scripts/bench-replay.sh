#!/usr/bin/env bash
# Replay figures of BENCHMARKS.md, with the command operators run:
# `idstream projections replay NAME` against `idstream serve` (embedded
# NATS), over a log of GUESTS web guests (user created + session started:
# 2 events each) written by `idstream seed guests`. Fresh data directory and
# database (idstream_replay_bench, dropped at the end), loopback only. Prints
# every replay's line and the median events/s of each projection.
#
#   scripts/bench-replay.sh [GUESTS=500000] [ROUNDS=3]
set -euo pipefail
cd "$(dirname "$0")/.."
guests=${1:-500000}
rounds=${2:-3}
dir=$(mktemp -d)
bin=$dir/idstream
go build -o "$bin" ./cmd/idstream
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/idstream_replay_bench?sslmode=disable
export IDSTREAM_ADDR=127.0.0.1:18091 IDSTREAM_NATS_PORT=14334 IDSTREAM_DATA_DIR=$dir/data
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idstream_replay_bench WITH (FORCE)" 2>/dev/null
"$bin" serve 2>"$dir/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS idstream_replay_bench WITH (FORCE)" 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -fs "http://$IDSTREAM_ADDR/healthz" >/dev/null && break; sleep 0.2; done
# Guests seen a minute ago: the reaper leaves them be, so the log holds
# exactly what was seeded while the replays run.
"$bin" seed guests -n "$guests" --age 1m 2>/dev/null
for _ in $(seq 1 900); do
  lag=$("$bin" projections status --json 2>/dev/null | python3 -c 'import json,sys; print(sum(s["lag_events"] for s in json.load(sys.stdin)))')
  [ "$lag" = 0 ] && break
  sleep 1
done
out=$dir/replays.txt
for round in $(seq 1 "$rounds"); do
  for p in users sessions identities; do
    "$bin" projections replay "$p" 2>/dev/null | tee -a "$out"
  done
done
echo "median events/s over $rounds rounds:"
for p in users sessions identities; do
  grep "^replayed $p:" "$out" | sed 's/.* s, \([0-9]*\) events\/s.*/\1/' | sort -n |
    awk -v p="$p" '{v[NR]=$1} END {m = NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "  %-10s %d (min %d, max %d)\n", p, m, v[1], v[NR]}'
done
