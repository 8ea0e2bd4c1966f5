#!/usr/bin/env bash
# Build the Python adapter into a component: build.sh <output.wasm>
# Needs componentize-py (scripts/install-adapter-toolchain.sh installs it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:?usage: build.sh <output.wasm>}"
PYTHONDONTWRITEBYTECODE=1 componentize-py \
    -d "$here/../../wit" \
    -w mte-relay:adapter/filter@0.1.0 \
    componentize -p "$here" app -o "$out"
