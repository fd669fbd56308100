#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh), builds mafalda-node and runs the local
# swarm demo: three nodes on 127.0.0.1 in a line (A <- B <- C); a generated RTP
# stream is published at A and taken out at C; the path and packet counts are
# printed each second until Ctrl-C. Extra arguments go to `mafalda-node demo`
# (e.g. --seconds 10). To run a single node instead: ./target/debug/mafalda-node run
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
./scripts/setup.sh
cargo build --locked -p mafalda-cli
RUST_LOG="${RUST_LOG:-warn}" exec ./target/debug/mafalda-node demo "$@"
