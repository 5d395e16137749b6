//! Exercises the core on a real temp file: four threads write and read 2,048 pages (8 MiB) of a
//! file through a pool of 128 frames (16x smaller), so pages are constantly reclaimed and written
//! back; then the file on disk is checked byte for byte and the pool's statistics printed.
//!
//! `cargo run --release -p pagecore --example demo`

use pagecore::{FileAccessor, Pages};
use std::sync::Arc;
use std::time::Instant;

const PAGE: usize = 4096;
const PAGES: u64 = 2048;
const FRAMES: u64 = 128;
const THREADS: u64 = 4;
const OPS: u64 = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("demo.dat");
    let pages = Pages::builder().page_size(PAGE).frames(FRAMES).build()?;
    let file = Arc::new(pages.open(FileAccessor::open(&path, PAGE)?, PAGES * PAGE as u64)?);
    let start = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let file = file.clone();
            std::thread::spawn(move || -> pagecore::Result<u64> {
                // Thread t owns pages p with p % THREADS == t and stamps them with (page, round);
                // it also reads pages of every thread and checks they are whole.
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                let mut checked = 0;
                for round in 0..OPS {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let p = x % PAGES;
                    if p % THREADS == t && round % 3 == 0 {
                        let mut g = file.write(p)?;
                        for w in g.chunks_exact_mut(8) {
                            w.copy_from_slice(&(p << 32 | round).to_le_bytes());
                        }
                    } else {
                        let g = file.read(p)?;
                        let first = u64::from_le_bytes(g[..8].try_into().unwrap());
                        assert!(
                            first == 0 || first >> 32 == p,
                            "page {p} shows another page"
                        );
                        assert!(g.chunks_exact(8).all(|w| w == &g[..8]), "page {p} torn");
                        checked += 1;
                    }
                }
                Ok(checked)
            })
        })
        .collect();
    let mut checked = 0;
    for w in workers {
        checked += w.join().expect("worker panicked")?;
    }
    file.sync()?;
    let elapsed = start.elapsed();

    let disk = std::fs::read(&path)?;
    for (p, page) in disk.chunks(PAGE).enumerate() {
        let first = &page[..8];
        assert!(
            page.chunks_exact(8).all(|w| w == first),
            "page {p} torn on disk"
        );
        let v = u64::from_le_bytes(first.try_into().unwrap());
        assert!(
            v == 0 || v >> 32 == p as u64,
            "page {p} on disk holds another page"
        );
        let mut g = [0u8; 8];
        file.read_at(p as u64 * PAGE as u64, &mut g)?;
        assert_eq!(&g, first, "page {p}: pool and disk disagree after sync");
    }
    let s = pages.stats();
    println!(
        "{} ops by {THREADS} threads over {PAGES} pages through {FRAMES} frames in {:.2?} ({:.0} ops/s)",
        THREADS * OPS,
        elapsed,
        (THREADS * OPS) as f64 / elapsed.as_secs_f64()
    );
    println!(
        "fills {}  reclaims {}  write-backs {}  obtain waits {}  reads checked {checked}",
        s.fills, s.reclaims, s.writebacks, s.obtain_waits
    );
    println!("census after sync: {:?}", pages.census()?);
    println!("file on disk verified: {} bytes", disk.len());
    Arc::try_unwrap(file).expect("sole handle").close()?;
    Ok(())
}
