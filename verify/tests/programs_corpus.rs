//! Replays the committed corpus of the `programs` fuzz target (`fuzz/corpus/programs`) through
//! its body, `pagecore_verify::programs::fuzz`, on stable Rust, plus a few hundred random byte
//! strings. Run with `--features shuttle`.
#![cfg(feature = "shuttle")]

use pagecore_verify::programs;

#[test]
fn the_programs_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/programs");
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                programs::fuzz(&std::fs::read(&path).unwrap());
                n += 1;
            }
        }
    }
    eprintln!("replayed {n} inputs from {}", dir.display());
}

#[test]
fn programs_run_under_byte_schedules() {
    let mut x: u64 = 0x5eed;
    for i in 0..200usize {
        let mut data = vec![(i * 37 % 256) as u8];
        for _ in 0..(i * 13 % 1500) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.push((x >> 56) as u8);
        }
        programs::fuzz(&data);
    }
}
