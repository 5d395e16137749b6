#!/usr/bin/env bash
# cargo-fuzz (nightly; installs cargo-fuzz if missing): builds every target, then runs each for
# PAGECORE_FUZZ_SECONDS (default 60) from a scratch copy of its committed corpus. A crash leaves
# an artifact under fuzz/artifacts/ and fails. `bash ci/fuzz.sh codec` runs one target.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(codec ops schedule programs)
(cd fuzz && cargo +nightly fuzz build && cargo +nightly fuzz build --features schedule schedule \
    && cargo +nightly fuzz build --features schedule programs)
for target in "${targets[@]}"; do
    echo "-- fuzz: $target for ${PAGECORE_FUZZ_SECONDS:-60} s"
    features=()
    case "$target" in schedule | programs) features=(--features schedule) ;; esac
    # A scratch copy of the committed corpus: what the run adds is not committed by CI.
    rm -rf "target/fuzz-corpus/$target" && mkdir -p "target/fuzz-corpus/$target"
    cp fuzz/corpus/"$target"/* "target/fuzz-corpus/$target/" 2>/dev/null || true
    (cd fuzz && cargo +nightly fuzz run "${features[@]}" "$target" "../target/fuzz-corpus/$target" -- \
        -max_total_time="${PAGECORE_FUZZ_SECONDS:-60}" -max_len=1024 2>&1 | grep -E '^(#[0-9]+ +DONE|Done|==|SUMMARY)' || true)
    # libFuzzer's exit status: a crash leaves an artifact and fails the stage.
    if ls fuzz/artifacts/"$target"/* >/dev/null 2>&1; then
        echo "fuzz target $target found a failure: fuzz/artifacts/$target"; exit 1
    fi
done
