//! `Mapping` on real memory (issue 19): a memfd mapped twice, faults served through userfaultfd.
//! Each test prints `SKIPPED` and passes where userfaultfd is not permitted, unless
//! `PAGECORE_REQUIRE_UFFD=1` (which `.ci/run` sets), where it fails.
#![cfg(target_os = "linux")]

mod mapped;

use mapped::{initial, load, map, pool, pool_batched, store, Backing, PAGE};
use pagecore::{Error, Mapping, Pages, Policy};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

#[test]
fn a_scan_of_ten_times_the_pool_evicts_refaults_and_writes_back() {
    scan_ten_times_the_pool(1);
}

#[test]
fn a_scan_with_batched_evictions_evicts_refaults_and_writes_back() {
    scan_ten_times_the_pool(4);
}

fn scan_ten_times_the_pool(batch: u32) {
    let pages = pool_batched(8, batch);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 80) else { return };
    assert_eq!(m.len(), 80 * PAGE);
    for p in 0..80 {
        assert_eq!(load(&m, p), p * 1000, "first touch of page {p}");
    }
    for p in 0..80 {
        store(&m, p, p * 7 + 1);
    }
    for p in (0..80).rev() {
        assert_eq!(load(&m, p), p * 7 + 1, "page {p} after eviction pressure");
    }
    m.sync().unwrap();
    for p in 0..80 {
        assert_eq!(b.word(p), p * 7 + 1, "page {p} written back");
    }
    let c = pages.census().unwrap();
    assert!(c.resident <= 8, "{c:?}");
    assert!(pages.stats().reclaims > 0, "a scan 10x the pool evicts");
    // The rest of each page is what the fill put there (one copy: the mapping's).
    // SAFETY: inside the mapping.
    let w = unsafe { (m.as_ptr().add(3 * PAGE + 8) as *const u64).read_volatile() };
    assert_eq!(w, 3);
    drop(m);
    let c = pages.census().unwrap();
    assert_eq!(c.free, c.total(), "frames outlived the mapping: {c:?}");
}

#[test]
fn stores_from_threads_under_eviction_pressure_match_a_model() {
    stores_under_pressure(1);
}

#[test]
fn four_handler_threads_serve_stores_under_eviction_pressure() {
    stores_under_pressure(4);
}

#[test]
fn batched_evictions_lose_no_store_under_pressure() {
    stores_under_pressure_batched(2, 4);
}

fn stores_under_pressure(handlers: usize) {
    stores_under_pressure_batched(handlers, 1);
}

fn stores_under_pressure_batched(handlers: usize, batch: u32) {
    let pages = pool_batched(6, batch);
    let b = Arc::new(Backing::default());
    if map(&pages, &b, 1).is_none() {
        return;
    }
    let m = Mapping::builder()
        .handlers(handlers)
        .build(&pages, b.clone(), 48 * PAGE as u64)
        .unwrap();
    let m = Arc::new(m);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let m = m.clone();
            std::thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(t);
                // Thread t owns the pages p with p % 4 == t: its model is exact.
                let mut model: HashMap<u64, u64> = HashMap::new();
                for i in 0..3000u64 {
                    let p = rng.random_range(0..12) * 4 + t;
                    if rng.random_bool(0.5) {
                        let v = (t << 32) | i;
                        store(&m, p, v);
                        model.insert(p, v);
                    } else {
                        let want = model.get(&p).copied().unwrap_or(p * 1000);
                        assert_eq!(load(&m, p), want, "thread {t}, page {p}");
                    }
                }
                model
            })
        })
        .collect();
    let mut all = HashMap::new();
    for t in threads {
        all.extend(t.join().unwrap());
    }
    m.sync().unwrap();
    for p in 0..48 {
        let want = all.get(&p).copied().unwrap_or(p * 1000);
        assert_eq!(b.word(p), want, "page {p} in the backing store after sync");
        assert_eq!(load(&m, p), want, "page {p} through the mapping");
    }
    assert!(pages.stats().reclaims > 0);
}

#[test]
fn failed_write_backs_lose_nothing_written_through_the_mapping() {
    failed_write_backs(1);
}

