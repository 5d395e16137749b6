#!/usr/bin/env bash
# Miri (nightly; installs the miri and rust-src components if missing), strict provenance and
# tree borrows: the library's unit tests of the packing, the queue, the access map and swap; the
# guards' test (slices built from raw frame pointers) and the model test (a few short runs under
# cfg(miri)). The unit tests of pages:: and copies:: are left out: they wait on threads with
# real-time bounds, which take many minutes under Miri. The model test leaks handle clones on
# purpose (held guards borrow them: `Box::leak`), which keeps its pool alive: leaks are ignored
# there only.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
rustup component list --toolchain nightly --installed | grep -q '^miri' \
    || rustup component add --toolchain nightly miri rust-src
flags="-Zmiri-strict-provenance -Zmiri-tree-borrows -Zmiri-disable-isolation"
cargo +nightly miri setup
MIRIFLAGS="$flags" cargo +nightly miri test -p pagecore --lib --target-dir target/miri -- \
    pack:: queue:: access_map:: swap::
MIRIFLAGS="$flags" cargo +nightly miri test -p pagecore-tests --target-dir target/miri --test guards
MIRIFLAGS="$flags -Zmiri-ignore-leaks" cargo +nightly miri test -p pagecore-tests \
    --target-dir target/miri --test model
