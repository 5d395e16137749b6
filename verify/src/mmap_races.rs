//! Mapped-memory races (M1-M19, SPEC §2.8 and §6): the mapping's protocol (`MapCore`) over the
//! simulated MMU (`SimMmu`), whose CPUs are threads calling `load`/`store` and whose handler is
//! a thread serving faults until the mapping ends. Page size 8: a CPU's access is one `u64`.

use crate::{
    assert_conserved, assert_settled, initial, open, pool, read, write, Store, A, B, PAGE,
};
use pagecore::internals::mmap::{CpuError, MapCore, SimMmu};
use pagecore::internals::sync::atomic::Ordering::SeqCst;
use pagecore::internals::sync::{thread, Arc};
use pagecore::Pages;

/// A mapping of a one-page store object (page 0 holds `initial(A, 0)`), and its handler thread.
fn mapped(pages: &Pages) -> (Arc<MapCore<SimMmu>>, Arc<Store>, thread::JoinHandle<u64>) {
    mapped_n(pages, 1)
}

/// As [`mapped`], with `n` pages (page p holds `initial(A, p)`).
fn mapped_n(pages: &Pages, n: u64) -> (Arc<MapCore<SimMmu>>, Arc<Store>, thread::JoinHandle<u64>) {
    let s = Store::new(n as usize, A);
    let mmu = SimMmu::new(n, PAGE).expect("sim mmu");
    let core = Arc::new(MapCore::new(pages, s.clone(), mmu).expect("mapping"));
    let h = {
        let core = core.clone();
        thread::spawn(move || MapCore::serve_all(&core))
    };
    (core, s, h)
}

/// Another object's `n` pages read in turn (a pool of `n` frames: every frame evicted and
/// taken), then dropped.
fn evict_all(pages: &Pages, n: u64) {
    let sb = Store::new(n as usize, B);
    let b = open(pages, &sb, n);
    for q in 0..n {
        assert_eq!(read(&b, q).unwrap().0, initial(B, q));
    }
}

/// A private mapping of `x`'s object over `n` simulated pages, and its handler thread.
fn private_of(x: &MapCore<SimMmu>, n: u64) -> (Arc<MapCore<SimMmu>>, thread::JoinHandle<u64>) {
    let mmu = SimMmu::new(n, PAGE).expect("sim mmu");
    let p = Arc::new(MapCore::private(x.object(), mmu).expect("private mapping"));
    let h = {
        let p = p.clone();
        thread::spawn(move || MapCore::serve_all(&p))
    };
    (p, h)
}

/// Ends a mapping beside others (its object may stay open), joins its handler.
fn end_view(core: Arc<MapCore<SimMmu>>, h: thread::JoinHandle<u64>) {
    core.close().expect("close");
    h.join().unwrap();
    drop(core);
}

/// Ends the mapping, joins its handler, and checks the pool settles with every frame free.
fn end(pages: &Pages, core: Arc<MapCore<SimMmu>>, h: thread::JoinHandle<u64>, name: &str) {
    core.close().expect("close");
    h.join().unwrap();
    drop(core);
    assert_settled(pages, name);
    let c = assert_conserved(pages);
    assert_eq!(
        c.free,
        c.total(),
        "{name}: frames outlived the mapping: {c:?}"
    );
}

/// M1 eviction vs a store through the mapping: one frame; the CPU stored 1 into A0 (mapped
/// writable, dirty) and a thread stores 2 while the main thread faults another object's B0,
/// which reclaims A0: the page is taken, its table entry zapped, its bytes written back, given
/// up, and the entry emptied. The store lands before the zap (then the write-back carries it)
/// or faults after it and waits for the page, which is filled again from the written-back
/// bytes once B0's guard is gone. After a sync the store holds 2 and a load reads 2; B0 right;
/// nothing pinned; every frame free once the mapping ends. Without the zap, a store after the
/// write-back's read is lost with the page: both checkers fail.
pub fn m1_evict_vs_store() {
    let pages = pool(1);
    let (core, s, h) = mapped(&pages);
    core.mmu().store(0, 1).unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().store(0, 2).unwrap())
    };
    let vb = read(&b, 0).unwrap().0;
    t.join().unwrap();
    assert_eq!(vb, initial(B, 0), "M1: the other object's fault");
    core.sync().unwrap();
    assert_eq!(s.get(0), 2, "M1: the store through the mapping was lost");
    assert_eq!(
        core.mmu().load(0),
        Ok(2),
        "M1: the mapping reads a stale page"
    );
    drop(b);
    end(&pages, core, h, "M1");
}

