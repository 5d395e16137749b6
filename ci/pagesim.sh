#!/usr/bin/env bash
# The main job: a 3-second run and a small eviction-policy study.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo run --release -p pagesim -- --seconds 3 --quiet
cargo run --release -p pagesim -- study --pages 512 --ops 20000 --out target/ci-study
