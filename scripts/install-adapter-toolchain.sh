#!/usr/bin/env bash
# Installs what the adapter build and tests need, and only what is missing:
#   - the wasm32-wasip2 Rust target (guest components, built by
#     host/adapter-runtime/build.rs during `cargo test`);
#   - componentize-py from PyPI (the Python example adapter, adapters/py-path-guard).
# Idempotent: safe to run on every CI job.
set -euo pipefail

COMPONENTIZE_PY_VERSION="0.25.1"

if ! rustup target list --installed | grep -qx 'wasm32-wasip2'; then
    echo "installing Rust target wasm32-wasip2"
    rustup target add wasm32-wasip2
fi

installed_py_version() {
    python3 -m pip show componentize-py 2>/dev/null | awk '/^Version:/ {print $2}'
}

if [ "$(installed_py_version)" != "$COMPONENTIZE_PY_VERSION" ]; then
    echo "installing componentize-py ${COMPONENTIZE_PY_VERSION} from PyPI"
    python3 -m pip install --quiet "componentize-py==${COMPONENTIZE_PY_VERSION}"
fi

# pyenv installs console scripts behind shims that need a rehash to appear.
if command -v pyenv >/dev/null 2>&1; then
    pyenv rehash || true
fi

if ! command -v componentize-py >/dev/null 2>&1 && ! python3 -m componentize_py --version >/dev/null 2>&1; then
    echo "componentize-py is installed but not runnable; check your PATH" >&2
    exit 1
fi
echo "adapter toolchain ready"
