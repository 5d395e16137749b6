#!/usr/bin/env bash
# Mutation testing of pagecore's core/src with cargo-mutants (issue 5): every mutant is built in
# the `mutants` profile and tested with pagecore's own tests, the model-based, stress and
# fuzz-corpus tests (tests/) and the race scenarios on real threads (verify/); see
# .cargo/mutants.toml. Results land in mutants.out/ (caught.txt, missed.txt, timeout.txt).
#
#   bash bench/mutants.sh                      # all of core/src (~1,800 mutants)
#   bash bench/mutants.sh core/src/frames/reclaim.rs  # some files
#   MUTANTS_JOBS=8 bash bench/mutants.sh       # parallel builds on a bigger machine
#   bash bench/mutants.sh -- --iterate         # skip what the last run caught or found unviable
#   MUTANTS_ONLY=mutants.out/missed.txt bash bench/mutants.sh   # only the mutants named there
#
# Too slow for every CI run (about 13 s a mutant on 2 cores: some 7 hours for the whole crate);
# CI runs the suites that kill them. See verify/README.md, "Mutation testing".
#
# Survivors against the race scenarios under shuttle (which the pass above cannot build: the
# shuttle feature swaps the sync facade for every test in the build). Each mutant named in
# MUTANTS_ONLY (default mutants.out/missed.txt) is rebuilt with pagecore-verify's `shuttle`
# feature and killed if a scenario fails within PAGECORE_SHUTTLE_ITERS (default here 1,000)
# random + PCT schedules each; results go to target/mutants-shuttle/mutants.out:
#
#   MUTANTS_SUITE=shuttle bash bench/mutants.sh
#
# The same under loom (a spin or a lost wake-up that only loom's exhaustive schedules reach),
# at preemption bound LOOM_MAX_PREEMPTIONS (default here 3), for the scenarios whose test names
# contain MUTANTS_TESTS (default: all of them, which at bound 3 is some 15 minutes a mutant);
# results go to target/mutants-loom/mutants.out:
#
#   MUTANTS_ONLY=survivors.txt MUTANTS_SUITE=loom MUTANTS_TESTS=c11 bash bench/mutants.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo-mutants does not create the output directory's parent (target/ on a fresh checkout).
mkdir -p target
command -v cargo-mutants >/dev/null || cargo install cargo-mutants --locked
only=()
if [ "${MUTANTS_SUITE:-}" = shuttle ] || [ "${MUTANTS_SUITE:-}" = loom ]; then
    MUTANTS_ONLY=${MUTANTS_ONLY:-mutants.out/missed.txt}
fi
if [ -n "${MUTANTS_ONLY:-}" ]; then
    while IFS= read -r name; do
        [ -n "$name" ] || continue
        # One anchored pattern per mutant, with the regex metacharacters escaped.
        only+=(-F "^$(printf '%s' "$name" | sed 's/[]\\.+*?(){}|[^$]/\\&/g')\$")
    done <"$MUTANTS_ONLY"
    [ ${#only[@]} -gt 0 ] || { echo "no mutants named in $MUTANTS_ONLY"; exit 0; }
fi
if [ "${MUTANTS_SUITE:-}" = shuttle ]; then
    export PAGECORE_SHUTTLE_ITERS=${PAGECORE_SHUTTLE_ITERS:-1000}
    # The baseline would run the mutated package's tests (cargo-mutants' rule), which have no
    # shuttle scenarios: skip it (the main pass and CI run the unmutated suites).
    exec cargo mutants --no-config --package pagecore --profile mutants --baseline skip \
        --test-package pagecore-verify --features shuttle \
        --cargo-test-arg=--test=shuttle_scenarios --timeout "${MUTANTS_TIMEOUT:-120}" \
        -j "${MUTANTS_JOBS:-1}" -o target/mutants-shuttle "${only[@]}"
fi
if [ "${MUTANTS_SUITE:-}" = loom ]; then
    export LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-3}
    export RUSTFLAGS="${RUSTFLAGS:-} --cfg pagecore_loom"
    exec cargo mutants --no-config --package pagecore --profile mutants --baseline skip \
        --test-package pagecore-verify --cargo-test-arg=--test=loom_scenarios \
        --cargo-test-arg=-- --cargo-test-arg="${MUTANTS_TESTS:-}" \
        --timeout "${MUTANTS_TIMEOUT:-900}" -j "${MUTANTS_JOBS:-1}" -o target/mutants-loom "${only[@]}"
fi
args=(--package pagecore --timeout "${MUTANTS_TIMEOUT:-20}" -j "${MUTANTS_JOBS:-1}" "${only[@]}")
# Files until `--`; what follows goes to cargo-mutants as is (e.g. `-- --iterate` to skip the
# mutants an earlier run caught).
while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; args+=("$@"); break; fi
    args+=(-f "$1"); shift
done
exec cargo mutants "${args[@]}"
