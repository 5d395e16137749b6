#!/usr/bin/env bash
# Checks that every semantic mutant (bench/semantic-mutants/*.patch) still applies to this tree
# (`git apply --check`), e.g. after code moved between files. Prints the patches that do not.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
bad=0
n=0
for p in bench/semantic-mutants/*.patch; do
    n=$((n + 1))
    if ! git apply --check "$p" 2>/dev/null; then
        echo "does not apply: $p"
        git apply --check "$p" 2>&1 | sed 's/^/    /'
        bad=$((bad + 1))
    fi
done
echo "$((n - bad))/$n patches apply"
[ "$bad" -eq 0 ]