/// M2 two faults on one page: two CPUs load A0 (absent) at once. The page is filled once (the
/// second fault joins the first's fill, or finds the page resident, or is not even queued: a
/// page has one fault queued at a time), both read the stored value, the later service's map
/// finds the page mapped and wakes instead; nothing pinned; frames free after.
pub fn m2_two_faults_one_fill() {
    let pages = pool(1);
    let (core, s, h) = mapped(&pages);
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().load(0).unwrap())
    };
    let v = core.mmu().load(0).unwrap();
    assert_eq!(
        (v, t.join().unwrap()),
        (initial(A, 0), initial(A, 0)),
        "M2: a CPU read wrong bytes"
    );
    assert_eq!(s.fills.load(SeqCst), 1, "M2: the page was filled twice");
    end(&pages, core, h, "M2");
}

/// M3 sync vs a store: the CPU stored 1 into A0 (writable, dirty) and a thread stores 2 while
/// the main thread syncs. Sync write-protects the page before it reads it, so when it returns
/// the store holds 2, or the page is dirty again (the store faulted on the protection and its
/// service, which waited for sync's pin, set DIRTY before making the page writable: IM1); a
/// second sync then stores 2. Never is the page clean with the store not holding 2.
pub fn m3_sync_vs_store() {
    let pages = pool(1);
    let (core, s, h) = mapped(&pages);
    core.mmu().store(0, 1).unwrap();
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().store(0, 2).unwrap())
    };
    core.sync().unwrap();
    t.join().unwrap();
    if s.get(0) != 2 {
        assert_eq!(
            pages.census().unwrap().dirty,
            1,
            "M3: a store through the mapping is neither written back nor dirty"
        );
    }
    core.sync().unwrap();
    assert_eq!(s.get(0), 2, "M3: the store through the mapping was lost");
    end(&pages, core, h, "M3");
}

/// M4 a fault vs the mapping's end: a CPU loads A0 while the main thread closes the mapping.
/// The load reads the stored value or fails `Unmapped` (never hangs, never reads anything
/// else); the handler ends; nothing pinned; every frame free.
pub fn m4_fault_vs_close() {
    let pages = pool(1);
    let (core, _s, h) = mapped(&pages);
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().load(0))
    };
    core.close().unwrap();
    let r = t.join().unwrap();
    assert!(
        r == Ok(initial(A, 0)) || r == Err(CpuError::Unmapped),
        "M4: a load racing the mapping's end got {r:?}"
    );
    end(&pages, core, h, "M4");
}

/// M5 a fill error vs the faults waiting for it: the store fails fills (EIO) and two CPUs load
/// A0. Both get a bus error (the page is poisoned), never zeros; nothing pinned. Once fills
/// work again and the page is retried (its poison cleared), a load fills and reads the value.
pub fn m5_fill_error_vs_waiting_faults() {
    let pages = pool(1);
    let (core, s, h) = mapped(&pages);
    s.fail_fill.store(5, SeqCst); // EIO
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().load(0))
    };
    let r = core.mmu().load(0);
    assert_eq!(
        (r, t.join().unwrap()),
        (Err(CpuError::SigBus), Err(CpuError::SigBus)),
        "M5: a fault on a page whose fill failed"
    );
    assert_settled(&pages, "M5");
    s.fail_fill.store(0, SeqCst);
    core.retry(0);
    assert_eq!(
        core.mmu().load(0),
        Ok(initial(A, 0)),
        "M5: the retried page"
    );
    end(&pages, core, h, "M5");
}

