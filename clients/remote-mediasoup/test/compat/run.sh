#!/usr/bin/env bash
# mediasoup's Node test suite against remote-mediasoup and one real node:
# starts `mafalda-node run` on a free loopback port (identity in a temp dir),
# waits for /healthz, runs jest with MAFALDA_NODE_URL and HAS_VIRTUAL_PIDS=1
# (the node runs workers as threads: tests that kill a worker's pid are
# skipped), prints the counts and stops the node.
#   MAFALDA_NODE_BIN  the node binary (default: target/debug/mafalda-node of
#                     CARGO_TARGET_DIR, else of the workspace)
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
node_pid=""
cleanup() {
  if [ -n "$node_pid" ] && kill -0 "$node_pid" 2>/dev/null; then
    kill -INT "$node_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$node_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$node_pid" 2>/dev/null
    wait "$node_pid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
api="127.0.0.1:$port"

extra=()
# Newer nodes bound the workers per ROPE connection; the suite opens a few at once.
if "$bin" run --help 2>/dev/null | grep -q -- '--app-workers'; then
  extra+=(--app-workers 16)
fi

say "starting $bin on $api (log: $tmp/node.log)"
"$bin" run --api "$api" --listen /ip4/127.0.0.1/tcp/0 --identity "$tmp/identity" \
  "${extra[@]}" >"$tmp/node.log" 2>&1 &
node_pid=$!

ready=""
for _ in $(seq 200); do
  if ! kill -0 "$node_pid" 2>/dev/null; then break; fi
  if node -e 'fetch(process.argv[1]).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))' "http://$api/healthz"; then
    ready=1; break
  fi
  sleep 0.1
done
if [ -z "$ready" ]; then
  say "the node did not become healthy; its log:"
  cat "$tmp/node.log" >&2
  exit 2
fi

results="$tmp/jest.json"
(
  cd "$here" &&
  MAFALDA_NODE_URL="ws://$api/v1/rope" HAS_VIRTUAL_PIDS=1 \
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
if [ -n "${COMPAT_NODE_LOG:-}" ]; then cp "$tmp/node.log" "$COMPAT_NODE_LOG"; fi
exit "$status"
