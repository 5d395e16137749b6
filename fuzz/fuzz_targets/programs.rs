//! Fuzzes random concurrent programs over pagecore's public API and their interleavings: the
//! first byte says how many of the next bytes (times four) describe the program, the rest are
//! shuttle's scheduling decisions (`pagecore_verify::programs::fuzz`). Build and run with the
//! feature that puts pagecore on shuttle's primitives:
//! `cargo +nightly fuzz run --features schedule programs`; the corpus in fuzz/corpus/programs
//! replays in `cargo test -p pagecore-verify --features shuttle --test programs_corpus`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pagecore_verify::programs::fuzz(data));