#[test]
fn failed_write_backs_of_a_batch_lose_nothing() {
    failed_write_backs(4);
}

fn failed_write_backs(batch: u32) {
    let pages = pool_batched(4, batch);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 16) else { return };
    for p in 0..4 {
        store(&m, p, 100 + p);
    }
    b.fail_flush.store(true, SeqCst);
    // Touching another page needs a frame: every frame holds a dirty page whose write-back
    // fails (T10: it stays resident and dirty), so the fault waits, as for memory, and is tried
    // again until write-backs work (a thread repairs the store after a while).
    let repair = {
        let b = b.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            b.fail_flush.store(false, SeqCst);
        })
    };
    for p in 4..16 {
        assert_eq!(load(&m, p), p * 1000);
    }
    repair.join().unwrap();
    assert!(
        pages.stats().writeback_errors > 0,
        "the write-backs did fail"
    );
    // The first sync reports the failures recorded meanwhile (and writes everything back).
    assert!(matches!(m.sync(), Err(Error::WriteBack { .. })));
    m.sync().unwrap();
    for p in 0..4 {
        assert_eq!(
            b.word(p),
            100 + p,
            "page {p}'s store survived failed write-backs"
        );
        assert_eq!(load(&m, p), 100 + p);
    }
}

#[test]
fn a_guard_and_the_mapping_see_one_page() {
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 8) else { return };
    store(&m, 2, 42);
    {
        let g = m.object().read(2).unwrap();
        assert_eq!(u64::from_le_bytes(g[..8].try_into().unwrap()), 42);
    }
    {
        let mut g = m.object().write(2).unwrap();
        g[..8].copy_from_slice(&43u64.to_le_bytes());
    }
    assert_eq!(load(&m, 2), 43, "a write guard's bytes are the mapping's");
    // A copy of the mapped file: later guards' writes and stores reach the file, not the copy.
    let copy = m.object().copy().unwrap();
    m.object().write(2).unwrap()[..8].copy_from_slice(&44u64.to_le_bytes());
    store(&m, 3, 33);
    let word = |o: &pagecore::PageMapper, p| {
        u64::from_le_bytes(o.read(p).unwrap()[..8].try_into().unwrap())
    };
    assert_eq!(
        (load(&m, 2), word(&copy, 2), word(&copy, 3)),
        (44, 43, 3000)
    );
    m.sync().unwrap();
    assert_eq!((b.word(2), b.word(3)), (44, 33));
}

/// A client that holds a page the mapping needs is asked to give it back (its `Revoke`
/// callback), as a conflicting client's request would ask it: a holder that releases only when
/// asked no longer blocks a store through the mapping for ever (found by a fresh-eyes pass: the
/// callback never ran, the store waited past every bound). A load asks a writer to downgrade.
#[test]
fn a_client_holding_a_page_is_asked_to_release_it_for_a_fault() {
    use pagecore::{Access, Revocation};
    use std::sync::mpsc;
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 8) else { return };
    store(&m, 2, 42);
    for (held, by_store, want) in [
        (Access::Read, true, Revocation::Release),
        (Access::Write, false, Revocation::Downgrade),
    ] {
        let (asked_tx, asked_rx) = mpsc::channel::<(u64, Revocation)>();
        let asked_tx = std::sync::Mutex::new(asked_tx);
        let c = m
            .object()
            .register_with(move |page: u64, ask: Revocation| {
                let _ = asked_tx.lock().unwrap().send((page, ask));
            })
            .unwrap();
        let g = c.request(2, held).unwrap();
        std::thread::scope(|s| {
            let t = s.spawn(|| {
                if by_store {
                    store(&m, 2, 43);
                    43
                } else {
                    load(&m, 2)
                }
            });
            let (page, ask) = asked_rx
                .recv_timeout(std::time::Duration::from_secs(30))
                .expect("the holder was never asked to give the page back");
            assert_eq!((page, ask), (2, want));
            drop(g);
            assert_eq!(
                t.join().unwrap(),
                43,
                "the first round's store, then the load of it"
            );
        });
    }
    assert_eq!(load(&m, 2), 43);
    assert!(pages.stats().revocations >= 2, "{:?}", pages.stats());
}