/// M6 a fault's service vs a reclaim of the page it maps: one frame; a CPU loads A0 (absent)
/// while the main thread faults another object's B0, which needs the frame. The service maps
/// A0 while it holds the page pinned, so the reclaim waits for it or comes before the fill;
/// a map after the pin is let go could expose a page the reclaim has just given up (zeros, or
/// a later fill's bytes). The load reads A0's value; B0 right; nothing pinned; frames free.
pub fn m6_fault_service_vs_reclaim() {
    let pages = pool(1);
    let (core, _s, h) = mapped(&pages);
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().load(0).unwrap())
    };
    let vb = read(&b, 0).unwrap().0;
    assert_eq!(
        t.join().unwrap(),
        initial(A, 0),
        "M6: the load read a page given up"
    );
    assert_eq!(vb, initial(B, 0), "M6: the other object's fault");
    drop(b);
    end(&pages, core, h, "M6");
}

/// M7 a write guard vs a store through the mapping on the same page: the CPU stored 1 into A0
/// (writable) and a thread stores 2 while the main thread takes a write guard on A0, reads it
/// and writes 3. The guard takes the mapping's access away before it hands out the bytes, so
/// the two are ordered: the guard sees 1 and the store lands after it (a load then reads 2), or
/// it sees 2 and its 3 stays; never both at once (loom tracks the two accesses); after a sync
/// the store holds what a load reads; nothing pinned; frames free.
pub fn m7_write_guard_vs_store() {
    let pages = pool(1);
    let (core, s, h) = mapped(&pages);
    core.mmu().store(0, 1).unwrap();
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().store(0, 2).unwrap())
    };
    let seen = {
        let mut g = core.object().write(0).unwrap();
        let v = u64::from_le_bytes(g[..8].try_into().unwrap());
        g[..8].copy_from_slice(&3u64.to_le_bytes());
        v
    };
    t.join().unwrap();
    let last = core.mmu().load(0).unwrap();
    match seen {
        1 => assert_eq!(last, 2, "M7: the store before the guard's write"),
        2 => assert_eq!(last, 3, "M7: the guard's write lost"),
        v => panic!("M7: the guard read {v}"),
    }
    core.sync().unwrap();
    assert_eq!(
        s.get(0),
        last,
        "M7: the store does not hold what the mapping reads"
    );
    end(&pages, core, h, "M7");
}

/// M8 a holder that faults while a store waits for it: two frames; the main thread holds a read
/// guard on A0 while a CPU thread stores 2 into A0 (its service must wait for the guard), then
/// loads A1 through the mapping. The handler that reads the faults never waits for a page's
/// holders or a frame: the store's service goes to a thread of its own, so A1's fault is served
/// and the main thread lets its guard go (a handler that waited for the guard deadlocks here:
/// both checkers report it). A1 reads its value; A0 reads 2 after; nothing pinned; frames free.
pub fn m8_holder_faults_while_a_store_waits_for_it() {
    let pages = pool(2);
    let (core, _s, h) = mapped_n(&pages, 2);
    let g = core.object().read(0).unwrap();
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().store(0, 2).unwrap())
    };
    let v1 = core.mmu().load(1).unwrap();
    drop(g);
    t.join().unwrap();
    assert_eq!(v1, initial(A, 1), "M8: the holder's own fault");
    assert_eq!(core.mmu().load(0), Ok(2), "M8: the waiting store");
    end(&pages, core, h, "M8");
}

