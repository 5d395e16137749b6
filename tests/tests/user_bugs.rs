//! Reproductions of the bugs a new user reported (issue 17), kept as tests on real threads. The
//! race ones are also scenarios (SPEC.md C23, C24) under loom and shuttle.

use pagecore::{Access, ComputedAccessor, Error, Pages};
use std::time::Duration;

/// Bug 5: `Grant::upgrade` on an object whose accessor is not writable returned `Ok`, and the
/// next sync failed `WriteBack(Unsupported)` with an error record left on the page for the
/// object's life. It must fail `ReadOnly` like a write request, and leave the read grant usable.
#[test]
fn upgrade_on_a_read_only_object_is_refused() {
    let pages = Pages::builder().page_size(64).frames(4).build().unwrap();
    let obj = pages
        .open(
            ComputedAccessor::new(|p, buf| {
                buf.fill(p as u8);
                Ok(())
            }),
            64 * 8,
        )
        .unwrap();
    let client = obj.register().unwrap();
    let mut g = client.request(1, Access::Read).unwrap();
    assert!(matches!(g.upgrade(), Err(Error::ReadOnly)), "upgrade");
    assert!(
        matches!(
            g.upgrade_timeout(Duration::from_millis(5)),
            Err(Error::ReadOnly)
        ),
        "upgrade_timeout"
    );
    assert_eq!(g.access(), Access::Read, "the grant stays a read grant");
    assert_eq!(g[0], 1);
    assert!(g.bytes_mut().is_err(), "a read grant is not writable");
    drop(g);
    obj.sync()
        .expect("nothing was written, so nothing to write back");
    assert!(obj.page_error(1).unwrap().is_none());
    assert_eq!(pages.census().unwrap().dirty, 0);
}

/// A store whose write-backs fail often, a few with unusual errors: one flush in ten fails, and
/// one failure in ten is unusual (EPERM, or the accessor's own `io::Error::other`); the rest
/// are EIO, ENOSPC or EDQUOT. Deterministic in the order of its calls; `heal` stops the failures.
struct Flaky {
    store: std::sync::Mutex<std::collections::HashMap<u64, Vec<u8>>>,
    calls: std::sync::atomic::AtomicU64,
    healed: std::sync::atomic::AtomicBool,
}

impl Flaky {
    fn new() -> Self {
        Self {
            store: Default::default(),
            calls: Default::default(),
            healed: Default::default(),
        }
    }

