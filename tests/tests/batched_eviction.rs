//! Batched eviction (`PagesBuilder::evict_batch`, SPEC §2.8) on the simulated MMU: runs
//! everywhere (no userfaultfd needed), deterministic (one CPU thread, one handler, FIFO). A batch
//! starts at a mapped victim, takes the policy's next victims whatever their objects, writes
//! each back, frees the frames beyond the first, and a failed write-back in it loses nothing.
//! The races are scenario M15's; real memory is `tests/tests/mapping.rs`'s.

use pagecore::internals::mmap::{MapCore, SimMmu};
use pagecore::{Accessor, MemoryAccessor, Pages, Policy};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The model's page: one `u64`.
const PAGE: usize = 8;

/// An in-memory store (pages start at 0) whose flushes fail while `fail` is set.
#[derive(Default)]
struct Flaky {
    pages: Mutex<HashMap<u64, u64>>,
    fail: AtomicBool,
}

impl Flaky {
    fn get(&self, p: u64) -> u64 {
        self.pages.lock().unwrap().get(&p).copied().unwrap_or(0)
    }
}

impl Accessor for Flaky {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.copy_from_slice(&self.get(page).to_le_bytes());
        Ok(())
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        if self.fail.load(SeqCst) {
            return Err(io::Error::from_raw_os_error(5));
        }
        let v = u64::from_le_bytes(buf.try_into().unwrap());
        self.pages.lock().unwrap().insert(page, v);
        Ok(())
    }
}

fn pool(frames: u64, batch: u32) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .policy(Policy::Fifo)
        .evict_batch(batch)
        .build()
        .unwrap()
}

type Map = Arc<MapCore<SimMmu>>;

/// A mapping of `n` pages of `accessor`'s object on the model MMU, and its handler.
fn map(pages: &Pages, accessor: impl Accessor, n: u64) -> (Map, JoinHandle<u64>) {
    let core = Arc::new(MapCore::new(pages, accessor, SimMmu::new(n, PAGE).unwrap()).unwrap());
    let h = {
        let core = core.clone();
        std::thread::spawn(move || MapCore::serve_all(&core))
    };
    (core, h)
}

/// A CPU's store through `m`, then a wait until the fault's service has let its pin go (it
/// wakes the CPU first, then unpins): the next fault's batch may then take the page. Without
/// the wait a batch can find the page still pinned and take one page fewer.
fn store(pages: &Pages, m: &Map, p: u64, v: u64) {
    m.mmu().store(p, v).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while pages.census().unwrap().pinned > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a service kept its pin"
        );
        std::thread::sleep(std::time::Duration::from_micros(100));
    }
}

fn end(core: Map, h: JoinHandle<u64>) {
    core.close().unwrap();
    h.join().unwrap();
}

fn stored(m: &MemoryAccessor, p: u64) -> Option<u64> {
    m.stored(p)
        .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
}

#[test]
fn a_batch_writes_back_its_pages_and_frees_the_frames_beyond_the_first() {
    let pages = pool(4, 4);
    let x = Arc::new(MemoryAccessor::new());
    let (m, h) = map(&pages, x.clone(), 8);
    for p in 0..4 {
        store(&pages, &m, p, p + 1);
    }
    assert_eq!(pages.census().unwrap().free, 0);
    store(&pages, &m, 4, 5);
    let (c, s) = (pages.census().unwrap(), pages.stats());
    assert_eq!(c.free, 3, "the batch's three other frames are free: {c:?}");
    assert_eq!((s.reclaims, s.writebacks), (4, 4), "{s:?}");
    for p in 0..4 {
        assert_eq!(
            stored(&x, p),
            Some(p + 1),
            "page {p} written back by the batch"
        );
    }
    // Three more faults take the free frames: no reclaim.
    for p in 5..8 {
        store(&pages, &m, p, p + 1);
    }
    assert_eq!(pages.stats().reclaims, 4);
    for p in 0..8 {
        assert_eq!(m.mmu().load(p), Ok(p + 1), "page {p}");
    }
    end(m, h);
}

#[test]
fn one_page_at_a_time_without_batching() {
    let pages = pool(4, 1);
    let (m, h) = map(&pages, MemoryAccessor::new(), 8);
    for p in 0..5 {
        store(&pages, &m, p, p + 1);
    }
    assert_eq!(pages.census().unwrap().free, 0);
    assert_eq!(pages.stats().reclaims, 1);
    end(m, h);
}

