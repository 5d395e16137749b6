//! Replays the committed corpus of the `ops` fuzz target (`fuzz/corpus/ops`) through its body,
//! `pagecore_tests::fuzz::ops`, on stable Rust, plus a few hundred random inputs: every input
//! the fuzzer kept is an ordinary regression test.

use rand::{Rng, SeedableRng};

#[test]
fn the_ops_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/ops");
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                pagecore_tests::fuzz::ops(&std::fs::read(&path).unwrap());
                n += 1;
            }
        }
    }
    eprintln!("replayed {n} inputs from {}", dir.display());
}

#[test]
fn random_inputs_hold() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0915);
    for _ in 0..300 {
        let len = rng.random_range(0..4096);
        let data: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        pagecore_tests::fuzz::ops(&data);
    }
}
