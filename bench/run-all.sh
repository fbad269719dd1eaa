#!/usr/bin/env bash
# Runs every scenario against the given systems (default: fjord pushpin nchan),
# the systems back to back for each scenario, and appends one JSON line per run
# to target/bench-results/<date>.jsonl (each line carries the 1-minute load
# average sampled during the run, `loadavg_1m`).
# Usage: bench/run-all.sh [system ...]
set -euo pipefail
cd "$(dirname "$0")/.."
systems=("$@")
[ ${#systems[@]} -eq 0 ] && systems=(fjord pushpin nchan)
cargo build --release -p fjord -p fjord-bench
bin=target/release/fjord-bench
mkdir -p target/bench-results
out="target/bench-results/$(date -u +%Y%m%dT%H%M%SZ).jsonl"
for args in "conns --conns 10000" "conns --conns 19000" "fanout" "fanout-many"; do
  for sys in "${systems[@]}"; do
    echo "== $(date -u +%H:%M:%S) $sys: $args (load average: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    # shellcheck disable=SC2086
    "$bin" $args --system "$sys" | tee -a "$out"
  done
done
echo "results: $out" >&2
