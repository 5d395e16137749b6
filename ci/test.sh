#!/usr/bin/env bash
# README's test command (release; replays the codec and ops fuzz corpora), then the same in debug
# (overflow checks and debug assertions on: what a Rust user types first).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo test --workspace --release
cargo test --workspace
# The `metrics` feature: its recorder test and the doc examples that use it.
cargo test -p pagecore --release --features metrics --test metrics
cargo test -p pagecore --release --features metrics --doc report_metrics