#[test]
fn read_and_write_system_calls_into_the_mapping_are_served() {
    use std::io::{Read, Seek, Write};
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 16) else { return };
    let mut f = tempfile::tempfile().unwrap();
    let data: Vec<u8> = (0..PAGE).map(|i| (i % 251) as u8).collect();
    f.write_all(&data).unwrap();
    f.rewind().unwrap();
    // read(2) into page 5, never touched: the kernel's copy faults on it (from kernel mode).
    // SAFETY: page 5 of the mapping, touched by no other thread while the slice lives.
    let dst = unsafe { std::slice::from_raw_parts_mut(m.as_ptr().add(5 * PAGE), PAGE) };
    f.read_exact(dst).unwrap();
    assert_eq!(
        load(&m, 5),
        u64::from_le_bytes(data[..8].try_into().unwrap())
    );
    // write(2) from page 6, never touched.
    let mut g = tempfile::tempfile().unwrap();
    // SAFETY: as above, page 6.
    let src = unsafe { std::slice::from_raw_parts(m.as_ptr().add(6 * PAGE), PAGE) };
    g.write_all(src).unwrap();
    g.rewind().unwrap();
    let mut back = vec![0u8; PAGE];
    g.read_exact(&mut back).unwrap();
    assert_eq!(
        back,
        initial(6),
        "write(2) from the mapping wrote the page's content"
    );
    m.sync().unwrap();
    assert_eq!(
        b.word(5),
        u64::from_le_bytes(data[..8].try_into().unwrap()),
        "the page read(2) filled was written back"
    );
}

#[test]
fn a_sequential_stream_has_pages_mapped_ahead_and_stores_to_them_are_written_back() {
    let pages = pool(64);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 64) else { return };
    assert_eq!(m.fault_around(), 32, "the default bound");
    let fills = || b.fills.load(SeqCst);
    assert_eq!(load(&m, 0), 0);
    assert_eq!(fills(), 1, "a first fault is no stream: no fault-around");
    assert_eq!(load(&m, 1), 1000);
    // Page 1 continues the stream: the window opens at 4, mapped before the CPU is woken.
    assert_eq!(fills(), 6, "pages 0, 1 and the four after 1");
    for p in 2..6 {
        assert!(m.object().is_resident(p), "page {p} mapped ahead");
    }
    assert!(!m.object().is_resident(6), "beyond the window");
    for p in 2..6 {
        assert_eq!(
            load(&m, p),
            p * 1000,
            "page {p} mapped ahead reads its content"
        );
    }
    assert_eq!(fills(), 6, "loads of pages mapped ahead fill nothing");
    assert_eq!(load(&m, 6), 6000);
    assert_eq!(
        fills(),
        6 + 1 + 8,
        "the window doubles as the stream goes on"
    );
    // Pages mapped ahead are read-only: a store faults on the protection, and its service
    // marks the page dirty before it makes it writable, so sync writes exactly them back.
    let flushed = b.flushes.load(SeqCst);
    for p in 0..15 {
        store(&m, p, p + 5);
    }
    m.sync().unwrap();
    for p in 0..15 {
        assert_eq!(b.word(p), p + 5, "page {p} stored through the mapping");
    }
    assert_eq!(
        b.flushes.load(SeqCst) - flushed,
        15,
        "only the stored pages"
    );
    // Off: a stream maps nothing ahead.
    m.set_fault_around(0);
    let before = fills();
    assert_eq!(load(&m, 40), 40_000);
    assert_eq!(load(&m, 41), 41_000);
    assert_eq!(fills(), before + 2, "no fault-around when turned off");
    assert!(!m.object().is_resident(42));
    // A random fault is no stream either.
    m.set_fault_around(32);
    assert_eq!(load(&m, 50), 50_000);
    assert_eq!(
        fills(),
        before + 3,
        "a fault that continues nothing maps nothing ahead"
    );
}

