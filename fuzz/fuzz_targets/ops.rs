//! Fuzzes operation sequences over objects, copies, clients, regions and a small pool against the
//! reference model, checking every invariant after each operation: the body is
//! `pagecore_tests::fuzz::ops`. `cargo +nightly fuzz run ops`; the corpus in fuzz/corpus/ops
//! replays in `cargo test` (tests/tests/fuzz_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| pagecore_tests::fuzz::ops(data));
