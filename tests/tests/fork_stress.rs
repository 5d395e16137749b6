//! Fork-style stress (issue 4): threads share anonymous objects the way processes do after
//! fork. Each thread owns a private object; a fork is `copy()`, handed with a copy of the
//! parent's expectations to a child thread, so copies of copies share frames copy-on-write. All
//! threads also write disjoint pages of one shared object (MAP_SHARED style). The pool holds over
//! ten times fewer frames than the live data, so frozen pages, proxies and private pages are
//! reclaimed and swapped constantly. At the end every page of every object is checked, and once
//! everything is dropped every frame is free and the swap area empty. The pool uses SIEVE (the
//! other stress tests use FIFO), so the policy's hand meets copies, proxies and swap here.

use pagecore::internals::sync::ShareArc;
use pagecore::SwapArea;
use pagecore::{PageMapper, Pages};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PAGE: usize = 256;
const PAGES: u64 = 48;
const FRAMES: u64 = 32;
const THREADS: usize = 8;
const STEPS: usize = 3000;

fn pattern(owner: u64, p: u64, step: u64) -> Vec<u8> {
    let mut v = vec![0u8; PAGE];
    v[..8].copy_from_slice(&owner.to_le_bytes());
    v[8..16].copy_from_slice(&p.to_le_bytes());
    v[16..24].copy_from_slice(&step.to_le_bytes());
    for (i, b) in v.iter_mut().enumerate().skip(24) {
        *b = (owner as u8) ^ (p as u8).wrapping_mul(13) ^ (step as u8).wrapping_mul(7) ^ i as u8;
    }
    v
}

struct Shared {
    object: PageMapper,
    /// Last content written to each page (each page written by one thread only).
    expect: Mutex<HashMap<u64, Vec<u8>>>,
}

/// One "process": its private object and what each page should hold.
fn process(
    id: u64,
    obj: PageMapper,
    mut expect: HashMap<u64, Vec<u8>>,
    shared: Arc<Shared>,
    spawned: Arc<AtomicUsize>,
) -> Vec<std::thread::JoinHandle<()>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(id * 7919 + 1);
    let mut children = Vec::new();
    for step in 0..STEPS as u64 {
        let p = rng.random_range(0..PAGES);
        match rng.random_range(0..100) {
            0..40 => {
                let v = pattern(id, p, step);
                obj.write(p).unwrap().copy_from_slice(&v);
                expect.insert(p, v);
            }
            40..80 => {
                let got = obj.read(p).unwrap().to_vec();
                let want = expect.get(&p).cloned().unwrap_or_else(|| vec![0; PAGE]);
                assert_eq!(got, want, "process {id} page {p} step {step}");
            }
            80..98 => {
                // The shared object: this process writes the pages p with p % THREADS == id % THREADS.
                let q = (p / THREADS as u64) * THREADS as u64 + id % THREADS as u64;
                if q < PAGES {
                    let v = pattern(1000 + id, q, step);
                    let mut e = shared.expect.lock().unwrap();
                    shared.object.write(q).unwrap().copy_from_slice(&v);
                    e.insert(q, v);
                }
            }
            _ => {
                // Fork: the child gets a copy-on-write copy and the parent's expectations.
                if spawned.fetch_add(1, Ordering::SeqCst) < THREADS - 1 {
                    let child_id = spawned.load(Ordering::SeqCst) as u64;
                    let copy = obj.copy().unwrap();
                    let (e, s, sp) = (expect.clone(), shared.clone(), spawned.clone());
                    children.push(std::thread::spawn(move || {
                        for h in process(child_id, copy, e, s, sp) {
                            h.join().unwrap();
                        }
                    }));
                } else {
                    spawned.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
    }
    // Every page, once more, at the end.
    for p in 0..PAGES {
        let got = obj.read(p).unwrap().to_vec();
        let want = expect.get(&p).cloned().unwrap_or_else(|| vec![0; PAGE]);
        assert_eq!(got, want, "process {id} page {p} at the end");
    }
    children
}

#[test]
fn forked_processes_keep_their_pages_under_pressure() {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 1 << 14).unwrap());
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(FRAMES)
        .swap(swap.clone())
        .wait_bound(Some(Duration::from_secs(20)))
        .policy(pagecore::Policy::Sieve)
        .build()
        .unwrap();
    let limit = PAGES * PAGE as u64;
    let shared = Arc::new(Shared {
        object: pages.anonymous(limit).unwrap(),
        expect: Mutex::new(HashMap::new()),
    });
    let root = pages.anonymous(limit).unwrap();
    let mut expect = HashMap::new();
    for p in 0..PAGES {
        let v = pattern(0, p, 0);
        root.write(p).unwrap().copy_from_slice(&v);
        expect.insert(p, v);
    }
    let spawned = Arc::new(AtomicUsize::new(0));
    let handles = process(0, root, expect, shared.clone(), spawned.clone());
    for h in handles {
        h.join().unwrap();
    }
    let e = shared.expect.lock().unwrap().clone();
    for p in 0..PAGES {
        let got = shared.object.read(p).unwrap().to_vec();
        let want = e.get(&p).cloned().unwrap_or_else(|| vec![0; PAGE]);
        assert_eq!(got, want, "shared page {p}");
    }
    let s = pages.stats();
    // Live data: up to THREADS private objects and the shared one, 48 pages each, through 32
    // frames: over ten times the pool once the forks happened.
    assert!(
        spawned.load(Ordering::SeqCst) >= 3,
        "too few forks to test anything"
    );
    assert!(s.cow_breaks > 100 && s.reclaims > 1000, "{s:?}");
    drop(shared);
    let c = pages.census().unwrap();
    assert_eq!(c.free, FRAMES as u32, "frames outlived every object: {c:?}");
    assert_eq!(swap.in_use(), 0, "swap slots outlived every object");
    eprintln!(
        "fork stress: {} processes, {} fills, {} reclaims, {} write-backs, {} cow breaks",
        spawned.load(Ordering::SeqCst) + 1,
        s.fills,
        s.reclaims,
        s.writebacks,
        s.cow_breaks
    );
}