/// M9 fault-around vs a store: one frame, two pages. The main thread maps A1 ahead of a
/// fault on A0 (`MapCore::map_ahead`, as a sequential stream's service does) while a CPU
/// thread stores 2 into A1. Fault-around maps a page read-only under a read pin, as a load's
/// service does: the store then faults on the protection (or on the absent page) and its
/// service sets DIRTY before it makes the page writable (IM1). After a sync the store holds 2
/// and a load of A1 reads 2; nothing pinned; frames free. Mapped writable, the store can land
/// on a clean page, which the sync skips (mutant 091). (The map under the pin against a
/// reclaim is M6's, the same step.)
pub fn m9_fault_around_vs_store() {
    let pages = pool(1);
    let (core, s, h) = mapped_n(&pages, 2);
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().store(1, 2).unwrap())
    };
    core.map_ahead(0, 1);
    t.join().unwrap();
    core.sync().unwrap();
    assert_eq!(s.get(1), 2, "M9: the store on a page mapped ahead was lost");
    assert_eq!(
        core.mmu().load(1),
        Ok(2),
        "M9: the mapping reads a stale page"
    );
    end(&pages, core, h, "M9");
}

/// M10 two handler threads: two frames, two pages; two CPUs load A0 and A1 at once while two
/// handlers read the faults (`Mapping::builder().handlers(2)`). Each page is filled once and
/// reads its value whichever handler serves it; closing the mapping ends both handlers; nothing
/// pinned; frames free. (Fault-around takes no part: a window takes at most a quarter of the
/// pool's frames, none of two; M9 checks it.)
pub fn m10_two_handlers() {
    let pages = pool(2);
    let s = Store::new(2, A);
    let mmu = SimMmu::new(2, PAGE).expect("sim mmu");
    let core = Arc::new(MapCore::new(&pages, s.clone(), mmu).expect("mapping"));
    let handlers: Vec<_> = (0..2)
        .map(|_| {
            let core = core.clone();
            thread::spawn(move || MapCore::serve_all(&core))
        })
        .collect();
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().load(1).unwrap())
    };
    let v0 = core.mmu().load(0).unwrap();
    let v1 = t.join().unwrap();
    assert_eq!(
        (v0, v1),
        (initial(A, 0), initial(A, 1)),
        "M10: a CPU read wrong bytes"
    );
    assert_eq!(s.fills.load(SeqCst), 2, "M10: a page was filled twice");
    core.close().expect("close");
    for h in handlers {
        h.join().unwrap();
    }
    drop(core);
    assert_settled(&pages, "M10");
    let c = assert_conserved(&pages);
    assert_eq!(c.free, c.total(), "M10: frames outlived the mapping: {c:?}");
}

/// Another mapping of `core`'s object (a view of the same pages: `SimMmu::share`), and its
/// handler thread.
fn share(
    core: &MapCore<SimMmu>,
    read_only: bool,
) -> (Arc<MapCore<SimMmu>>, thread::JoinHandle<u64>) {
    let view = core.mmu().share(read_only);
    let other = Arc::new(core.share(view).expect("share"));
    let h = {
        let other = other.clone();
        thread::spawn(move || MapCore::serve_all(&other))
    };
    (other, h)
}

/// M11 a store through one mapping vs a load through another: one frame, two mappings X and Y
/// of one object (sharing its pages, as two mappings of a memfd do). A thread stores 1 into A0
/// through X while the main thread loads A0 through Y; both pages are absent. The load reads
/// the stored value or 1 (never anything else); once the store has returned, a load through Y
/// reads 1 (the mappings share the page: no stale copy); the page is filled once for both; the
/// reverse map names both mappings (X's entry writable, Y's read-only); after a sync the store
/// holds 1; ending X leaves the object to Y, whose end closes it; nothing
/// pinned; frames free.
pub fn m11_store_in_one_mapping_vs_load_in_another() {
    let pages = pool(1);
    let (x, s, hx) = mapped(&pages);
    let (y, hy) = share(&x, false);
    let t = {
        let x = x.clone();
        thread::spawn(move || x.mmu().store(0, 1).unwrap())
    };
    let v = y.mmu().load(0).unwrap();
    assert!(
        v == initial(A, 0) || v == 1,
        "M11: a load through the other mapping read {v:#x}"
    );
    t.join().unwrap();
    assert_eq!(
        y.mmu().load(0),
        Ok(1),
        "M11: the other mapping reads a stale page after the store returned"
    );
    assert_eq!(s.fills.load(SeqCst), 1, "M11: the page was filled twice");
    // The reverse map names both mappings: X's entry writable (its store), Y's read-only.
    let mut at: Vec<bool> = pages
        .rmap(0)
        .expect("frame 0")
        .mappings
        .iter()
        .map(|m| m.writable)
        .collect();
    at.sort();
    assert_eq!(at, [false, true], "M11: the reverse map's mappings");
    y.sync().unwrap();
    assert_eq!(s.get(0), 1, "M11: the store through X was lost");
    x.close().expect("close X");
    hx.join().unwrap();
    assert_eq!(y.mappings(), 1, "M11: X's end left its view behind");
    end(&pages, y, hy, "M11");
}

