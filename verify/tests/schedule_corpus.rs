//! Replays the committed corpus of the `schedule` fuzz target (`fuzz/corpus/schedule`) through
//! its body, `pagecore_verify::fuzz::schedule`, on stable Rust, plus every scenario under a few
//! hundred random byte strings. Run with `--features shuttle`.
#![cfg(feature = "shuttle")]

use pagecore_verify::fuzz;

#[test]
fn the_schedule_corpus_replays() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/schedule");
    let mut n = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries {
            let path = e.unwrap().path();
            if path.is_file() {
                fuzz::schedule(&std::fs::read(&path).unwrap());
                n += 1;
            }
        }
    }
    eprintln!("replayed {n} inputs from {}", dir.display());
}

#[test]
fn every_scenario_runs_under_byte_schedules() {
    let n = fuzz::scenarios().len();
    let mut x: u64 = 0x5eed;
    for i in 0..(n * 40) {
        let mut data = vec![(i % n) as u8];
        for _ in 0..(i * 7 % 300) {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            data.push((x >> 56) as u8);
        }
        fuzz::schedule(&data);
    }
}
