#!/usr/bin/env bash
# ThreadSanitizer (nightly, -Zsanitizer=thread with a std built the same way: installs rust-src
# if missing) on the real-thread stress tests. A data race report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
rustup component list --toolchain nightly --installed | grep -q '^rust-src' \
    || rustup component add --toolchain nightly rust-src
target=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
cargo +nightly test -Zbuild-std --target "$target" --target-dir target/tsan -p pagecore-tests \
    --test stress --test client_stress --test fork_stress --test user_bugs -- --test-threads 1