/// M12 eviction vs stores through two mappings of one page: one frame; A0 is mapped writable
/// and dirty in both X and Y. A thread stores 2 through Y while the main thread faults another
/// object's B0, which reclaims A0: its access is taken away in every mapping (each view's entry
/// zapped) before its bytes are written back. The store lands before (and the write-back
/// carries it) or faults and waits for the page. After a sync the store holds 2 and a guard
/// reads 2; nothing pinned; frames free. Zapping only one mapping's entry lets Y's store land
/// after the write-back's read: lost (semantic mutant 092).
pub fn m12_evict_vs_stores_in_two_mappings() {
    let pages = pool(1);
    let (x, s, hx) = mapped(&pages);
    let (y, hy) = share(&x, false);
    x.mmu().store(0, 1).unwrap();
    y.mmu().store(0, 1).unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let y = y.clone();
        thread::spawn(move || y.mmu().store(0, 2).unwrap())
    };
    let vb = read(&b, 0).unwrap().0;
    t.join().unwrap();
    assert_eq!(vb, initial(B, 0), "M12: the other object's fault");
    drop(b);
    x.sync().unwrap();
    assert_eq!(s.get(0), 2, "M12: the store through Y was lost");
    assert_eq!(
        read(x.object(), 0).unwrap().0,
        2,
        "M12: the object's page is stale"
    );
    y.close().expect("close Y");
    hy.join().unwrap();
    end(&pages, x, hx, "M12");
}

/// M13 the end of one mapping vs a fault in another: one frame; A0 is mapped writable and
/// dirty in X. A thread stores 2 through Y (a fault) while the main thread closes X. X's end
/// unmaps X only: the object stays open for Y (X was not its last mapping), the store completes,
/// a load through Y reads 2 and one through X fails `Unmapped`; nothing X stored is lost (a
/// sync writes 2); Y's end closes the object; nothing pinned; frames free.
pub fn m13_close_one_mapping_vs_fault_in_another() {
    let pages = pool(1);
    let (x, s, hx) = mapped(&pages);
    let (y, hy) = share(&x, false);
    x.mmu().store(0, 1).unwrap();
    let t = {
        let y = y.clone();
        thread::spawn(move || y.mmu().store(0, 2))
    };
    x.close().expect("close X");
    hx.join().unwrap();
    assert_eq!(t.join().unwrap(), Ok(()), "M13: Y's store failed");
    assert_eq!(y.mmu().load(0), Ok(2), "M13: Y reads a stale page");
    assert_eq!(
        x.mmu().load(0),
        Err(CpuError::Unmapped),
        "M13: X still maps the page"
    );
    y.sync().unwrap();
    assert_eq!(s.get(0), 2, "M13: the store through Y was lost");
    end(&pages, y, hy, "M13");
}

