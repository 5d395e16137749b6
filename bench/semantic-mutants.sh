#!/usr/bin/env bash
# Semantic mutants (SPEC.md §10): hand-written protocol bugs, one site per patch, each with the
# test that should kill it. cargo-mutants replaces operators; these are the bugs a protocol
# change would plausibly bring: a skipped wake-up, a weakened publication (Release/Acquire to
# Relaxed), a missing re-check, a holder not asked to release, a pin not released on an error
# path.
#
#   bash bench/semantic-mutants.sh                       # every patch in bench/semantic-mutants/
#   bash bench/semantic-mutants.sh 001 017-foo.patch     # some (by number or file name)
#
# Each patch (a `git diff` against the repo root) names its killers in header lines before the
# diff, tried in order until one fails:
#
#   # killer: loom <test> [bound N]      loom_scenarios, one scenario (LOOM_MAX_PREEMPTIONS=N, 3)
#   # killer: shuttle <test>             shuttle_scenarios (PAGECORE_SHUTTLE_ITERS, 2000 here)
#   # killer: cargo test <args...>       any other test command (run with `timeout`)
#   # equivalent: <argument>             not run: no behaviour can tell (the argument says why)
#
# A mutant is applied in a scratch git worktree (target/semantic-mutants/tree, detached at the
# current HEAD, reset before every patch), never in this tree, so an interrupted run leaves
# nothing behind. A killer that fails (including a loom causality violation or deadlock) kills
# the mutant, and so does a plain `cargo test` killer that runs past SEMANTIC_TIMEOUT seconds
# (default 300: a hang, i.e. a lost wake-up); a loom or shuttle run past it is inconclusive
# (shown as `loom:timeout` after SURVIVED) and the next killer is tried; a patch that does not apply or build is reported as such. Builds share
# SEMANTIC_TARGET (default target/semantic-mutants/target) and use an incremental release
# profile without debug info (one rebuild of pagecore and the test crate per mutant, ~20 s).
#
# Keep SEMANTIC_TARGET apart from the target dirs of other checkouts of this workspace: cargo
# judges freshness by the sources' mtimes at the paths it last built from, and may hand a test
# in one checkout the binary built (with a mutant) in another.
#
# Prints a table: patch, killed-by (or SURVIVED / equivalent / unviable), seconds.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$root/bench/semantic-mutants
tree=${SEMANTIC_TREE:-$root/target/semantic-mutants/tree}
target=${SEMANTIC_TARGET:-$root/target/semantic-mutants/target}
limit=${SEMANTIC_TIMEOUT:-300}
logs=$root/target/semantic-mutants/logs
mkdir -p "$logs"
export CARGO_PROFILE_RELEASE_DEBUG=${CARGO_PROFILE_RELEASE_DEBUG:-0}
export CARGO_PROFILE_RELEASE_INCREMENTAL=${CARGO_PROFILE_RELEASE_INCREMENTAL:-true}
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=${CARGO_PROFILE_RELEASE_CODEGEN_UNITS:-16}

