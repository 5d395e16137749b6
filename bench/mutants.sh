#!/usr/bin/env bash
# Mutation testing of pagecore's core/src with cargo-mutants (issue 5): every mutant is built in
# the `mutants` profile and tested with pagecore's own tests, the model-based, stress and
# fuzz-corpus tests (tests/) and the race scenarios on real threads (verify/); see
# .cargo/mutants.toml. Results land in mutants.out/ (caught.txt, missed.txt, timeout.txt).
#
#   bash bench/mutants.sh                      # all of core/src (~1,800 mutants)
#   bash bench/mutants.sh core/src/pages.rs    # some files
#   MUTANTS_JOBS=8 bash bench/mutants.sh       # parallel builds on a bigger machine
#   bash bench/mutants.sh -- --iterate         # skip what the last run caught or found unviable
#
# Too slow for every CI run (about 20 s a mutant on 2 cores: ~10 hours for the whole crate);
# CI runs the suites that kill them. See verify/README.md, "Mutation testing".
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
args=(--package pagecore --timeout "${MUTANTS_TIMEOUT:-20}" -j "${MUTANTS_JOBS:-1}")
# Files until `--`; what follows goes to cargo-mutants as is (e.g. `-- --iterate` to skip the
# mutants an earlier run caught).
while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; args+=("$@"); break; fi
    args+=(-f "$1"); shift
done
exec cargo mutants "${args[@]}"