/// A victim that is not mapped is evicted alone, whatever the batch: batching is for mapped
/// pages (their zaps and punches by the run); a plain object's reclaim takes one page, as
/// before batching (cargo-mutants' `||` to `&&` in `evict_batch`'s guard batched them too).
#[test]
fn an_unmapped_victim_is_evicted_alone() {
    let pages = pool(4, 4);
    let a = Arc::new(MemoryAccessor::new());
    let obj = pages.open(a.clone(), 8 * PAGE as u64).unwrap();
    for p in 0..5 {
        obj.write(p).unwrap()[..8].copy_from_slice(&(p + 1).to_le_bytes());
    }
    let (c, s) = (pages.census().unwrap(), pages.stats());
    assert_eq!((s.reclaims, s.writebacks, c.free), (1, 1, 0), "{s:?} {c:?}");
    assert_eq!(stored(&a, 0), Some(1));
}

/// A batch over pages of two mappings (objects X and Y, at different page numbers) and of an
/// object with no mapping (Z): each mapping's pages are taken out of its own table, and each
/// object's bytes are the ones written back. Were Y's pages zapped in X's table instead, Y's
/// store after the batch would land in a page no entry names, and the sync would miss it.
#[test]
fn a_batch_spans_objects_and_takes_each_page_from_its_own_mapping() {
    let pages = pool(5, 5);
    let (xa, ya, za) = (
        Arc::new(MemoryAccessor::new()),
        Arc::new(MemoryAccessor::new()),
        Arc::new(MemoryAccessor::new()),
    );
    let (x, hx) = map(&pages, xa.clone(), 8);
    let (y, hy) = map(&pages, ya.clone(), 8);
    let z = pages.open(za.clone(), 8 * PAGE as u64).unwrap();
    store(&pages, &x, 0, 10);
    store(&pages, &y, 5, 55);
    z.write(3).unwrap()[..8].copy_from_slice(&33u64.to_le_bytes());
    store(&pages, &x, 1, 11);
    store(&pages, &y, 6, 66);
    // X0 is the oldest page: a mapped victim, whose batch takes all five.
    store(&pages, &x, 2, 12);
    let s = pages.stats();
    assert_eq!((s.reclaims, s.writebacks), (5, 5), "{s:?}");
    assert_eq!(pages.census().unwrap().free, 4);
    assert_eq!((stored(&xa, 0), stored(&xa, 1)), (Some(10), Some(11)));
    assert_eq!((stored(&ya, 5), stored(&ya, 6)), (Some(55), Some(66)));
    assert_eq!(
        stored(&za, 3),
        Some(33),
        "the unmapped page was written back too"
    );
    // Every page faults again: a store through Y reaches Y's object.
    store(&pages, &y, 5, 56);
    y.sync().unwrap();
    assert_eq!(
        stored(&ya, 5),
        Some(56),
        "Y's store after the batch was lost"
    );
    assert_eq!(x.mmu().load(1), Ok(11));
    assert_eq!(z.read(3).unwrap()[..8], 33u64.to_le_bytes());
    drop(z);
    end(x, hx);
    end(y, hy);
}

/// The first victim's write-back fails, the others' succeed: the fault gets a frame all the
/// same, the failed page stays resident and dirty (T10), and nothing it held is lost.
#[test]
fn a_failed_write_back_in_a_batch_loses_nothing() {
    let pages = pool(4, 4);
    let bad = Arc::new(Flaky::default());
    let good = Arc::new(MemoryAccessor::new());
    let (b, hb) = map(&pages, bad.clone(), 4);
    let (g, hg) = map(&pages, good.clone(), 8);
    store(&pages, &b, 0, 7);
    for p in 0..3 {
        store(&pages, &g, p, p + 1);
    }
    bad.fail.store(true, SeqCst);
    store(&pages, &g, 3, 4);
    let s = pages.stats();
    assert_eq!((s.writebacks, s.writeback_errors), (3, 1), "{s:?}");
    let c = pages.census().unwrap();
    assert_eq!(c.free, 2, "{c:?}");
    assert_eq!(c.dirty, 2, "the failed page and the new one: {c:?}");
    assert_eq!(b.mmu().load(0), Ok(7), "the failed page kept its store");
    bad.fail.store(false, SeqCst);
    // The failure was recorded with the object: its next sync reports it, then writes.
    assert!(b.sync().is_err());
    b.sync().unwrap();
    assert_eq!(bad.get(0), 7);
    end(b, hb);
    end(g, hg);
}