#[test]
fn a_failed_fill_poisons_the_page_until_retry() {
    use std::io::Write;
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 8) else { return };
    m.set_fault_around(0);
    // A write(2) from the mapping faults on the page from kernel mode: where a load would get
    // SIGBUS, the system call fails with EFAULT, which a test can see.
    let copy_out = |p: u64| {
        let mut sink = tempfile::tempfile().unwrap();
        // SAFETY: page p of the mapping; nothing stores to it meanwhile.
        let src = unsafe { std::slice::from_raw_parts(m.as_ptr().add(p as usize * PAGE), PAGE) };
        sink.write_all(src)
    };
    b.fail_fill.store(true, SeqCst);
    let e = copy_out(3).expect_err("a page whose fill failed is not readable");
    assert_eq!(
        e.raw_os_error(),
        Some(14),
        "EFAULT: the page is poisoned, not zeros"
    );
    b.fail_fill.store(false, SeqCst);
    let e = copy_out(3).expect_err("the poison stays until retry");
    assert_eq!(e.raw_os_error(), Some(14));
    m.retry(3).unwrap();
    copy_out(3).expect("filled again after retry");
    assert_eq!(load(&m, 3), 3000, "the page's content");
    assert!(m.retry(8).is_err(), "a page past the end");
    assert!(m.retry(u64::MAX).is_err(), "however far");
}

#[test]
fn a_mapping_has_one_to_64_handler_threads() {
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    if map(&pages, &b, 1).is_none() {
        return;
    }
    for bad in [0, 65, usize::MAX] {
        let r = Mapping::builder()
            .handlers(bad)
            .build(&pages, b.clone(), PAGE as u64);
        assert!(
            matches!(&r, Err(Error::Map(e)) if e.to_string().contains("handler threads")),
            "{bad} handlers: {r:?}"
        );
    }
    let m = Mapping::builder()
        .handlers(64)
        .fault_around(7)
        .build(&pages, b.clone(), 4 * PAGE as u64)
        .unwrap();
    assert_eq!(m.fault_around(), 7);
    assert_eq!(load(&m, 3), 3000);
}

#[test]
fn fault_around_in_a_small_pool_fills_each_page_of_a_scan_once() {
    // A window as large as the pool would evict its own pages (the helper's reproduction:
    // 16 frames, 512 pages, bound 32: 784 fills). A window takes at most a quarter of the pool.
    let pages = pool(16);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 512) else {
        return;
    };
    for p in 0..512 {
        assert_eq!(load(&m, p), p * 1000);
    }
    let s = m.stats();
    assert_eq!(b.fills.load(SeqCst), 512, "each page filled once: {s:?}");
    assert!(s.faults < 512 / 3, "fault-around saved faults: {s:?}");
    assert_eq!(s.faults + s.mapped_ahead, 512, "{s:?}");
}

#[test]
fn a_store_stream_maps_nothing_ahead() {
    let pages = pool(64);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 128) else {
        return;
    };
    for p in 0..128 {
        store(&m, p, p + 1);
    }
    let s = m.stats();
    assert_eq!(
        s.mapped_ahead, 0,
        "a store's page is mapped writable, no stream: {s:?}"
    );
    assert_eq!(s.faults, 128, "{s:?}");
    m.sync().unwrap();
    for p in 0..128 {
        assert_eq!(b.word(p), p + 1);
    }
}

#[test]
fn a_zero_length_mapping_is_refused() {
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    if map(&pages, &b, 1).is_none() {
        return;
    }
    let r = Mapping::new(&pages, b.clone(), 0);
    assert!(
        matches!(&r, Err(Error::Map(e)) if e.to_string().contains("0 bytes")),
        "{r:?}"
    );
    let r = Mapping::new(&pages, b.clone(), u64::MAX);
    assert!(matches!(r, Err(Error::Map(_))), "{r:?}");
}

#[test]
fn close_reports_a_failed_write_back_and_loses_nothing() {
    let pages = pool(4);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 4) else { return };
    let object = m.object().clone();
    store(&m, 2, 77);
    b.fail_flush.store(true, SeqCst);
    assert!(
        matches!(m.close(), Err(Error::WriteBack { .. })),
        "close says its write-back failed"
    );
    assert!(
        !object.is_closed(),
        "the object stays open with its dirty page"
    );
    b.fail_flush.store(false, SeqCst);
    object.close().unwrap();
    assert_eq!(
        b.word(2),
        77,
        "the store reached the backing store once write-back worked"
    );
}

