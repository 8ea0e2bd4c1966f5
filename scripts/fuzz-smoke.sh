#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a short, bounded time; fails on any crash.
#
#   scripts/fuzz-smoke.sh              # 20 s per target
#   FUZZ_SECONDS=300 scripts/fuzz-smoke.sh
#
# libFuzzer needs a nightly toolchain. Without one this script says so and succeeds,
# so that it can sit in a pipeline that may lack nightly; `cargo test` still replays
# every seed corpus through the same target bodies (sdk/protocol/tests/fuzz_corpus.rs).
set -euo pipefail

cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"

if ! rustup toolchain list | grep -q nightly; then
    echo "fuzz-smoke: no nightly toolchain installed; skipping (install one with" \
        "\`rustup toolchain install nightly\` to run the fuzz targets)"
    exit 0
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz-smoke: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

target_dir_args=()
if [[ -n "${CARGO_TARGET_DIR:-}" ]]; then
    target_dir_args=(--target-dir "$CARGO_TARGET_DIR/fuzz")
fi

targets=$(cargo +nightly fuzz list --fuzz-dir fuzz)
cargo +nightly fuzz build --fuzz-dir fuzz "${target_dir_args[@]}"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

failed=()
for target in $targets; do
    seeds="fuzz/corpus/$target"
    if [[ ! -d "$seeds" ]] || [[ -z "$(ls -A "$seeds")" ]]; then
        echo "fuzz-smoke: $target has no seed corpus in $seeds" >&2
        failed+=("$target")
        continue
    fi
    # New inputs go to the scratch directory (the first one); the committed seeds stay
    # untouched. A crash leaves its input in fuzz/artifacts/<target>/.
    mkdir -p "$scratch/$target"
    echo "fuzz-smoke: $target for ${SECONDS_PER_TARGET}s"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "${target_dir_args[@]}" "$target" \
        "$scratch/$target" "$seeds" -- \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz-smoke: FAILED: ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz-smoke: every target ran ${SECONDS_PER_TARGET}s without a crash"