    fn heal(&self) {
        self.healed.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl pagecore::Accessor for Flaky {
    fn fill(&self, page: u64, buf: &mut [u8]) -> std::io::Result<()> {
        match self.store.lock().unwrap().get(&page) {
            Some(b) => buf.copy_from_slice(b),
            None => buf.fill(0),
        }
        Ok(())
    }

    fn flush(&self, page: u64, buf: &[u8]) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.calls.fetch_add(1, SeqCst);
        // A cheap mix of the call number: 10% fail, 10% of those unusually.
        let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % 1000;
        if !self.healed.load(SeqCst) && h < 100 {
            return Err(match h {
                0..5 => std::io::Error::from_raw_os_error(1), // EPERM
                5..10 => std::io::Error::other("the accessor's own error"),
                10..40 => std::io::Error::from_raw_os_error(5),
                40..70 => std::io::Error::from_raw_os_error(28),
                _ => std::io::Error::from_raw_os_error(122),
            });
        }
        self.store.lock().unwrap().insert(page, buf.to_vec());
        Ok(())
    }
}

/// Bug 1 on real threads (the race itself is scenario C23): 6 threads do random reads, writes
/// and syncs over 96 pages of one object through 16 frames while write-backs fail as [`Flaky`]
/// says. No operation may fail with anything but a write-back error; every page must read what
/// its (single) writer last wrote; after healing, sync must succeed and clear every page's
/// error, and the arbitration state must be consistent. On real threads this is a smoke test:
/// the race window is found in seconds by loom and shuttle (C23), not reliably here.
#[test]
fn unusual_writeback_errors_never_break_a_page() {
    use std::sync::Arc;
    const PAGES: u64 = 96;
    const THREADS: u64 = 6;
    for round in 0..4u64 {
        let pages = Pages::builder().page_size(64).frames(16).build().unwrap();
        let flaky = Arc::new(Flaky::new());
        let obj = pages.open(flaky.clone(), PAGES * 64).unwrap();
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let obj = obj.clone();
                std::thread::spawn(move || {
                    // Page p is written by thread p % THREADS only: its last value is known.
                    let mut last = std::collections::HashMap::new();
                    let mut x = (round * 31 + t + 1).wrapping_mul(0x2545_F491_4F6C_DD1D);
                    for i in 0..30000u64 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let mine = (x % (PAGES / THREADS)) * THREADS + t;
                        let any = (x >> 20) % PAGES;
                        let r = match x % 10 {
                            0..4 => obj.write(mine).map(|mut g| {
                                g[..8].copy_from_slice(&(i + 1).to_le_bytes());
                                last.insert(mine, i + 1);
                            }),
                            4..9 => obj.read(any).map(|g| {
                                let v = u64::from_le_bytes(g[..8].try_into().unwrap());
                                if any % THREADS == t {
                                    assert_eq!(v, last.get(&any).copied().unwrap_or(0));
                                }
                            }),
                            _ => obj.sync(),
                        };
                        match r {
                            Ok(()) | Err(Error::WriteBack { .. }) => {}
                            Err(e) => panic!("thread {t}, op {i}: {e}"),
                        }
                    }
                    last
                })
            })
            .collect();
        let mut expect = std::collections::HashMap::new();
        for w in workers {
            expect.extend(w.join().unwrap());
        }
        obj.arbitration().expect("I9-I12 after the run");
        flaky.heal();
        let _ = obj.sync(); // may report a failure recorded by a reclaim, once
        obj.sync().expect("a sync once the store is healed");
        for p in 0..PAGES {
            assert!(
                obj.page_error(p).unwrap().is_none(),
                "page {p} kept an error"
            );
            let v = u64::from_le_bytes(obj.read(p).unwrap()[..8].try_into().unwrap());
            assert_eq!(v, expect.get(&p).copied().unwrap_or(0), "page {p}");
            let stored = flaky.store.lock().unwrap().get(&p).cloned();
            let s = stored.map_or(0, |b| u64::from_le_bytes(b[..8].try_into().unwrap()));
            assert_eq!(s, expect.get(&p).copied().unwrap_or(0), "stored page {p}");
        }
        let a = obj.arbitration().expect("I9-I12 at the end");
        assert_eq!(a.error_pages, 0);
        assert_eq!(pages.census().unwrap().pinned, 0);
    }
}

/// Bug 4: `open` with a huge limit aborted the process (the access map's top level was sized
/// from the limit: 64 TiB of pointers for `u64::MAX`). Any limit now opens a sparse object that
/// costs what its used pages cost.
#[test]
fn a_huge_object_is_sparse() {
    use pagecore::MemoryAccessor;
    let pages = Pages::builder().page_size(4096).frames(4).build().unwrap();
    for limit in [u64::MAX, 1 << 62, (1 << 40) + 1] {
        let obj = pages.open(MemoryAccessor::new(), limit).unwrap();
        let last = obj.page_count() - 1;
        assert_eq!(obj.page_count(), limit.div_ceil(4096));
        for (i, p) in [0, 1 << 20, last / 2, last].into_iter().enumerate() {
            obj.write(p).unwrap()[0] = i as u8 + 1;
        }
        for (i, p) in [0, 1 << 20, last / 2, last].into_iter().enumerate() {
            assert_eq!(obj.read(p).unwrap()[0], i as u8 + 1, "page {p}");
        }
        assert!(matches!(obj.read(last + 1), Err(Error::OutOfRange { .. })));
        let tail = limit - 3;
        obj.write_at(tail, &[7, 8, 9]).unwrap();
        let mut buf = [0; 3];
        obj.read_at(tail, &mut buf).unwrap();
        assert_eq!(buf, [7, 8, 9]);
        assert!(
            obj.write_at(limit - 2, &[1, 2, 3]).is_err(),
            "past the limit"
        );
        obj.close().unwrap();
    }
    let anon = pages.anonymous(1 << 62).unwrap();
    anon.write((1 << 50) - 1).unwrap()[0] = 5;
    assert_eq!(anon.read((1 << 50) - 1).unwrap()[0], 5);
    assert_eq!(anon.read(1 << 49).unwrap()[0], 0);
    let copy = anon.copy().unwrap();
    assert_eq!(copy.read((1 << 50) - 1).unwrap()[0], 5);
    assert_eq!(pages.census().unwrap().total(), 4);
}

