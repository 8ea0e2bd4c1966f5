#!/usr/bin/env bash
# The whole MTE Relay test suite. Installs what it needs when it is missing, so it runs
# the same on a fresh machine as on a developer's: rustup targets, Debian packages, and
# the adapter toolchains (crates.io / npm / PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

apt_updated=""
need_debian() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    if [ -z "$apt_updated" ]; then
        $sudo apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

need_target() {
    rustup target list --installed | grep -qx "$1" || rustup target add "$1"
}

step "toolchains and packages"
need_target wasm32-wasip2
need_target wasm32-unknown-unknown
need_debian redis-server
bash scripts/install-adapter-toolchain.sh

step "workspace tests (cargo test --workspace)"
cargo test --workspace --all-targets
cargo test --workspace --doc

step "guest workspace (adapters/, sdk/adapter): native unit tests and clippy"
(cd adapters && cargo test --workspace && cargo clippy --workspace --all-targets -- -D warnings)

step "protocol crate builds for wasm32-unknown-unknown"
bash scripts/check-wasm.sh

step "fuzzers, briefly (needs a nightly toolchain)"
bash scripts/fuzz-smoke.sh

step "all suites passed"
