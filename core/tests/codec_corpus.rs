//! Replays the committed `codec` fuzz corpus (fuzz/corpus/codec) on stable Rust, through the same
//! library function the fuzz target calls.

#[test]
fn codec_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/codec");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus directory") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        for chunk in data.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            let raw = u64::from_le_bytes(b);
            if let Err(e) = pagecore::internals::pack::check_codecs(raw) {
                panic!("corpus word {raw:#x}: {e}");
            }
        }
        files += 1;
    }
    assert!(files > 0, "empty corpus at {}", dir.display());
}
