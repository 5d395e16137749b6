#!/usr/bin/env bash
# Every scenario of SPEC.md has a loom and a shuttle test (../shared/tools/spec-coverage, where
# the checkout has ../shared beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x ../shared/tools/spec-coverage ]; then
    ../shared/tools/spec-coverage
else
    echo "../shared/tools/spec-coverage not found; skipped"
fi
