#!/usr/bin/env bash
# The main job: a 3-second run, a 2-second run through mappings, a small eviction-policy study and a trace replay.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo run --release -p pagesim -- --seconds 3 --quiet
# The same through mappings (two of each object, sharing its pages): plain loads and stores, faults served through userfaultfd.
cargo run --release -p pagesim -- --mmap --mappings-per-object 2 --seconds 2 --quiet
cargo run --release -p pagesim -- study --pages 512 --ops 20000 --out target/ci-study
# A small trace (one id per line, generated here) replayed at three sizes under every policy.
mkdir -p target/ci-replay
awk 'BEGIN { srand(7); for (i = 0; i < 50000; i++) { r = rand(); print int(r * r * r * 5000) } }' \
    > target/ci-replay/trace.txt
cargo run --release -p pagesim -- replay target/ci-replay/trace.txt --format txt \
    --sizes 1%,10%,50% --quiet --out target/ci-replay