/// Bug 2 on real threads (the race itself is scenario C24): an anonymous object of 64 pages
/// through 16 frames, every page written; two threads read random pages while the main thread
/// copies the object, writes the copy and drops it, over and over (each drop leaves the object
/// the only reader of a frozen layer, which the readers' misses collapse). A read of a present
/// page must never fail: it failed `Fill("frozen layer asked for page N, which it does not
/// hold")` when a collapse moved a page's swap slot out of the layer while the layer was filling
/// that page from it.
///
/// The same recipe showed a second bug (3 to 6 runs in 10 on the 2-core VM, once bug 2's fix
/// unmasked it): a page read as zeros. Two collapses one level apart (a miss collapsing the
/// object's layer into it, another's walk collapsing the layer below into that layer) ran in
/// turn, the second one's check that the layer still read through the one below made before
/// the locks that order them: it moved the lower layer's pages into the layer just unlinked
/// (scenario C35). 0 runs in 20 fail since.
#[test]
fn reads_never_fail_while_copies_come_and_go() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    use std::sync::Arc;
    let pages = Pages::builder().page_size(64).frames(16).build().unwrap();
    let obj = pages.anonymous(64 * 64).unwrap();
    for p in 0..64u64 {
        obj.write(p).unwrap()[..8].copy_from_slice(&(p + 100).to_le_bytes());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2u64)
        .map(|t| {
            let (obj, stop) = (obj.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut x = t + 7;
                let mut reads = 0u64;
                while !stop.load(SeqCst) || reads < 1000 {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let p = (x >> 33) % 64;
                    let g = obj
                        .read(p)
                        .unwrap_or_else(|e| panic!("read of page {p}: {e}"));
                    assert_eq!(u64::from_le_bytes(g[..8].try_into().unwrap()), p + 100);
                    reads += 1;
                }
            })
        })
        .collect();
    for i in 0..3000u64 {
        let s = obj.copy().unwrap();
        s.write(i * 3 % 64).unwrap()[0] = 0xFF;
        assert_eq!(
            s.read((i * 3 + 1) % 64).unwrap()[0],
            ((i * 3 + 1) % 64 + 100) as u8
        );
        drop(s);
    }
    stop.store(true, SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    assert!(obj.compact() <= 1);
    for p in 0..64u64 {
        let v = u64::from_le_bytes(obj.read(p).unwrap()[..8].try_into().unwrap());
        assert_eq!(v, p + 100, "page {p}");
    }
    obj.arbitration().unwrap();
}