/// M15 a batched eviction vs a store: two frames, a reclaim of a mapped page evicting up to two
/// at once (`PagesBuilder::evict_batch(2)`). A0 and A1 are mapped writable and dirty (1 each);
/// a thread stores 2 into A1 while the main thread reads another object's B0, whose reclaim
/// takes A0 and, if nobody pins it, A1 with it: both pages' entries are zapped (a run of
/// consecutive pages in one `zap_range`) before either is written back, and their bytes are
/// given up (`free_range`) only after. The store lands before the zap (and the write-back
/// carries it) or faults and waits for A1, which is filled again from the written-back bytes,
/// in the batch's second frame or a reclaimed one. After a sync A0 holds 1 and A1 2, the mapping
/// reads them, B0 is right; nothing pinned; frames free. A batch that wrote back before its
/// zap would lose the store (semantic mutant 093).
pub fn m15_batched_evict_vs_store() {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(2)
        .wait_bound(None)
        .swap_slots(64)
        .evict_batch(2)
        .build()
        .expect("valid pool");
    let (core, s, h) = mapped_n(&pages, 2);
    core.mmu().store(0, 1).unwrap();
    core.mmu().store(1, 1).unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().store(1, 2).unwrap())
    };
    let vb = read(&b, 0).unwrap().0;
    t.join().unwrap();
    assert_eq!(vb, initial(B, 0), "M15: the other object's fault");
    drop(b);
    core.sync().unwrap();
    assert_eq!(
        (s.get(0), s.get(1)),
        (1, 2),
        "M15: a store through the mapping was lost"
    );
    assert_eq!(
        (core.mmu().load(0), core.mmu().load(1)),
        (Ok(1), Ok(2)),
        "M15: the mapping reads a stale page"
    );
    end(&pages, core, h, "M15");
}

/// M16 a fault on a page a client holds, asked back: one frame; client 0 of the mapped object
/// (its `Revoke` callback signals the main thread) holds A0 for reading, and releases it only
/// when asked. A CPU thread stores 2 into A0: the fault's service cannot pin the page for
/// writing while the grant lives, so it goes to a thread of its own, which asks the page's
/// client holders to give it back (`Revocation::Release`, as a conflicting request would) and
/// waits. The main thread waits for the ask, then drops the grant; the store completes. A
/// service that never asks leaves both threads waiting for ever (a deadlock both checkers
/// report; on real memory a fresh-eyes pass found the store blocked past every bound). The
/// ask names A0 and `Release`; A0 reads 2 after; arbitration idle; nothing pinned; frames free.
pub fn m16_fault_asks_a_client_holder_to_release() {
    use pagecore::internals::sync::{Condvar, RawMutex};
    use pagecore::{Access, Revocation};
    let pages = pool(1);
    let (core, _s, h) = mapped(&pages);
    let asked = Arc::new((RawMutex::new(None::<(u64, Revocation)>), Condvar::new()));
    let c = {
        let asked = asked.clone();
        core.object()
            .register_with(move |page: u64, ask: Revocation| {
                *asked.0.lock().unwrap() = Some((page, ask));
                asked.1.notify_all();
            })
            .unwrap()
    };
    let g = c.request(0, Access::Read).unwrap();
    let t = {
        let core = core.clone();
        thread::spawn(move || core.mmu().store(0, 2).unwrap())
    };
    let got = {
        let mut a = asked.0.lock().unwrap();
        while a.is_none() {
            a = asked.1.wait(a).unwrap();
        }
        a.take()
    };
    assert_eq!(got, Some((0, Revocation::Release)), "M16: the ask");
    drop(g);
    t.join().unwrap();
    assert_eq!(core.mmu().load(0), Ok(2), "M16: the store");
    drop(c);
    crate::assert_arbitration_idle(core.object());
    end(&pages, core, h, "M16");
}

