#!/usr/bin/env bash
# The long runs of the bounded-resource tests, through the real relay binary:
#   - the soak (a mixed load with the relay's RSS sampled), 10 minutes;
#   - the pairing flood (fresh client ids from one address while a normal client
#     pairs and sends), 60 seconds.
# CI runs both briefly as part of `cargo test --workspace` (60 s and 10 s).
#
#   scripts/soak.sh                       # 600 s soak, 60 s flood
#   SOAK_SECS=3600 FLOOD_SECS=300 scripts/soak.sh
#
# Each prints its figures (requests, pairings, RSS) on standard error; the soak's are
# recorded in docs/PERFORMANCE.md ("Soak").
set -euo pipefail
cd "$(dirname "$0")/.."

export SOAK_SECS="${SOAK_SECS:-600}"
export FLOOD_SECS="${FLOOD_SECS:-60}"

cargo test --workspace --test mte --no-run
cargo test --workspace --test mte a_mixed_load_leaves_relay_memory_flat -- --nocapture
cargo test --workspace --test mte a_pairing_flood_is_shed -- --nocapture