#[test]
fn a_window_over_a_page_mapped_already_maps_the_others_and_keeps_it() {
    let pages = pool(64);
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 16) else { return };
    assert_eq!(load(&m, 3), 3000); // page 3 mapped first
    assert_eq!(load(&m, 0), 0); // a jump: no stream
    assert_eq!(load(&m, 1), 1000); // the stream: pages 2..=5 ahead, 3 mapped already
    let s = m.stats();
    assert_eq!(s.mapped_ahead, 3, "2, 4 and 5 mapped, 3 kept: {s:?}");
    assert_eq!(s.faults, 3, "{s:?}");
    for p in 2..6 {
        assert_eq!(load(&m, p), p * 1000, "page {p}");
    }
    assert_eq!(m.stats().faults, 3, "pages mapped ahead take no fault");
    assert_eq!(b.fills.load(SeqCst), 6, "pages 0 to 5, each once");
}

#[test]
fn a_scan_served_by_four_handlers_still_maps_ahead() {
    // One stream per mapping, whichever handler reads a fault (with one per handler, a scan's
    // faults alternate between them and look like jumps).
    let pages = pool(256);
    let b = Arc::new(Backing::default());
    if map(&pages, &b, 1).is_none() {
        return;
    }
    let m = Mapping::builder()
        .handlers(4)
        .build(&pages, b.clone(), 256 * PAGE as u64)
        .unwrap();
    for p in 0..256 {
        assert_eq!(load(&m, p), p * 1000);
    }
    let s = m.stats();
    assert!(s.faults < 256 / 3, "{s:?}");
    assert_eq!(b.fills.load(SeqCst), 256, "each page filled once: {s:?}");
}

/// The fault on page 32 in a full pool of 32 frames (FIFO) evicts pages 0 to `batch - 1`,
/// writing each back, and leaves the frames beyond the one it fills free.
fn one_batch(batch: u32) -> (Pages, Arc<Backing>, Option<Mapping>) {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(32)
        .policy(Policy::Fifo)
        .evict_batch(batch)
        .build()
        .unwrap();
    let b = Arc::new(Backing::default());
    let Some(m) = map(&pages, &b, 64) else {
        return (pages, b, None);
    };
    for p in 0..32 {
        store(&m, p, p + 1);
    }
    assert_eq!(pages.census().unwrap().free, 0);
    store(&m, 32, 33);
    (pages, b, Some(m))
}

#[test]
fn a_batched_eviction_writes_back_its_pages_and_frees_the_frames_beyond_the_first() {
    let (pages, b, Some(m)) = one_batch(8) else {
        return;
    };
    let (c, s) = (pages.census().unwrap(), pages.stats());
    assert_eq!(c.free, 7, "the batch's other frames are free: {c:?}");
    assert_eq!((s.reclaims, s.writebacks), (8, 8), "{s:?}");
    for p in 0..64 {
        let written = b.word(p);
        if p < 8 {
            assert_eq!(
                written,
                p + 1,
                "page {p} was written back before its frame went"
            );
        } else {
            assert_eq!(
                written,
                p * 1000,
                "page {p} was not evicted, nor written back"
            );
        }
    }
    // The next seven faults take the free frames without evicting anything.
    for p in 33..40 {
        store(&m, p, p + 1);
    }
    assert_eq!(pages.stats().reclaims, 8);
    assert_eq!(pages.census().unwrap().free, 0);
    for p in 0..40 {
        assert_eq!(load(&m, p), p + 1, "page {p} through the mapping");
    }
}

#[test]
fn without_batching_an_eviction_takes_one_page() {
    let (pages, b, Some(_m)) = one_batch(1) else {
        return;
    };
    assert_eq!(pages.census().unwrap().free, 0);
    assert_eq!((pages.stats().reclaims, pages.stats().writebacks), (1, 1));
    assert_eq!((b.word(0), b.word(1)), (1, 1000));
}
