//! Per-object statistics (issue 21): `PageMapper::stats` and the pool's sums in `Pages::stats`.
//! Single-threaded sequences are checked against what the test can see (a page resident before
//! an access is a hit, else a miss; every fill is an eviction or still resident); hits from
//! many threads, more than the hit counter has per-thread counters, must all be counted.

use pagecore::{Access, Accessor, MemoryAccessor, Pages, Policy, Revocation};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const PAGE: usize = 64;

fn pool(frames: u64) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .policy(Policy::Sieve)
        .count_hits(true)
        .build()
        .unwrap()
}

/// Without `count_hits`, hits stay 0 and everything else is counted as with it.
#[test]
fn hits_are_counted_only_when_the_pool_asks() {
    let pages = Pages::builder().page_size(PAGE).frames(2).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 4 * PAGE as u64).unwrap();
    for _ in 0..3 {
        drop(obj.read(0).unwrap());
    }
    let c = obj.register().unwrap();
    drop(c.request(0, Access::Read).unwrap());
    let s = obj.stats();
    assert_eq!((s.hits, s.misses, s.fills), (0, 1, 1), "{s:?}");
    assert_eq!(pages.stats().hits, 0);
}

/// Two objects share a pool of 8 frames; random reads and writes over 32 pages each. Each
/// object's hits and misses are what residency before each access says, its fills are its
/// misses, its evictions are its fills less its pages still resident, and it wrote back
/// exactly the dirty pages it lost; the pool's sums are the two objects' sums.
#[test]
fn an_objects_counts_match_what_happened_to_its_pages() {
    let pages = pool(8);
    let objs = [
        pages.open(MemoryAccessor::new(), 32 * PAGE as u64).unwrap(),
        pages.open(MemoryAccessor::new(), 32 * PAGE as u64).unwrap(),
    ];
    let mut rng = StdRng::seed_from_u64(3);
    let mut want = [(0u64, 0u64); 2]; // (hits, misses)
    for _ in 0..5000 {
        let o = rng.random_range(0..2);
        let p = rng.random_range(0..32u64);
        let obj = &objs[o];
        if obj.is_resident(p) {
            want[o].0 += 1;
        } else {
            want[o].1 += 1;
        }
        if rng.random_bool(0.2) {
            obj.write(p).unwrap()[0] = 1;
        } else {
            drop(obj.read(p).unwrap());
        }
    }
    let mut total_hits = 0;
    for (o, obj) in objs.iter().enumerate() {
        let s = obj.stats();
        assert_eq!((s.hits, s.misses), want[o], "object {o}: {s:?}");
        assert_eq!(
            s.fills, s.misses,
            "object {o}: one fill per miss, nobody joined"
        );
        let resident = (0..32).filter(|&p| obj.is_resident(p)).count() as u64;
        assert_eq!(s.evictions, s.fills - resident, "object {o}: {s:?}");
        assert!(
            s.writebacks > 0 && s.writebacks <= s.evictions,
            "object {o}: {s:?}"
        );
        assert_eq!(s.fill_latency.count(), s.fills);
        assert_eq!(s.writeback_latency.count(), s.writebacks);
        assert_eq!((s.fill_errors, s.writeback_errors), (0, 0));
        total_hits += s.hits;
    }
    let p = pages.stats();
    assert_eq!(p.hits, total_hits);
    assert_eq!(p.misses, want[0].1 + want[1].1);
    assert_eq!(p.fills, p.misses);
    assert_eq!(
        p.evictions, p.reclaims,
        "every reclaim evicted a page of one of them"
    );
    assert_eq!(
        p.fill_latency,
        objs[0]
            .stats()
            .fill_latency
            .merged(&objs[1].stats().fill_latency)
    );
    // A sync writes back the dirty pages still resident: counted with their object.
    let written =
        |objs: &[pagecore::PageMapper; 2]| objs[0].stats().writebacks + objs[1].stats().writebacks;
    let before = written(&objs);
    let dirty = pages.census().unwrap().dirty as u64;
    assert!(dirty > 0);
    objs[0].sync().unwrap();
    objs[1].sync().unwrap();
    assert_eq!(written(&objs), before + dirty);
    assert_eq!(pages.stats().writebacks, before + dirty);
}

/// The pool's sums keep the counts of objects that are gone.
#[test]
fn the_pool_keeps_the_counts_of_closed_objects() {
    let pages = pool(4);
    let a = pages.open(MemoryAccessor::new(), 8 * PAGE as u64).unwrap();
    for p in 0..8 {
        drop(a.read(p).unwrap());
        drop(a.read(p).unwrap());
    }
    let sa = a.stats();
    assert_eq!((sa.hits, sa.misses, sa.evictions), (8, 8, 4));
    a.close().unwrap();
    drop(a);
    let b = pages.open(MemoryAccessor::new(), 8 * PAGE as u64).unwrap();
    drop(b.read(0).unwrap());
    let s = pages.stats();
    assert_eq!((s.hits, s.misses), (8, 9));
    assert_eq!(s.fill_latency.count(), 9);
    // Asked again (the closed object's counters now folded into the pool's): the same.
    assert_eq!(pages.stats().hits, 8);
    assert_eq!(b.stats().misses, 1);
}

