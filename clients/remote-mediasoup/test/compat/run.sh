#!/usr/bin/env bash
# mediasoup's Node test suite against remote-mediasoup and one real node:
# starts `mafalda-node run` on a free loopback port (identity in a temp dir),
# waits for /healthz, runs jest with MAFALDA_NODE_URL and HAS_VIRTUAL_PIDS=1
# (the node runs workers as threads: tests that kill a worker's pid are
# skipped), prints the counts and stops the node.
#   MAFALDA_NODE_BIN  the node binary (default: target/debug/mafalda-node of
#                     CARGO_TARGET_DIR, else of the workspace)
#   COMPAT_REMOTE_WORKERS=1  start a second node joined to the first and run
#                     every worker there (MAFALDA_WORKER_NODE = its peer id):
#                     the app talks to the first node, which relays
#   extra arguments   go to jest (e.g. -t 'Router')
# Exit status: jest's (0 when every test ran passed).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
bin="${MAFALDA_NODE_BIN:-${CARGO_TARGET_DIR:-$repo/target}/debug/mafalda-node}"

say() { printf 'compat: %s\n' "$*" >&2; }

[ -x "$bin" ] || { say "no node binary at $bin (build it: cargo build -p mafalda-cli --bin mafalda-node, or set MAFALDA_NODE_BIN)"; exit 2; }
[ -d "$here/node_modules" ] || { say "run scripts/setup.sh first (npm packages missing in $here/node_modules)"; exit 2; }
[ -d "$here/../../node_modules" ] || { say "run scripts/setup.sh first (npm packages missing in clients/remote-mediasoup/node_modules)"; exit 2; }

tmp="$(mktemp -d)"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do
    kill -INT "$pid" 2>/dev/null
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

extra=()
# Newer nodes bound the workers per ROPE connection; the suite opens a few at once.
if "$bin" run --help 2>/dev/null | grep -q -- '--app-workers'; then
  extra+=(--app-workers 16)
fi

# start_node NAME PORT [ARGS...]: a node with its API on 127.0.0.1:PORT, its
# log in $tmp/NAME.log; waits until PATH answers 200 (/healthz, or /readyz).
start_node() {
  local name="$1" port="$2" path="$3"
  shift 3
  say "starting $name: $bin on 127.0.0.1:$port (log: $tmp/$name.log)"
  "$bin" run --api "127.0.0.1:$port" --listen /ip4/127.0.0.1/tcp/0 --identity "$tmp/$name.key" \
    "${extra[@]}" "$@" >"$tmp/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://127.0.0.1:$port$path"; then
      return 0
    fi
    sleep 0.1
  done
  say "$name did not come up; its log:"
  cat "$tmp/$name.log" >&2
  exit 2
}

port="$(free_port)"
api="127.0.0.1:$port"
start_node node "$port" /healthz

worker_node=""
if [ -n "${COMPAT_REMOTE_WORKERS:-}" ]; then
  addr="$(grep -o '/ip4/127.0.0.1/tcp/[0-9]*/p2p/[A-Za-z0-9]*' "$tmp/node.log" | head -1)"
  for _ in $(seq 50); do
    [ -n "$addr" ] && break
    sleep 0.1
    addr="$(grep -o '/ip4/127.0.0.1/tcp/[0-9]*/p2p/[A-Za-z0-9]*' "$tmp/node.log" | head -1)"
  done
  [ -n "$addr" ] || { say "no listen address in the first node's log"; exit 2; }
  start_node workers "$(free_port)" /readyz --bootstrap "$addr"
  worker_node="$(grep -o 'local_peer_id=[A-Za-z0-9]*' "$tmp/workers.log" | head -1 | cut -d= -f2)"
  [ -n "$worker_node" ] || { say "no peer id in the second node's log"; exit 2; }
  say "workers run on $worker_node"
fi

results="$tmp/jest.json"
(
  cd "$here" &&
  MAFALDA_NODE_URL="ws://$api/v1/rope" HAS_VIRTUAL_PIDS=1 MAFALDA_WORKER_NODE="$worker_node" \
    npx --no-install jest --runInBand --json --outputFile="$results" "$@"
)
status=$?

if [ -f "$results" ]; then
  node - "$results" <<'JS'
const r = require(process.argv[2]);
const failed = [];
for (const file of r.testResults) {
  for (const t of file.assertionResults) {
    if (t.status === 'failed') failed.push(t.fullName);
  }
  if (file.status === 'failed' && file.assertionResults.length === 0) {
    failed.push(`${file.name}: ${String(file.message).split('\n')[0]}`);
  }
}
console.log(`compat: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ` +
  `${r.numPendingTests + r.numTodoTests} skipped, ${r.numTotalTests} total`);
for (const name of failed) console.log(`compat: FAILED ${name}`);
JS
  if [ -n "${COMPAT_KEEP_RESULTS:-}" ]; then cp "$results" "$COMPAT_KEEP_RESULTS"; fi
else
  say "jest wrote no results"
fi
if [ -n "${COMPAT_NODE_LOG:-}" ]; then cat "$tmp"/*.log > "$COMPAT_NODE_LOG"; fi
exit "$status"
