//! Restores a memory image lazily, as a VM monitor restoring a snapshot does: the guest's memory
//! is a mapping whose pages are read from the snapshot file only when a vCPU first touches them,
//! so the guest runs at once instead of after reading the whole image. Two vCPU threads touch a
//! working set (a fifth of the image, scattered over it) with Zipf-distributed loads and stores; the snapshot file stays as it was (pages the
//! guest dirtied and pagecore evicted go to an overlay, from which they are faulted back).
//! Prints how much of the image was read, and the time against an eager restore.
//!
//! `cargo run --release -p pagecore --example snapshot_restore` (Linux, where userfaultfd is
//! permitted; elsewhere it says why and exits).

#[cfg(target_os = "linux")]
fn main() -> Result<(), Box<dyn std::error::Error>> {
    use pagecore::{ComputedAccessor, Error, Mapping, Pages};
    use rand::{rngs::StdRng, Rng, SeedableRng};
    use rand_distr::{Distribution, Zipf};
    use std::collections::HashMap;
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    const PAGE: usize = 4096;
    const IMAGE_PAGES: u64 = 32 * 1024; // a 128 MiB guest (a power of two)
    const FRAMES: u64 = 8192; // 32 MiB of frames
    const TOUCHES: u64 = 200_000; // per vCPU
    const HOT: u64 = 6 * 1024; // the guest's working set: 24 MiB, scattered over the image

    // The snapshot: page p starts with p and is filled with p's low byte.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("guest.mem");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut page = vec![0u8; PAGE];
    for p in 0..IMAGE_PAGES {
        page.fill(p as u8);
        page[..8].copy_from_slice(&p.to_le_bytes());
        w.write_all(&page)?;
    }
    w.flush()?;
    drop(w);
    let snapshot = Arc::new(std::fs::File::open(&path)?);

    // The guest's memory: filled from the overlay if the guest dirtied the page, else from the
    // snapshot; written back to the overlay.
    let overlay: Arc<Mutex<HashMap<u64, Vec<u8>>>> = Arc::default();
    let read_from_image = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let accessor = {
        let (snapshot, overlay, image) =
            (snapshot.clone(), overlay.clone(), read_from_image.clone());
        let written = overlay.clone();
        ComputedAccessor::new(move |p, buf| {
            if let Some(v) = overlay.lock().unwrap().get(&p) {
                buf.copy_from_slice(v);
                return Ok(());
            }
            image.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            snapshot.read_exact_at(buf, p * PAGE as u64)
        })
        .with_flush(move |p, buf| {
            written.lock().unwrap().insert(p, buf.to_vec());
            Ok(())
        })
    };
    let pages = Pages::builder().page_size(PAGE).frames(FRAMES).build()?;
    let t = Instant::now();
    let guest = match Mapping::new(&pages, accessor, IMAGE_PAGES * PAGE as u64) {
        Ok(m) => Arc::new(m),
        Err(Error::Map(e)) => {
            println!("SKIPPED: {e}");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    // Random access: fault-around would only evict the working set.
    guest.set_fault_around(0);
    let t_ready = t.elapsed();

    // Two vCPUs: vCPU v owns the pages p with p % 2 == v for its stores (a counter in the
    // page's second word) and loads any page, checking its first word.
    let vcpus: Vec<_> = (0..2u64)
        .map(|v| {
            let guest = guest.clone();
            std::thread::spawn(move || {
                let zipf = Zipf::new(HOT as f64, 0.9).unwrap();
                let mut rng = StdRng::seed_from_u64(v + 1);
                let base = guest.as_ptr();
                let mut stores = HashMap::new();
                for _ in 0..TOUCHES {
                    // Scatter the working set over the image (an odd multiplier modulo a power
                    // of two is a bijection).
                    let rank = zipf.sample(&mut rng) as u64 - 1;
                    let p = rank.wrapping_mul(0x9E37_79B9) % IMAGE_PAGES;
                    // SAFETY: inside the guest's mapping, which outlives the thread (its Arc);
                    // the first word is only loaded, the second stored by one vCPU only.
                    unsafe {
                        let at = base.add(p as usize * PAGE).cast::<u64>();
                        assert_eq!(at.read_volatile(), p, "page {p}: wrong content");
                        if p % 2 == v && rng.random_bool(0.2) {
                            let n = stores.entry(p).or_insert(0u64);
                            *n += 1;
                            at.add(1).write_volatile(*n);
                        }
                    }
                }
                stores
            })
        })
        .collect();
    let mut stores = HashMap::new();
    for v in vcpus {
        stores.extend(v.join().unwrap());
    }
    let t_run = t.elapsed();
    // Every store is in the guest's memory (whether its page was evicted meanwhile or not).
    for (&p, &n) in &stores {
        // SAFETY: inside the mapping; the vCPUs are done.
        let got = unsafe {
            guest
                .as_ptr()
                .add(p as usize * PAGE + 8)
                .cast::<u64>()
                .read_volatile()
        };
        assert_eq!(got, n, "page {p}: a store was lost");
    }

    let t = Instant::now();
    let mut eager = vec![0u8; IMAGE_PAGES as usize * PAGE];
    snapshot.read_exact_at(&mut eager, 0)?;
    let t_eager = t.elapsed();

    let s = pages.stats();
    let read = read_from_image.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "guest of {} MiB restored lazily through {} MiB of frames: ready in {t_ready:.2?}, \
         2 vCPUs x {TOUCHES} touches done in {t_run:.2?} (an eager restore reads the image in {t_eager:.2?})",
        (IMAGE_PAGES as usize * PAGE) >> 20,
        (FRAMES as usize * PAGE) >> 20
    );
    println!(
        "pages read from the snapshot: {read} of {IMAGE_PAGES} ({:.1}%); faults filled {}, \
         evicted {} ({} written to the overlay); {} pages stored to",
        100.0 * read as f64 / IMAGE_PAGES as f64,
        s.fills,
        s.reclaims,
        s.writebacks,
        stores.len()
    );
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: mappings need Linux's userfaultfd");
}
