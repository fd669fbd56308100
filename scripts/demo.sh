#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), builds mafalda-node and runs one node on
# 127.0.0.1: it prints its peer id and listen addresses and runs until Ctrl-C.
# Extra arguments go to `mafalda-node run` (see `mafalda-node run --help`).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
./scripts/setup.sh
cargo build --locked -p mafalda-cli
exec ./target/debug/mafalda-node run "$@"