/// More threads than the hit counter has per-thread counters (one per CPU: the others add to a
/// shared one), some of them short-lived: every hit is counted.
#[test]
fn hits_from_many_threads_are_all_counted() {
    let pages = pool(16);
    let obj = pages.open(MemoryAccessor::new(), 16 * PAGE as u64).unwrap();
    for p in 0..16 {
        drop(obj.read(p).unwrap());
    }
    let per_thread = 2000u64;
    std::thread::scope(|s| {
        for t in 0..20u64 {
            let obj = &obj;
            s.spawn(move || {
                for i in 0..per_thread {
                    drop(obj.read((t + i) % 16).unwrap());
                }
            });
        }
    });
    for _ in 0..10 {
        let obj = obj.clone();
        std::thread::spawn(move || drop(obj.read(0).unwrap()))
            .join()
            .unwrap();
    }
    let s = obj.stats();
    assert_eq!((s.hits, s.misses), (20 * per_thread + 10, 16));
}

/// A client's grants count as hits or misses like guards; a request that waits counts as a
/// grant wait, and a holder asked to give the page back as a revocation, with its object.
#[test]
fn client_grants_waits_and_revocations_are_counted_with_their_object() {
    let pages = pool(4);
    let obj = pages.open(MemoryAccessor::new(), 4 * PAGE as u64).unwrap();
    let other = pages.open(MemoryAccessor::new(), 4 * PAGE as u64).unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let a = {
        let asked = asked.clone();
        obj.register_with(move |_p: u64, _r: Revocation| {
            asked.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap()
    };
    let b = obj.register().unwrap();
    drop(a.request(0, Access::Read).unwrap()); // a miss
    drop(a.request(0, Access::Read).unwrap()); // a hit
    let held = a.request(0, Access::Write).unwrap(); // a hit
    std::thread::scope(|s| {
        let w = s.spawn(|| b.request(0, Access::Write).map(drop));
        // b waits behind a's write grant, and a is asked to give it back.
        while asked.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(held);
        w.join().unwrap().unwrap();
    });
    let s = obj.stats();
    assert_eq!((s.misses, s.grant_waits), (1, 1), "{s:?}");
    assert_eq!(s.hits, 3, "{s:?}");
    assert!(s.revocations >= 1, "{s:?}");
    let o = other.stats();
    assert_eq!(
        (o.hits, o.misses, o.grant_waits, o.revocations),
        (0, 0, 0, 0)
    );
}

struct Failing {
    fail_fill: AtomicBool,
    fail_flush: AtomicBool,
}

impl Accessor for Failing {
    fn fill(&self, _page: u64, buf: &mut [u8]) -> io::Result<()> {
        if self.fail_fill.load(Ordering::SeqCst) {
            return Err(io::Error::other("fill fails"));
        }
        buf.fill(0);
        Ok(())
    }
    fn flush(&self, _page: u64, _buf: &[u8]) -> io::Result<()> {
        if self.fail_flush.load(Ordering::SeqCst) {
            return Err(io::Error::other("flush fails"));
        }
        Ok(())
    }
}

/// Failed fills and write-backs are counted with their object (and timed).
#[test]
fn fill_and_writeback_errors_are_counted() {
    let pages = pool(2);
    let acc = Arc::new(Failing {
        fail_fill: AtomicBool::new(true),
        fail_flush: AtomicBool::new(true),
    });
    let obj = pages.open(acc.clone(), 4 * PAGE as u64).unwrap();
    assert!(obj.read(0).is_err());
    acc.fail_fill.store(false, Ordering::SeqCst);
    obj.write(0).unwrap()[0] = 7;
    assert!(obj.sync().is_err());
    let s = obj.stats();
    // The failed read was a miss too (every access is a hit or a miss; found by the fresh-eyes
    // pass of stop 31, which saw it counted as neither).
    assert_eq!((s.hits, s.misses), (0, 2), "{s:?}");
    assert_eq!((s.fill_errors, s.fills), (1, 1), "{s:?}");
    assert_eq!((s.writeback_errors, s.writebacks), (1, 0), "{s:?}");
    assert_eq!(s.fill_latency.count(), 2);
    assert_eq!(s.writeback_latency.count(), 1);
    acc.fail_flush.store(false, Ordering::SeqCst);
    obj.sync().unwrap();
    assert_eq!(obj.stats().writebacks, 1);
}

/// A copy's pages resolved from the layer it shares with its source count as its fills (timed),
/// and the pool's sums are its objects' (the frozen layer the two share is the pool's own).
/// Found by the fresh-eyes pass of stop 31: the copy counted 4 misses and no fill, and the pool
/// counted the layer's 4 hits besides.
#[test]
fn a_copy_counts_its_own_fills_and_the_pool_sums_only_objects() {
    let pages = pool(8);
    let a = pages.anonymous(16 * PAGE as u64).unwrap();
    for p in 0..4 {
        a.write(p).unwrap()[0] = p as u8 + 1;
    }
    let b = a.copy().unwrap();
    for p in 0..4 {
        assert_eq!(b.read(p).unwrap()[0], p as u8 + 1);
        drop(b.read(p).unwrap());
    }
    b.write(0).unwrap()[0] = 99;
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!((sa.hits, sa.misses, sa.fills), (0, 4, 4), "{sa:?}");
    assert_eq!((sb.hits, sb.misses, sb.fills), (5, 4, 4), "{sb:?}");
    assert_eq!(sb.fill_latency.count(), 4);
    let p = pages.stats();
    assert_eq!(
        (p.hits, p.misses),
        (sa.hits + sb.hits, sa.misses + sb.misses)
    );
}