/// M17 a private mapping's fault vs a write to its source: three frames; the source A (a store
/// object, not mapped) read page 0 (`initial(A, 0)`), then P, a private mapping of A, was made
/// (`MapCore::private`: a copy whose pages live in its MMU; A's page moves into a frozen
/// layer, A keeps a proxy of it). A thread writes 5 into A0 through a guard (a break: A gets a
/// private page) while the CPU loads P0: P's miss resolves the page in the layer and copies the
/// layer's bytes into its own memory (no proxy), in a frame of its own. The load reads the
/// snapshot (`initial(A, 0)`), never 5. Then the CPU stores 7 into P0, and another object's two
/// pages take the frames: P's page is evicted to P's swap (it was stored to: a clean eviction
/// would lose the store), A's to its store, the layer's dropped. After, P reads 7 and A reads 5;
/// nothing pinned; frames free once both end.
pub fn m17_private_mapping_fault_vs_source_write() {
    let pages = pool(3);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    let mmu = SimMmu::new(1, PAGE).expect("sim mmu");
    let p = Arc::new(MapCore::private(&a, mmu).expect("private mapping"));
    let h = {
        let p = p.clone();
        thread::spawn(move || MapCore::serve_all(&p))
    };
    let t = {
        let a = a.clone();
        thread::spawn(move || write(&a, 0, 5).unwrap())
    };
    let v = p.mmu().load(0).unwrap();
    assert_eq!(
        v,
        initial(A, 0),
        "M17: the private mapping read {v:#x}, not the snapshot"
    );
    t.join().unwrap();
    p.mmu().store(0, 7).unwrap();
    assert_eq!(read(&a, 0).unwrap().0, 5, "M17: the source lost its write");
    evict_all(&pages, 3);
    assert_eq!(
        p.mmu().load(0),
        Ok(7),
        "M17: the private mapping's store was lost"
    );
    assert_eq!(
        read(&a, 0).unwrap().0,
        5,
        "M17: the source saw the private store"
    );
    a.close().expect("close A");
    drop(a);
    end(&pages, p, h, "M17");
}

/// M14 a private mapping's break vs a store through a shared mapping of its source: three
/// frames; the source X is mapped anonymous memory (over a swap area), and its CPU stored 1
/// into X0 (mapped writable, dirty). P, a private mapping of X, is made: the copy writes X0
/// back to X's swap (write-protecting it), and the new frozen layer takes X's swap slots, not
/// its page, which stays X's and mapped (clean, read-only). A thread stores 5 into X0 through
/// X's mapping (a write fault: `DIRTY`, then writable) while the CPU of P loads P0 and stores
/// 7 into it: P's miss resolves the page in the layer (filled from the slot the layer took)
/// and copies it into P's memory, and its store makes it P's own. P's load reads the snapshot
/// (1), never 5; X reads 5 and P 7. Then another object's three pages take every frame (X0 to
/// a new slot of X's, P0 to P's swap, the layer's page dropped), and both read their own
/// again; nothing pinned; frames free once both end. A copy that let the layer take the slot
/// without writing X0 back first leaves P reading zeros (semantic mutant 109).
pub fn m14_private_break_vs_shared_store() {
    use pagecore::{Anonymous, ShareArc, SwapArea};
    let pages = pool(3);
    let swap = ShareArc::new(SwapArea::temporary(PAGE, 8).expect("swap area"));
    let mmu = SimMmu::new(1, PAGE).expect("sim mmu");
    let x = Arc::new(MapCore::new(&pages, Anonymous::new(swap), mmu).expect("mapping"));
    let hx = {
        let x = x.clone();
        thread::spawn(move || MapCore::serve_all(&x))
    };
    x.mmu().store(0, 1).unwrap();
    let (p, hp) = private_of(&x, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || x.mmu().store(0, 5).unwrap())
    };
    let v = p.mmu().load(0).unwrap();
    p.mmu().store(0, 7).unwrap();
    t.join().unwrap();
    assert_eq!(
        v, 1,
        "M14: the private mapping read {v:#x}, not the snapshot"
    );
    assert_eq!(x.mmu().load(0), Ok(5), "M14: the shared mapping's store");
    assert_eq!(p.mmu().load(0), Ok(7), "M14: the private mapping's store");
    evict_all(&pages, 3);
    assert_eq!(
        (x.mmu().load(0), p.mmu().load(0)),
        (Ok(5), Ok(7)),
        "M14: a store was lost or crossed over through eviction"
    );
    end_view(p, hp);
    end(&pages, x, hx, "M14");
}

