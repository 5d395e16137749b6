#!/usr/bin/env bash
# loom: every scenario of SPEC.md §6, exhaustive up to preemption bound LOOM_MAX_PREEMPTIONS
# (default 5); the arbitration scenarios and the newer ones are capped at 3 in the test file, the
# eight largest at 4 and the mapping scenarios at 2 (PAGECORE_LOOM_UNCAPPED=1 lifts the caps).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-5}
RUSTFLAGS="--cfg pagecore_loom" cargo test -p pagecore-verify --release --target-dir target/loom \
    --test loom_scenarios -- --nocapture --test-threads 2
