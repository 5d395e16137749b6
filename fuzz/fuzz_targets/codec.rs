//! Fuzzes the state-word codecs (frame, entry and access words): every 8 bytes of input are a raw word, checked by
//! `pagecore::internals::pack::check_codecs` (round trip of accepted words, rejection of invalid ones).
//! `cargo +nightly fuzz run codec`; the corpus in fuzz/corpus/codec replays in `cargo test`
//! (core/tests/codec_corpus.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for chunk in data.chunks(8) {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        if let Err(e) = pagecore::internals::pack::check_codecs(u64::from_le_bytes(b)) {
            panic!("{e}");
        }
    }
});