/// M18 a mapped file's first store after a private mapping vs that mapping's load: three
/// frames; the source X is a mapped store object, and its CPU stored 1 into X0 (dirty). P, a
/// private mapping of X, is made: the copy writes X0 back to X's store, and the new frozen
/// layer reads the page from that store (the file), while X0 stays X's, mapped read-only and
/// marked `COW` (X's layers read it from X's file). A thread stores 5 into X0 through X's
/// mapping: its service finds the mark and first makes the page X's own (`privatize`: X0's
/// bytes, read-pinned, are written into the layer's swap, and X records the page as its own as
/// the mark goes). Meanwhile P's CPU loads P0, copied from the layer (faulted in there from the
/// store or the slot: the same bytes). P reads 1 (the snapshot), X 5; after X's sync the store
/// holds 5, and after another object's three pages evict every frame, P still reads 1 (from
/// the layer's slot), never the store's 5; nothing pinned; frames free once both end. A
/// privatize that does not keep the layer's copy leaves P reading 5 after the eviction
/// (semantic mutant 110).
pub fn m18_mapped_file_store_vs_private_load() {
    let pages = pool(3);
    let (x, s, hx) = mapped(&pages);
    x.mmu().store(0, 1).unwrap();
    let (p, hp) = private_of(&x, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || x.mmu().store(0, 5).unwrap())
    };
    let v = p.mmu().load(0).unwrap();
    t.join().unwrap();
    assert_eq!(
        v, 1,
        "M18: the private mapping read {v:#x}, not the snapshot"
    );
    assert_eq!(x.mmu().load(0), Ok(5), "M18: the file's mapping's store");
    x.sync().unwrap();
    assert_eq!(s.get(0), 5, "M18: the store was not written to the file");
    evict_all(&pages, 3);
    assert_eq!(
        (x.mmu().load(0), p.mmu().load(0)),
        (Ok(5), Ok(1)),
        "M18: the private mapping's snapshot followed the file"
    );
    end_view(p, hp);
    end(&pages, x, hx, "M18");
}

/// M19 a mapped file's last layer dropped vs its first store and a load through the layer:
/// three frames; X is a mapped store object of two pages, and its CPU stored 1 into X0. P, a
/// private mapping of X, is made (the layer reads X's file), loads P1 (faulting the page in
/// the layer, then copying it), and ends: X is the layer's only reader. Then a thread stores 5
/// into X0 (marked: its service makes the page X's own, resolving it in the layer, where a
/// collapse may drop the layer first) while the main thread compacts X's chain (the layer,
/// the last below a file, is dropped: its frames freed, not adopted, since X's pages live in
/// its mapping's memory) and loads X1 (resolved in the layer and copied in, or, the layer gone,
/// read from X's file). X1 reads `initial(A, 1)`, X0 5; after a sync the store holds 5 and
/// `initial(A, 1)`; the chain is empty after a last compact; nothing pinned; frames free. A
/// drop that moved the layer's frame into X's entry (as an unmapped file adopts it) would leave
/// X's mapping reading a page its memory never got (semantic mutant 113).
pub fn m19_mapped_file_drops_its_last_layer() {
    let pages = pool(3);
    let (x, s, hx) = mapped_n(&pages, 2);
    x.mmu().store(0, 1).unwrap();
    {
        let (p, hp) = private_of(&x, 2);
        assert_eq!(
            p.mmu().load(1),
            Ok(initial(A, 1)),
            "M19: the private mapping"
        );
        end_view(p, hp);
    }
    let t = {
        let x = x.clone();
        thread::spawn(move || x.mmu().store(0, 5).unwrap())
    };
    x.object().compact();
    let v = x.mmu().load(1);
    t.join().unwrap();
    assert_eq!(v, Ok(initial(A, 1)), "M19: the load through the layer");
    assert_eq!(x.mmu().load(0), Ok(5), "M19: the store");
    x.sync().unwrap();
    assert_eq!((s.get(0), s.get(1)), (5, initial(A, 1)), "M19: the file");
    assert_eq!(x.object().compact(), 0, "M19: the layer stayed");
    end(&pages, x, hx, "M19");
}
