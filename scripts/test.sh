#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh) and runs every check and test of the
# workspace: formatting, clippy with warnings denied, unit and integration tests
# (real mediasoup workers and real libp2p on 127.0.0.1), doc tests, and
# mediasoup's own Node test suite against clients/remote-mediasoup and real
# nodes (scripts/compat.sh).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
./scripts/setup.sh

step() { printf '\n== %s\n' "$*" >&2; }

step "format"
cargo fmt --all -- --check
step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast
else
  cargo test --workspace --locked --no-fail-fast
fi
step "doc tests"
cargo test --workspace --locked --doc
step "remote-mediasoup's unit tests"
(cd clients/remote-mediasoup && node --test test/unit/)
step "mediasoup's Node test suite against remote-mediasoup (workers in the app's node)"
cargo build -p mafalda-cli --locked
./scripts/compat.sh direct
step "mediasoup's Node test suite against remote-mediasoup (workers on another node)"
./scripts/compat.sh remote
