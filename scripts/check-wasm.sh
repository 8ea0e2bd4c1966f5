#!/usr/bin/env bash
# Checks that the protocol crate builds for the browser (wasm32-unknown-unknown).
#
# getrandom 0.4 selects its browser backend through its `wasm_js` crate feature alone
# (enabled by our `js` feature); unlike getrandom 0.3 it needs no
# `--cfg getrandom_backend="wasm_js"` RUSTFLAGS, so none are set here.
set -euo pipefail

cd "$(dirname "$0")/.."

TARGET=wasm32-unknown-unknown

if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "check-wasm: installing the $TARGET target"
    rustup target add "$TARGET"
fi

cargo build -p mte-relay-protocol --target "$TARGET" --no-default-features --features js "$@"
echo "check-wasm: mte-relay-protocol builds for $TARGET"
