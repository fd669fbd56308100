#!/usr/bin/env bash
# mediasoup's own Node test suite (@mafalda-sfu/mediasoup-node-tests 3.14.7,
# 175 tests under jest) against clients/remote-mediasoup and real nodes.
#
#   scripts/compat.sh direct   one node; the app's workers live in it
#   scripts/compat.sh remote   two nodes: the app connects to A, its workers
#                              live in B (createWorker {node: B}), every call
#                              and event relayed over the swarm
#
# Fails when a test fails that clients/remote-mediasoup/test/compat/
# known-failures.tsv does not list for this mode (each listed with its
# reason), when a listed one passes (so the list stays true), or when fewer
# than 150 pass. Needs scripts/setup.sh's npm packages and a built node
# (MAFALDA_NODE_BIN, default target/debug/mafalda-node). Everything listens on
# 127.0.0.1. Prints the counts and the suite's wall time.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode="${1:-direct}"
[[ "$mode" == direct || "$mode" == remote ]] || { echo "usage: $0 direct|remote" >&2; exit 2; }
bin="${MAFALDA_NODE_BIN:-$repo/target/debug/mafalda-node}"
suite="$repo/clients/remote-mediasoup/test/compat"
known="$suite/known-failures.tsv"
say() { printf 'compat (%s): %s\n' "$mode" "$*" >&2; }

[[ -x "$bin" ]] || { say "no node binary at $bin (cargo build -p mafalda-cli)"; exit 2; }
[[ -d "$suite/node_modules" ]] || { say "npm packages missing: run scripts/setup.sh"; exit 2; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a node named $1 (API and swarm on free loopback ports), bootstrapping
# from $2 if given; sets api_$1 and peer_$1.
start_node() {
  local name="$1" bootstrap="${2:-}" api swarm_port args
  api="127.0.0.1:$(free_port)"
  swarm_port="$(free_port)"
  # The suite opens many workers one after another; the node's per-session
  # caps are raised so that only its own behaviour is measured.
  args=(run --api "$api" --listen "/ip4/127.0.0.1/tcp/$swarm_port" --identity "$tmp/$name.key"
        --app-workers 16 --worker-log-level none)
  [[ -n "$bootstrap" ]] && args+=(--bootstrap "$bootstrap")
  "$bin" "${args[@]}" >"$tmp/$name.log" 2>&1 &
  pids+=("$!")
  for _ in $(seq 200); do
    if curl -fsS "http://$api/healthz" >/dev/null 2>&1; then break; fi
    sleep 0.1
  done
  local peer
  peer="$(curl -fsS "http://$api/v1/status" | python3 -c 'import json,sys; print(json.load(sys.stdin)["peerId"])')" \
    || { say "node $name did not start; its log:"; cat "$tmp/$name.log" >&2; exit 2; }
  printf -v "api_$name" '%s' "$api"
  printf -v "peer_$name" '%s' "$peer"
  printf -v "addr_$name" '%s' "/ip4/127.0.0.1/tcp/$swarm_port/p2p/$peer"
}

start_node a
env_extra=()
if [[ "$mode" == remote ]]; then
  start_node b "$addr_a"
  # B is joined once A lists it among its peers.
  for _ in $(seq 100); do
    curl -fsS "http://$api_a/v1/status" | grep -q "$peer_b" && break
    sleep 0.1
  done
  env_extra=(MAFALDA_WORKER_NODE="$peer_b")
  say "app at node A ($peer_a), workers at node B ($peer_b)"
fi

# The client's own checks against the real node first (bad calls, error
# classes, sessions kept apart).
if [[ "$mode" == direct ]]; then
  (cd "$repo/clients/remote-mediasoup" && MAFALDA_NODE_URL="ws://$api_a/v1/rope" timeout 120 node --test test/node/) \
    || { say "the client's checks against the node failed"; exit 1; }
fi

results="$tmp/jest.json"
started=$(date +%s)
set +e
(cd "$suite" && env MAFALDA_NODE_URL="ws://$api_a/v1/rope" HAS_VIRTUAL_PIDS=1 "${env_extra[@]}" \
  npx --no-install jest --runInBand --json --outputFile="$results" >"$tmp/jest.out" 2>&1)
set -e
took=$(( $(date +%s) - started ))
[[ -f "$results" ]] || { say "jest wrote no results:"; tail -50 "$tmp/jest.out" >&2; exit 1; }
# Keep jest's full results (failure messages) where asked.
[[ -n "${COMPAT_RESULTS:-}" ]] && cp "$results" "$COMPAT_RESULTS"

node - "$results" "$known" "$mode" "$took" <<'JS'
const fs = require('fs');
const [results, knownFile, mode, took] = process.argv.slice(2);
const r = JSON.parse(fs.readFileSync(results, 'utf8'));
const known = new Map();
for (const line of fs.readFileSync(knownFile, 'utf8').split('\n')) {
  if (!line.trim() || line.startsWith('#')) continue;
  const [modes, name, reason] = line.split('\t');
  if (modes === 'both' || modes === mode) known.set(name, reason);
}
const failed = [];
for (const file of r.testResults) {
  for (const t of file.assertionResults) if (t.status === 'failed') failed.push(t.fullName);
  if (file.status === 'failed' && file.assertionResults.length === 0) failed.push(file.message.split('\n')[0]);
}
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`compat (${mode}): ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped ` +
  `of ${r.numTotalTests} in ${took} s`);
let bad = false;
for (const name of failed) {
  if (known.has(name)) console.log(`compat (${mode}): known failure: ${name} (${known.get(name)})`);
  else { console.log(`compat (${mode}): UNEXPECTED FAILURE: ${name}`); bad = true; }
}
for (const name of known.keys()) {
  if (!failed.includes(name)) { console.log(`compat (${mode}): listed as failing but passed: ${name}`); bad = true; }
}
if (r.numPassedTests < 150) { console.log(`compat (${mode}): fewer than 150 passed`); bad = true; }
process.exit(bad ? 1 : 0);
JS