/// Bug 3: copies of a persistent object never went away: made and dropped in turn, each left a
/// frozen layer in the object's chain (`compact` collapsed only anonymous chains), every miss
/// walked the chain, and dropping the object closed the layers by recursion (20,000 overflowed
/// the stack and aborted the process). Copies made and dropped in turn keep the chain at most
/// one layer deep, compacted to none, and the content is the object's throughout.
#[test]
fn copies_of_a_persistent_object_go_away() {
    use pagecore::MemoryAccessor;
    use std::sync::Arc;
    let pages = Pages::builder().page_size(64).frames(16).build().unwrap();
    let store = Arc::new(MemoryAccessor::new());
    let obj = pages.open(store.clone(), 64 * 64).unwrap();
    let mut expect = [0u8; 64];
    for i in 0..300u64 {
        let c = obj.copy().unwrap();
        let p = (i % 64) as usize;
        obj.write(p as u64).unwrap()[1] = i as u8;
        // The copy keeps the snapshot: the page as it was before this write.
        assert_eq!(
            c.read(p as u64).unwrap()[1],
            expect[p],
            "copy {i}, page {p}"
        );
        expect[p] = i as u8;
        drop(c);
        assert!(
            obj.copy_stats().depth <= 1,
            "copy {i}: {:?}",
            obj.copy_stats()
        );
    }
    assert_eq!(obj.compact(), 0);
    for p in 0..64u64 {
        assert_eq!(obj.read(p).unwrap()[1], expect[p as usize], "page {p}");
    }
    obj.sync().unwrap();
    for p in 0..64u64 {
        let stored = store.stored(p).map_or(0, |b| b[1]);
        assert_eq!(stored, expect[p as usize], "stored page {p}");
    }
    // Copies alive: the chain is as deep as they need; each still reads its snapshot, and
    // once they go, the object's chain collapses to nothing.
    let copies: Vec<_> = (0..20u64)
        .map(|i| {
            let c = obj.copy().unwrap();
            obj.write(i).unwrap()[2] = 1;
            c
        })
        .collect();
    for (i, c) in copies.iter().enumerate() {
        for p in 0..20u64 {
            assert_eq!(
                c.read(p).unwrap()[2],
                (p < i as u64) as u8,
                "copy {i} page {p}"
            );
        }
    }
    drop(copies);
    // The frozen layers of a persistent chain do not collapse into each other yet (SPEC §9):
    // the chain stays as deep as it was, never deeper, and reads right.
    assert!(obj.compact() <= 20);
    for p in 0..20u64 {
        assert_eq!(obj.read(p).unwrap()[2], 1, "page {p}");
    }
    assert_eq!(pages.census().unwrap().pinned, 0);
}

