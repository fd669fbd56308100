#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), then runs the two benchmarks whose
# ratios say how close a node comes to what it is built on, and prints those
# ratios side by side at the end:
#   - node_paths: time to first packet consuming from another node / locally
#     (the target is <= 3x);
#   - forwarding_capacity: consumers one node forwards / bare mediasoup on the
#     same workers (the target is >= 0.95x).
# Both run in this one invocation, on the same machine state; their whole
# output is kept under target/bench-reports/<UTC time>/. Extra environment
# (FWD_WORKERS, FWD_QUICK, NODE_PATHS_SAMPLES, ...) reaches the benches.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
./scripts/setup.sh

out="target/bench-reports/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
for bench in node_paths forwarding_capacity; do
  printf '\n== %s (output in %s/%s.txt)\n' "$bench" "$out" "$bench" >&2
  cargo bench --locked -p mafalda-tests --bench "$bench" 2>&1 | tee "$out/$bench.txt"
done

ttfp="$(grep -h 'time-to-first-packet ratio' "$out/node_paths.txt" | tail -n 1 || true)"
forwarding="$(grep -h 'forwarding-capacity ratio' "$out/forwarding_capacity.txt" | tail -n 1 || true)"
{
  printf '\n== the two ratios, one run (%s, load average %s)\n' "$(date -u +%FT%TZ)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf '%s\n' "${ttfp:-time-to-first-packet ratio: not printed (see $out/node_paths.txt)}"
  printf '%s\n' "${forwarding:-forwarding-capacity ratio: not printed (see $out/forwarding_capacity.txt)}"
} | tee "$out/summary.txt"
[[ -n "$ttfp" && -n "$forwarding" ]]
