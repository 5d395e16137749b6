#!/usr/bin/env bash
# Format, clippy (every target, with and without shuttle, and core with `metrics`) and the docs, warnings denied; the
# semantic mutants still apply.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --release -- -D warnings
# Debug too: the lock-order check (sync/lockdep.rs) is compiled in debug builds only.
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy -p pagecore-verify --features shuttle --all-targets --release -- -D warnings
cargo clippy -p pagecore --features metrics --all-targets --release -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc -p pagecore --no-deps --features metrics
# The semantic mutants (SPEC.md §10) must still apply where their sites now are.
bash bench/semantic-mutants/check-apply.sh