/// Bug 3's abort: a chain of 20,000 frozen layers (a copy each, alive while the next is made)
/// is closed by a loop, not a recursion, when the copies and then the object go.
#[test]
fn dropping_a_deep_chain_does_not_recurse() {
    // Run on a thread with a small stack: a recursion of 20,000 closes would overflow it.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            use pagecore::MemoryAccessor;
            let pages = Pages::builder().page_size(64).frames(8).build().unwrap();
            let obj = pages.open(MemoryAccessor::new(), 64 * 4).unwrap();
            obj.write(0).unwrap()[0] = 9;
            let copies: Vec<_> = (0..20_000).map(|_| obj.copy().unwrap()).collect();
            assert_eq!(obj.copy_stats().depth, 20_000);
            assert_eq!(copies[0].read(0).unwrap()[0], 9);
            drop(copies);
            drop(obj); // closes 20,000 layers, each the last reader of the one below
            assert_eq!(pages.census().unwrap().free, 8);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// Smaller ones: a pool refuses a swap area of another page size at `build` (every page-out
/// would have failed later); the arbitration side table gives its memory back once the pages
/// with side state are gone; a write-back error names the object of the page; a failed `close`
/// can be retried through the same handle.
#[test]
fn the_smaller_ones() {
    use pagecore::MemoryAccessor;
    use pagecore::SwapArea;
    use std::sync::Arc;
    let area = Arc::new(SwapArea::temporary(512, 16).unwrap());
    let r = Pages::builder().page_size(4096).swap(area).build();
    assert!(
        matches!(
            r,
            Err(Error::SwapPageSize {
                slot_size: 512,
                page_size: 4096
            })
        ),
        "{r:?}"
    );

    let pages = Pages::builder().page_size(64).frames(512).build().unwrap();
    let obj = pages.open(MemoryAccessor::new(), 64 * 400).unwrap();
    let empty = obj.arbitration().unwrap().side_bytes;
    {
        let clients: Vec<_> = (0..6).map(|_| obj.register().unwrap()).collect();
        let grants: Vec<_> = (0..400u64)
            .flat_map(|p| clients.iter().map(move |c| (c, p)))
            .map(|(c, p)| c.request(p, Access::Read).unwrap())
            .collect();
        let busy = obj.arbitration().unwrap();
        assert_eq!(busy.side_entries, 400, "six readers each: out of line");
        assert!(busy.side_bytes > empty + 400 * 8, "{busy:?}");
        drop(grants);
    }
    let after = obj.arbitration().unwrap();
    assert_eq!(after.side_entries, 0);
    assert!(
        after.side_bytes <= empty + 1024,
        "{after:?} (empty: {empty})"
    );

    struct FailOnce(std::sync::atomic::AtomicBool);
    impl pagecore::Accessor for FailOnce {
        fn fill(&self, _: u64, buf: &mut [u8]) -> std::io::Result<()> {
            buf.fill(0);
            Ok(())
        }
        fn flush(&self, _: u64, _: &[u8]) -> std::io::Result<()> {
            if self.0.swap(false, std::sync::atomic::Ordering::SeqCst) {
                return Err(std::io::Error::from_raw_os_error(5));
            }
            Ok(())
        }
    }
    let pages = Pages::builder().page_size(64).frames(1).build().unwrap();
    let a = pages
        .open(FailOnce(std::sync::atomic::AtomicBool::new(false)), 64 * 2)
        .unwrap();
    let b = pages.open(MemoryAccessor::new(), 64 * 2).unwrap();
    b.write(1).unwrap()[0] = 1;
    let fail = FailOnce(std::sync::atomic::AtomicBool::new(true));
    let c = pages.open(fail, 64 * 2).unwrap();
    c.write(1).unwrap()[0] = 2; // reclaims b's page 1 (written back fine)
    match a.read(0) {
        // reclaiming c's page 1 fails: the error names c, not a
        Err(Error::WriteBack {
            object, page: 1, ..
        }) => assert_eq!(object, c.id()),
        other => panic!("{other:?}"),
    }
    assert_ne!(a.id(), c.id());
    drop(a);
    // c's page 1 is written back by the close (the failure was once), which then reports the
    // failure the reclaim recorded, once, as fsync does.
    assert!(matches!(c.close(), Err(Error::WriteBack { .. })));
    assert!(c.is_closed());
    c.close().unwrap();
    // A failed close leaves the handle usable: close again.
    let e = pages
        .open(FailOnce(std::sync::atomic::AtomicBool::new(true)), 64)
        .unwrap();
    e.write(0).unwrap()[0] = 3;
    assert!(matches!(e.close(), Err(Error::WriteBack { .. })));
    assert!(!e.is_closed());
    e.close().unwrap();
    assert!(e.is_closed());
}

/// Item 5: a miss whose own resolution collapses its object's backing keeps its fill. The
/// collapse moved the missing page up too (and bumped the object's copy epoch), so the miss,
/// which had found nothing below any more, obtained a frame (here: reclaimed a page, writing it
/// to swap), filled it, threw it away at publication and started again. Now the collapse leaves
/// a page with a fill in flight where it is, and the miss resolves it there: no frame is
/// obtained, nothing is reclaimed.
#[test]
fn a_miss_keeps_its_fill_through_its_own_collapse() {
    let pages = Pages::builder().page_size(64).frames(8).build().unwrap();
    let x = pages.anonymous(64 * 8).unwrap();
    for p in 0..8u64 {
        x.write(p).unwrap()[0] = p as u8 + 1;
    }
    let y = x.copy().unwrap();
    x.close().unwrap(); // y is the layer's only reader now; every frame is the layer's
    let before = pages.stats();
    assert_eq!(pages.census().unwrap().free, 0, "{before:?}");
    assert_eq!(y.read(5).unwrap()[0], 6); // resolves page 5 in the layer, collapsing the rest
    let after = pages.stats();
    assert_eq!(
        after.reclaims, before.reclaims,
        "a frame was obtained for nothing"
    );
    assert_eq!(after.fills, before.fills);
    assert_eq!(y.compact(), 0);
    for p in 0..8u64 {
        assert_eq!(y.read(p).unwrap()[0], p as u8 + 1);
    }
    assert_eq!(pages.stats().reclaims, before.reclaims);
}