patches=()
if [ $# -eq 0 ]; then
    for p in "$dir"/*.patch; do patches+=("$p"); done
else
    for a in "$@"; do
        if [ -f "$a" ]; then patches+=("$(cd "$(dirname "$a")" && pwd)/$(basename "$a")")
        elif [ -f "$dir/$a" ]; then patches+=("$dir/$a")
        else
            m=("$dir/$a"-*.patch)
            [ -f "${m[0]}" ] || { echo "no patch $a" >&2; exit 2; }
            patches+=("${m[0]}")
        fi
    done
fi

head=$(git -C "$root" rev-parse HEAD)
if [ ! -e "$tree/.git" ]; then
    mkdir -p "$(dirname "$tree")"
    git -C "$root" worktree add -q --detach "$tree" "$head" || exit 2
fi
reset_tree() {
    git -C "$tree" checkout -q --detach -f "$head" && git -C "$tree" reset -q --hard "$head" &&
        git -C "$tree" clean -q -fd -e target
}
trap 'reset_tree' EXIT

# Runs killer `$1` (the text after "killer:") in the scratch tree. Exit status: 0 passed (did not
# kill), 1 failed (killed), 2 did not build, 124 timed out (killed).
run_killer() {
    local k=$1 kind rest name bound
    read -r kind rest <<<"$k"
    case $kind in
    loom)
        read -r name _ bound <<<"$rest"
        local env=(RUSTFLAGS="--cfg pagecore_loom" LOOM_MAX_PREEMPTIONS="${bound:-3}")
        local cmd=(cargo test -p pagecore-verify --release --target-dir "$target/loom"
            --test loom_scenarios)
        (cd "$tree" && env "${env[@]}" "${cmd[@]}" --no-run) >>"$log" 2>&1 || return 2
        (cd "$tree" && env "${env[@]}" timeout "$limit" "${cmd[@]}" "$name" -- --nocapture --exact) >>"$log" 2>&1
        ;;
    shuttle)
        read -r name _ <<<"$rest"
        local env=(PAGECORE_SHUTTLE_ITERS="${PAGECORE_SHUTTLE_ITERS:-2000}")
        local cmd=(cargo test -p pagecore-verify --features shuttle --release
            --target-dir "$target/shuttle" --test shuttle_scenarios)
        (cd "$tree" && env "${env[@]}" "${cmd[@]}" --no-run) >>"$log" 2>&1 || return 2
        (cd "$tree" && env "${env[@]}" timeout "$limit" "${cmd[@]}" "$name" -- --exact) >>"$log" 2>&1
        ;;
    cargo)
        # `cargo test <args> [-- <test args>]`: build first (without the test args), then run.
        local args=() pre=() seen=0
        read -ra args <<<"$rest"
        for a in "${args[@]}"; do
            [ "$a" = -- ] && seen=1
            [ $seen = 0 ] && pre+=("$a")
        done
        (cd "$tree" && cargo "${pre[@]}" --target-dir "$target/std" --no-run) >>"$log" 2>&1 || return 2
        local post=()
        [ $seen = 1 ] && post=("${args[@]:${#pre[@]}}")
        (cd "$tree" && timeout "$limit" cargo "${pre[@]}" --target-dir "$target/std" "${post[@]}") >>"$log" 2>&1
        ;;
    *)
        echo "unknown killer: $k" >&2
        return 2
        ;;
    esac
    local rc=$?
    # A loom or shuttle run past the limit is inconclusive (both report a deadlock themselves);
    # a plain test past the limit is a hang: a lost wake-up.
    if [ $rc = 124 ] && [ "$kind" != cargo ]; then return 3; fi
    case $rc in 0) return 0 ;; 124) return 124 ;; *)
        # A failing test; a panic in the build of the test binary would have returned 2 above.
        return 1 ;;
    esac
}

printf '%-48s %-56s %7s\n' patch killed-by seconds
killed=0 survived=0 equivalent=0 unviable=0
for p in "${patches[@]}"; do
    name=$(basename "$p")
    start=$SECONDS
    eq=$(sed -n 's/^# equivalent: *//p' "$p" | head -1)
    if [ -n "$eq" ]; then
        printf '%-48s %-56s %7s\n' "$name" "equivalent" -
        equivalent=$((equivalent + 1))
        continue
    fi
    log=$logs/${name%.patch}.log
    : >"$log"
    reset_tree
    if ! git -C "$tree" apply "$p" 2>/dev/null; then
        printf '%-48s %-56s %7s\n' "$name" "unviable (does not apply)" -
        unviable=$((unviable + 1))
        continue
    fi
    verdict=SURVIVED
    built=0
    timedout=
    while IFS= read -r k; do
        run_killer "$k"
        case $? in
        0) built=1 ;;
        1) verdict="$k"; built=1; break ;;
        124) verdict="$k (timeout)"; built=1; break ;;
        2) tail -5 "$log" >&2 ;;
        3) built=1; verdict=SURVIVED; timedout="$timedout ${k%% *}:timeout" ;;
        esac
    done < <(sed -n 's/^# killer: *//p' "$p")
    if [ "$verdict" = SURVIVED ] && [ $built = 0 ]; then
        verdict="unviable (does not build)"
        unviable=$((unviable + 1))
    elif [ "$verdict" = SURVIVED ]; then
        survived=$((survived + 1))
        verdict="SURVIVED$timedout"
    else
        killed=$((killed + 1))
    fi
    printf '%-48s %-56s %7d\n' "$name" "$verdict" $((SECONDS - start))
done
echo "killed $killed, survived $survived, equivalent $equivalent, unviable $unviable"
[ $survived -eq 0 ]
