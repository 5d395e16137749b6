//! Fuzzes interleavings: the first byte picks a race scenario of SPEC.md, the rest are shuttle's
//! scheduling decisions (`pagecore_verify::fuzz::schedule`). Build and run with the feature that
//! puts pagecore on shuttle's primitives:
//! `cargo +nightly fuzz run --features schedule schedule`; the corpus in fuzz/corpus/schedule
//! replays in `cargo test -p pagecore-verify --features shuttle --test schedule_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pagecore_verify::fuzz::schedule(data));
