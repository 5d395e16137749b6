#!/usr/bin/env bash
# shuttle: every scenario of SPEC.md §6 under PAGECORE_SHUTTLE_ITERS (default 10,000) random and
# as many PCT schedules; the committed schedule corpus; the linearizability checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo test -p pagecore-verify --features shuttle --release --test shuttle_scenarios \
    --test schedule_corpus --test linearizability -- --nocapture --test-threads 2
