#!/usr/bin/env bash
# Random concurrent programs over the whole API under shuttle (PAGECORE_PROGRAMS programs, default
# 40, each under PAGECORE_PROGRAM_SCHEDULES random + PCT seeded schedules, default 150), and
# their fuzz corpus replayed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo test -p pagecore-verify --features shuttle --release --test programs --test programs_corpus \
    -- --nocapture
