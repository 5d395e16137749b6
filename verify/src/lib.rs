//! Race scenarios of SPEC.md (S1–S15, C1–C20), written once against pagecore's sync facade and run by
//! three drivers:
//!
//! * `tests/loom_scenarios.rs` — exhaustive under loom (`RUSTFLAGS="--cfg pagecore_loom"`);
//! * `tests/shuttle_scenarios.rs` — random and PCT schedules under shuttle (`--features shuttle`);
//! * `tests/std_scenarios.rs` — many repetitions on real threads (default build).
//!
//! Each scenario asserts the invariants it is about (content I3, conservation I1, uniqueness I2,
//! exactly-one-fill, no lost write I6), not merely the absence of a panic; a deadlock is reported
//! by loom and shuttle as a failure (every wait in these scenarios is unbounded on purpose, so a
//! lost wake-up cannot hide behind a time-out).
//!
//! Pages are 8 bytes and hold one little-endian `u64`, so the backing store is a row of atomics
//! ([`Store`]) and the model checkers spend their budget on pagecore's protocol.

#[cfg(feature = "shuttle")]
pub mod fuzz;
pub mod linearizability;
mod mutant_races;
pub mod programs;
mod semantic;
#[cfg(feature = "shuttle")]
pub mod shuttle_run;
mod user_races;
pub use mutant_races::*;
pub use semantic::*;
pub use user_races::*;

use pagecore::internals::sync::atomic::{
    AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use pagecore::internals::sync::{lock, thread, Arc, Condvar, Mutex};
use pagecore::internals::sync::{AccessTrack, ShareArc};
use pagecore::Anonymous;
use pagecore::SwapArea;
use pagecore::{Access, Accessor, Client, Error, Grant, PageMapper, Pages, Revocation};
use std::io;

/// Page size used by every scenario.
pub const PAGE: usize = 8;

/// An atomics-only backing store of `u64` pages with fault injection and call counters.
#[derive(Debug)]
pub struct Store {
    pages: Vec<AtomicU64>,
    /// Access tracking of each stored page (see the comment in `fill`): under loom, a fill
    /// of a page must be ordered after every write-back of it, and the other way round.
    tracks: Vec<AccessTrack>,
    /// Number of successful fills.
    pub fills: AtomicUsize,
    /// Number of successful write-backs.
    pub flushes: AtomicUsize,
    /// When non-zero, write-backs fail with this OS error code (EIO, ENOSPC, EDQUOT, ...).
    pub fail_flush: AtomicI32,
    /// When non-zero, fills fail with this OS error code.
    pub fail_fill: AtomicI32,
    /// When non-zero, the next write-back fails with this OS error code (and it is cleared).
    pub fail_next_flush: AtomicI32,
}

impl Store {
    /// A store of `n` pages whose page `p` initially holds `base + p`.
    pub fn new(n: usize, base: u64) -> Arc<Self> {
        Arc::new(Self {
            pages: (0..n as u64).map(|p| AtomicU64::new(base + p)).collect(),
            tracks: (0..n).map(|_| AccessTrack::new()).collect(),
            fills: AtomicUsize::new(0),
            flushes: AtomicUsize::new(0),
            fail_flush: AtomicI32::new(0),
            fail_fill: AtomicI32::new(0),
            fail_next_flush: AtomicI32::new(0),
        })
    }

    /// The stored value of page `p`.
    pub fn get(&self, p: u64) -> u64 {
        self.pages[p as usize].load(SeqCst)
    }
}

impl Accessor for Store {
    fn fill(&self, page: u64, buf: &mut [u8]) -> io::Result<()> {
        let errno = self.fail_fill.load(SeqCst);
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno));
        }
        // A fill reads what the last write-back stored, so it takes the page's track exclusively
        // (write-backs share it: two syncs may write the same page back at once, which the
        // accessor must allow). The value itself is Relaxed: it must not order anything by
        // itself, or it would hide a weakened publication in the core (a write-back that the
        // emptied entry does not order before the next fill: loom reports the two accesses).
        let _t = self.tracks[page as usize].exclusive();
        let v = self.pages[page as usize].load(Relaxed);
        buf.copy_from_slice(&v.to_le_bytes());
        self.fills.fetch_add(1, SeqCst);
        Ok(())
    }

    fn flush(&self, page: u64, buf: &[u8]) -> io::Result<()> {
        let mut errno = self.fail_flush.load(SeqCst);
        if errno == 0 {
            errno = self.fail_next_flush.swap(0, SeqCst);
        }
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let v = u64::from_le_bytes(buf.try_into().map_err(|_| io::ErrorKind::InvalidInput)?);
        let _t = self.tracks[page as usize].shared();
        // Relaxed: see `fill`.
        self.pages[page as usize].store(v, Relaxed);
        self.flushes.fetch_add(1, SeqCst);
        Ok(())
    }
}

/// A pool of `frames` 8-byte frames with unbounded waits (see the crate doc).
pub fn pool(frames: u64) -> Pages {
    Pages::builder()
        .page_size(PAGE)
        .frames(frames)
        .wait_bound(None)
        .swap_slots(64)
        .build()
        .expect("valid pool")
}

/// Opens an object of `n` pages over `store`.
pub fn open(pages: &Pages, store: &Arc<Store>, n: u64) -> PageMapper {
    pages
        .open(store.clone(), n * PAGE as u64)
        .expect("valid object")
}

/// Reads page `p` as a `u64`, returning it and the frame that backed it.
pub fn read(obj: &PageMapper, p: u64) -> Result<(u64, u32), Error> {
    let g = obj.read(p)?;
    Ok((u64::from_le_bytes(g[..8].try_into().unwrap()), g.frame()))
}

/// Writes `v` into page `p`.
pub fn write(obj: &PageMapper, p: u64, v: u64) -> Result<(), Error> {
    obj.write(p)?.copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Asserts I1 and I2 and that the census adds up to `frames`.
pub fn assert_conserved(pages: &Pages) -> pagecore::Census {
    let c = pages
        .check_invariants()
        .unwrap_or_else(|e| panic!("I1/I2 violated: {e}"));
    assert_eq!(c.total(), pages.frames(), "I1: census {c:?}");
    c
}

/// Asserts what every scenario ends with once its threads are joined: I1 and I2 (the census adds
/// up), nothing pinned and nobody waiting for a frame. `name` labels the failure.
pub fn assert_settled(pages: &Pages, name: &str) -> pagecore::Census {
    let c = assert_conserved(pages);
    assert_eq!(
        (c.pinned, c.waiting_for_frames),
        (0, 0),
        "{name}: a pin or a waiter was left behind: {c:?}"
    );
    c
}

/// Value page `p` of an object whose store base is `base` holds before any write.
fn initial(base: u64, p: u64) -> u64 {
    base + p
}

const A: u64 = 1000;
const B: u64 = 2000;
const C: u64 = 3000;

/// S1 reclaim vs reserve: a client hits page A0 (find -> reserve) while another client's fault
/// on B0 reclaims A0's frame from the queue head. One frame, so exactly one of them holds it at a
/// time; the loser retries. Stale content is never issued: A0 reads A0's value, B0 reads B0's.
pub fn s1_reclaim_vs_reserve() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0)); // A0 resident, queued, unpinned
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    let vb = read(&b, 0).unwrap().0;
    let va = t.join().unwrap();
    assert_eq!(va, initial(A, 0), "reserve issued stale content for A0");
    assert_eq!(vb, initial(B, 0), "reclaim issued stale content for B0");
    let c = assert_conserved(&pages);
    assert_eq!(c.resident, 1);
    assert_eq!(c.pinned, 0);
}

/// S2 two faults on the same absent page: exactly one fill, both clients get the same frame.
pub fn s2_double_fault() {
    let pages = pool(2);
    let s = Store::new(1, A);
    let a = open(&pages, &s, 1);
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap())
    };
    let (v1, f1) = read(&a, 0).unwrap();
    let (v2, f2) = t.join().unwrap();
    assert_eq!((v1, v2), (initial(A, 0), initial(A, 0)));
    assert_eq!(
        s.fills.load(SeqCst),
        1,
        "the absent page was filled more than once"
    );
    assert_eq!(f1, f2, "the two faults got different frames");
    let c = assert_conserved(&pages);
    assert_eq!((c.resident, c.free), (1, 1));
}

/// S3 reclaim vs a page being filled: with one frame, B0's fault must wait for A0's fill to be
/// published and unpinned instead of reclaiming the filling frame (which loom would also flag as
/// overlapping exclusive accesses to the frame's bytes).
pub fn s3_reclaim_vs_fill() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    let vb = read(&b, 0).unwrap().0;
    let va = t.join().unwrap();
    assert_eq!((va, vb), (initial(A, 0), initial(B, 0)));
    assert_eq!(sa.fills.load(SeqCst) + sb.fills.load(SeqCst), 2);
    assert_conserved(&pages);
}

/// S4 queue vs reclaim: a page is queued at the tail while another fault reclaims the head; a
/// third thread checks conservation at an arbitrary instant in between.
pub fn s4_queue_vs_reclaim() {
    let pages = pool(2);
    let (sa, sb) = (Store::new(2, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 2), open(&pages, &sb, 1));
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0)); // head of the queue
    let t1 = {
        let a = a.clone();
        thread::spawn(move || read(&a, 1).unwrap().0)
    };
    let t2 = {
        let pages = pages.clone();
        thread::spawn(move || {
            assert_conserved(&pages);
        })
    };
    let vb = read(&b, 0).unwrap().0;
    assert_eq!(t1.join().unwrap(), initial(A, 1));
    t2.join().unwrap();
    assert_eq!(vb, initial(B, 0));
    let c = assert_conserved(&pages);
    assert_eq!(c.resident, 2);
}

/// S5 two mappers reclaiming each other's pages under exhaustion: one frame, two objects, two
/// pages each. No deadlock, every read sees its own page, nothing lost.
pub fn s5_cross_reclaim() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(2, A), Store::new(2, B));
    let (a, b) = (open(&pages, &sa, 2), open(&pages, &sb, 2));
    let t = {
        let a = a.clone();
        thread::spawn(move || [read(&a, 0).unwrap().0, read(&a, 1).unwrap().0])
    };
    let vb = [read(&b, 0).unwrap().0, read(&b, 1).unwrap().0];
    let va = t.join().unwrap();
    assert_eq!(va, [initial(A, 0), initial(A, 1)]);
    assert_eq!(vb, [initial(B, 0), initial(B, 1)]);
    assert_conserved(&pages);
}

/// S6 write vs reclaim of the same page: the write lands in the frame before the reclaim takes
/// it (and is then written back) or after (the fault refills the page from the store, which
/// then already holds every earlier write). Either way no write is lost.
pub fn s6_write_vs_reclaim() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    let t = {
        let a = a.clone();
        thread::spawn(move || write(&a, 0, 7).unwrap())
    };
    assert_eq!(read(&b, 0).unwrap().0, initial(B, 0));
    t.join().unwrap();
    assert_eq!(read(&a, 0).unwrap().0, 7, "write lost to reclaim");
    a.sync().unwrap();
    assert_eq!(sa.get(0), 7, "write not in the store after sync");
    assert_conserved(&pages);
}

/// S7 write-back failure during reclaim (`errno`: EIO, ENOSPC or EDQUOT): the dirty page stays
/// resident and dirty, the reclaiming fault reports the error, a concurrent reader still sees the
/// written value, sync reports the failure, and once the store recovers a sync succeeds and the
/// value reaches the store. Nothing is lost.
pub fn s7_writeback_failure(errno: i32) {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    write(&a, 0, 7).unwrap();
    sa.fail_flush.store(errno, SeqCst);
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0).unwrap().0)
    };
    let rb = read(&b, 0);
    assert_eq!(t.join().unwrap(), 7, "reader saw a lost write");
    match rb {
        Err(Error::WriteBack { source, .. }) => assert_eq!(source.raw_os_error(), Some(errno)),
        other => {
            panic!("reclaim of the only frame should report the write-back error, got {other:?}")
        }
    }
    let c = assert_conserved(&pages);
    assert_eq!(
        (c.resident, c.dirty),
        (1, 1),
        "failed page must stay resident and dirty"
    );
    assert_eq!(sa.get(0), initial(A, 0));
    assert!(a.sync().is_err(), "sync must report the failing write-back");
    sa.fail_flush.store(0, SeqCst);
    a.sync().expect("a later sync succeeds");
    assert_eq!(sa.get(0), 7);
    assert_eq!(assert_conserved(&pages).dirty, 0);
}

/// OS error codes S7 is run with (Linux numbering): EIO, ENOSPC, EDQUOT.
pub const S7_ERRNOS: [i32; 3] = [5, 28, 122];

/// Core extra C1, close vs fault: a client faults page A0 of an object while another handle
/// closes it. The fault either completes (and close then waits for its pin to drop and writes
/// the page back) or fails with `Closed`; a fill that finishes after close began must free its
/// frame instead of publishing it. Afterwards every frame is free and the store has the write.
pub fn c1_close_vs_fault() {
    let pages = pool(1);
    let sa = Store::new(2, A);
    let a = open(&pages, &sa, 2);
    write(&a, 0, 7).unwrap(); // A0 resident and dirty
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 1).map(|(v, _)| v))
    };
    let closer = a.clone();
    let closed = closer.close();
    let r1 = t.join().unwrap();
    match r1 {
        Ok(v) => assert_eq!(v, initial(A, 1)),
        Err(Error::Closed) => {}
        Err(e) => panic!("fault racing close failed with {e:?}"),
    }
    assert!(closed.is_ok(), "close failed: {closed:?}");
    assert_eq!(sa.get(0), 7, "close lost the dirty page");
    assert!(matches!(read(&a, 0), Err(Error::Closed)));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 1, "a frame leaked past close: {c:?}");
}

/// Core extra C2, sync vs write: a write of 8 races a sync of the page that holds 7 (dirty).
/// Whatever the order, the dirty bit is never cleared over an unflushed write: after a final
/// sync the store holds 8.
pub fn c2_sync_vs_write() {
    let pages = pool(2);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    write(&a, 0, 7).unwrap();
    let t = {
        let a = a.clone();
        thread::spawn(move || a.sync())
    };
    write(&a, 0, 8).unwrap();
    t.join().unwrap().unwrap();
    let v = sa.get(0);
    assert!(v == 7 || v == 8, "sync wrote {v}");
    a.sync().unwrap();
    assert_eq!(sa.get(0), 8, "a write was lost by a racing sync");
    assert_eq!(assert_conserved(&pages).dirty, 0);
}

/// Core extra C3, a failed fill with a joined fault: two faults on the same absent page while
/// fills fail (EIO). Each gets the fill error (the one that joined gets the filler's error, the
/// other fails its own fill), nothing is recorded in the map, the frame returns to the free list;
/// once the store recovers the page reads normally.
pub fn c3_fill_error_reaches_waiters() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    sa.fail_fill.store(5, SeqCst);
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0))
    };
    let r1 = read(&a, 0);
    let r2 = t.join().unwrap();
    for r in [&r1, &r2] {
        match r {
            Err(Error::Fill { page: 0, source }) => assert_eq!(source.raw_os_error(), Some(5)),
            other => panic!("a fault on a failing page returned {other:?}"),
        }
    }
    let c = assert_conserved(&pages);
    assert_eq!(
        (c.free, c.resident),
        (1, 0),
        "a failed fill left state behind: {c:?}"
    );
    sa.fail_fill.store(0, SeqCst);
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
}

/// Core extra C4, readers and a writer on one page (in-process guards, I4): a writer and two
/// readers race on A0. Readers see the old or the new value, never anything else; loom's access
/// tracking fails the model if a read guard and the write guard ever overlap; a lost wake-up in
/// the conflict wait shows as a deadlock.
pub fn c4_readers_and_writer() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let a = a.clone();
            thread::spawn(move || read(&a, 0).unwrap().0)
        })
        .collect();
    write(&a, 0, 9).unwrap();
    for r in readers {
        let v = r.join().unwrap();
        assert!(v == initial(A, 0) || v == 9, "reader saw {v}");
    }
    assert_eq!(read(&a, 0).unwrap().0, 9);
    let c = assert_conserved(&pages);
    assert_eq!((c.pinned, c.dirty), (0, 1));
}

/// Core extra C5, a late wake-up after the page moved to another frame: client C holds A0 (in
/// frame f1) while T2's fault on A2 finds both frames pinned, asks C to release and marks A0 for
/// the pool. C's release wakes T2, and before C's release is over, A0 may be reclaimed (for A2),
/// faulted back into the other frame f0, read-pinned by the main thread, and waited for by a
/// writer W, which parks on f0's parker. Every wake-up C still makes must reach the parker of the
/// frame the entry names when the waiter bits are cleared (f0), not the one C held (f1):
/// otherwise it clears W's waiter bit and wakes nobody, and W waits for ever (a deadlock the
/// checkers report). Contents and the census are checked too.
pub fn c5_wake_after_move() {
    let pages = pool(2);
    let sa = Store::new(3, A);
    let a = open(&pages, &sa, 3);
    let g1 = a.read(1).unwrap(); // A1 pinned in f0
    let mail = Arc::new(Mailbox::default());
    let holding = Arc::new(Mailbox::default());
    let c = {
        let (a, mail, holding) = (a.clone(), mail.clone(), holding.clone());
        thread::spawn(move || {
            let c = Mailbox::client(&mail, &a);
            let g = c.request(0, Access::Read).unwrap(); // A0 in f1
            let v = value(&g);
            holding.finish();
            mail.wait_past(0); // T2's fault asks us to release
            drop(g);
            v
        })
    };
    holding.wait_past(0);
    let t2 = {
        let a = a.clone();
        thread::spawn(move || read(&a, 2).unwrap().0)
    };
    assert_eq!(t2.join().unwrap(), initial(A, 2));
    drop(g1);
    let g0 = a.read(0).unwrap(); // A0 again, now in f0
    let w = {
        let a = a.clone();
        thread::spawn(move || write(&a, 0, 7).unwrap())
    };
    assert_eq!(
        u64::from_le_bytes(g0[..8].try_into().unwrap()),
        initial(A, 0)
    );
    drop(g0);
    w.join().unwrap();
    assert_eq!(c.join().unwrap(), initial(A, 0));
    assert_eq!(read(&a, 0).unwrap().0, 7);
    assert_settled(&pages, "C5");
}

// ----- arbitration scenarios (S8-S12) --------------------------------------------------------

/// The `u64` a grant shows.
pub fn value(g: &Grant<'_>) -> u64 {
    u64::from_le_bytes(g[..8].try_into().unwrap())
}

/// Writes `v` through a write grant.
pub fn put(g: &mut Grant<'_>, v: u64) {
    g.bytes_mut()
        .expect("a write grant")
        .copy_from_slice(&v.to_le_bytes());
}

/// An independent many-readers-or-one-writer checker (I9): counts of active grants, asserted on
/// entry to every grant's critical section.
#[derive(Default)]
pub struct Exclusion {
    readers: AtomicUsize,
    writers: AtomicUsize,
}

impl Exclusion {
    /// Enters as a reader; panics if a writer is active.
    pub fn read(&self) {
        self.readers.fetch_add(1, SeqCst);
        assert_eq!(self.writers.load(SeqCst), 0, "I9: a reader beside a writer");
    }
    /// Leaves as a reader.
    pub fn read_done(&self) {
        self.readers.fetch_sub(1, SeqCst);
    }
    /// Enters as the writer; panics if anyone else is active.
    pub fn write(&self) {
        assert_eq!(self.writers.fetch_add(1, SeqCst), 0, "I9: two writers");
        assert_eq!(self.readers.load(SeqCst), 0, "I9: a writer beside readers");
    }
    /// Leaves as the writer.
    pub fn write_done(&self) {
        self.writers.fetch_sub(1, SeqCst);
    }
}

/// A revocation mailbox a client's callback posts to and its owner waits on.
#[derive(Default)]
pub struct Mailbox {
    asks: Mutex<(u32, bool)>,
    cv: Condvar,
}

impl Mailbox {
    /// Registers a client of `obj` whose revocations are posted here.
    pub fn client(this: &Arc<Self>, obj: &PageMapper) -> Client {
        let me = this.clone();
        obj.register_with(move |_page: u64, _ask: Revocation| {
            lock(&me.asks).0 += 1;
            me.cv.notify_all();
        })
        .expect("register")
    }
    /// Revocations received so far.
    pub fn asks(&self) -> u32 {
        lock(&self.asks).0
    }
    /// Marks the scenario's other party done (and wakes the owner).
    pub fn finish(&self) {
        lock(&self.asks).1 = true;
        self.cv.notify_all();
    }
    /// Waits until more than `seen` revocations arrived, or the other party finished.
    pub fn wait_past(&self, seen: u32) {
        let mut g = lock(&self.asks);
        while g.0 <= seen && !g.1 {
            g = self.cv.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Asserts the arbitration invariants (I9-I12) and that nothing is held, waiting, or left in
/// the side table, and that every out-of-line record was freed exactly once.
pub fn assert_arbitration_idle(obj: &PageMapper) {
    let c = obj
        .arbitration()
        .unwrap_or_else(|e| panic!("arbitration invariant violated: {e}"));
    assert_eq!(
        (c.held_pages, c.waiting, c.side_entries, c.records),
        (0, 0, 0, 0),
        "arbitration state left behind: {c:?}"
    );
    assert_eq!(c.records_created, c.records_freed, "I11: {c:?}");
}

/// S8 two writers on one page: while client 0 writes A0, clients 1 and 2 request write access.
/// Never are two writers granted at once (the checker and loom's access tracking), and they are
/// granted in the order they entered the wait list (FIFO); each sees the previous writer's value.
pub fn s8_two_writers() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let ex = Arc::new(Exclusion::default());
    let order = Arc::new(Mutex::new(Vec::new()));
    let granted = Arc::new(Mutex::new(Vec::new()));
    let c0 = a.register().unwrap();
    let mut g0 = c0.request(0, Access::Write).unwrap();
    put(&mut g0, 1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let c = a.register().unwrap();
            let (ex, order, granted) = (ex.clone(), order.clone(), granted.clone());
            thread::spawn(move || {
                let pending = {
                    let mut o = lock(&order);
                    let p = c.enqueue(0, Access::Write).unwrap();
                    o.push(c.id());
                    p
                };
                let mut g = pending.wait().unwrap();
                ex.write();
                lock(&granted).push(c.id());
                let v = value(&g);
                put(&mut g, v + 1);
                ex.write_done();
            })
        })
        .collect();
    ex.write();
    ex.write_done();
    drop(g0);
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        *lock(&order),
        *lock(&granted),
        "S8: grants out of FIFO order"
    );
    assert_eq!(read(&a, 0).unwrap().0, 3, "S8: a writer's update was lost");
    drop(c0);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S9 readers and a writer: client 0 reads A0; a writer W and a reader R2 request it
/// concurrently. Readers share (R2 arriving first is granted beside client 0 at once); the writer
/// waits for every reader; a reader arriving behind the waiting writer waits for it and then sees
/// its value.
pub fn s9_readers_and_writer() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let ex = Arc::new(Exclusion::default());
    let order = Arc::new(Mutex::new(Vec::new()));
    let c0 = a.register().unwrap();
    let g0 = c0.request(0, Access::Read).unwrap();
    ex.read();
    let w = {
        let (c, ex, order) = (a.register().unwrap(), ex.clone(), order.clone());
        thread::spawn(move || {
            let p = {
                let mut o = lock(&order);
                let p = c.enqueue(0, Access::Write).unwrap();
                o.push('W');
                p
            };
            let mut g = p.wait().unwrap();
            ex.write();
            put(&mut g, 9);
            ex.write_done();
        })
    };
    let r2 = {
        let (c, ex, order) = (a.register().unwrap(), ex.clone(), order.clone());
        thread::spawn(move || {
            let (mut p, first) = {
                let mut o = lock(&order);
                let p = c.enqueue(0, Access::Read).unwrap();
                o.push('R');
                (p, o.len() == 1)
            };
            if first {
                assert!(p.is_granted().unwrap(), "S9: readers must share");
            }
            let g = p.wait().unwrap();
            ex.read();
            let v = value(&g);
            ex.read_done();
            (first, v)
        })
    };
    assert_eq!(value(&g0), initial(A, 0));
    ex.read_done();
    drop(g0);
    w.join().unwrap();
    let (first, v) = r2.join().unwrap();
    if first {
        assert_eq!(
            v,
            initial(A, 0),
            "S9: the reader ahead of the writer saw its value"
        );
    } else {
        assert_eq!(
            v, 9,
            "S9: a reader behind a waiting writer was granted before it"
        );
    }
    drop(c0);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S10 voluntary release racing a revoke: client A writes A0, then releases it on its own while
/// client B's write request asks A to revoke; A then requests read access again and holds it
/// until it is asked to revoke (or B is done). No release is applied twice, no grant is lost
/// (B is granted; A is asked again for its second grant if B needs it, which a stale "asked"
/// mark would prevent: a deadlock), and the values follow the grant order.
pub fn s10_release_vs_revoke() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let mail = Arc::new(Mailbox::default());
    let ca = Mailbox::client(&mail, &a);
    let cb = a.register().unwrap();
    let mut g1 = ca.request(0, Access::Write).unwrap();
    put(&mut g1, 5);
    let b = {
        let mail = mail.clone();
        thread::spawn(move || {
            let mut g = cb.request(0, Access::Write).unwrap();
            let v = value(&g);
            put(&mut g, 6);
            drop(g);
            mail.finish();
            v
        })
    };
    drop(g1); // voluntary, racing B's revocation
    let seen = mail.asks();
    let g2 = ca.request(0, Access::Read).unwrap();
    let v2 = value(&g2);
    mail.wait_past(seen);
    drop(g2);
    let vb = b.join().unwrap();
    assert!(mail.asks() <= 2, "S10: A asked {} times", mail.asks());
    match v2 {
        5 => assert_eq!(vb, 5, "S10: B wrote after A's read but saw {vb}"),
        6 => assert_eq!(vb, 5, "S10: B did not see A's write"),
        v => panic!("S10: A read {v}"),
    }
    assert_eq!(read(&a, 0).unwrap().0, 6);
    drop(ca);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S11 reclaim of a held page racing a new request for it: one frame; client 1 holds A0 (read),
/// a plain fault on A1 needs the frame, and client 2 requests A0. Reclaim skips the held page and
/// asks its holders to release (the access list is its reverse map); the frame is reused only
/// after every holder released (loom's access tracking would flag a fill over a live grant);
/// client 2 reads A0's value whichever way the race goes; nothing deadlocks.
pub fn s11_reclaim_vs_request() {
    let pages = pool(1);
    let sa = Store::new(2, A);
    let a = open(&pages, &sa, 2);
    let mail = Arc::new(Mailbox::default());
    let c1 = Mailbox::client(&mail, &a);
    let g1 = c1.request(0, Access::Read).unwrap();
    let x = {
        let a = a.clone();
        thread::spawn(move || read(&a, 1).unwrap().0)
    };
    let r2 = {
        let c2 = a.register().unwrap();
        thread::spawn(move || value(&c2.request(0, Access::Read).unwrap()))
    };
    assert_eq!(value(&g1), initial(A, 0));
    mail.wait_past(0); // reclaim asks us to release
    drop(g1);
    assert_eq!(x.join().unwrap(), initial(A, 1));
    assert_eq!(r2.join().unwrap(), initial(A, 0));
    assert!(pages.stats().unwrap().revocations >= 1);
    drop(c1);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

/// S12 inline -> out-of-line transition racing other state changes: clients 2 and 3 read A0
/// (inline); a fifth client's read (which moves the page's state out of line) races a write
/// request of client 0 (queued behind the readers: a wait list, revocations) and the release of
/// the inline readers. Every state is checked at the end: nothing held or waiting, the page is
/// back inline, and every record created was freed exactly once.
pub fn s12_out_of_line_transition() {
    let pages = pool(1);
    let sa = Store::new(1, A);
    let a = open(&pages, &sa, 1);
    let cs: Vec<_> = (0..5).map(|_| a.register().unwrap()).collect();
    let mut cs = cs.into_iter();
    let (c0, c1, c2, c3, c4) = (
        cs.next().unwrap(),
        cs.next().unwrap(),
        cs.next().unwrap(),
        cs.next().unwrap(),
        cs.next().unwrap(),
    );
    assert_eq!(c4.id(), 4);
    let (g2, g3) = (
        c2.request(0, Access::Read).unwrap(),
        c3.request(0, Access::Read).unwrap(),
    );
    let fifth = thread::spawn(move || value(&c4.request(0, Access::Read).unwrap()));
    let writer = thread::spawn(move || {
        let mut g = c0.request(0, Access::Write).unwrap();
        put(&mut g, 9);
    });
    drop(g2);
    drop(g3);
    let v = fifth.join().unwrap();
    assert!(v == initial(A, 0) || v == 9, "S12: fifth client read {v}");
    writer.join().unwrap();
    assert_eq!(read(&a, 0).unwrap().0, 9);
    drop(c1);
    assert_arbitration_idle(&a);
    assert_conserved(&pages);
}

// ----- anonymous memory scenarios (S13-S14) -------------------------------------------------

/// An anonymous object of `n` pages over a fresh temporary swap area of `slots` slots.
pub fn anonymous(pages: &Pages, n: u64, slots: u32) -> (PageMapper, ShareArc<SwapArea>) {
    let swap = ShareArc::new(SwapArea::temporary(PAGE, slots).expect("swap area"));
    let obj = pages
        .open(Arc::new(Anonymous::new(swap.clone())), n * PAGE as u64)
        .expect("valid object");
    (obj, swap)
}

/// S13 swap-out vs fault on the same anonymous page: X0 is written (dirty, resident) in a pool of
/// two frames; a thread faults X1 and then X2, whose fault reclaims the queue head X0, paging it
/// out to a swap slot, while the main thread faults X0 (which then needs a frame of its own). The
/// X0 fault sees the written value whichever way the race goes (from the frame before the
/// page-out, after waiting for it, or from the slot after it), never zeros (X0's entry must not
/// look empty before its page-out is done); X1 and X2 are zeros (first touch). Afterwards a
/// second page-out rewrites the same slot in place, and dropping the object frees its one slot
/// exactly once; the census adds up throughout.
pub fn s13_swap_out_vs_fault() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 3, 4);
    write(&x, 0, 5).unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || (read(&x, 1).unwrap().0, read(&x, 2).unwrap().0))
    };
    let v0 = read(&x, 0).unwrap().0;
    assert_eq!(v0, 5, "S13: the fault on X0 saw {v0}");
    assert_eq!(t.join().unwrap(), (0, 0), "S13: not zero on first touch");
    assert!(
        swap.in_use() <= 1,
        "S13: {} slots for one page",
        swap.in_use()
    );
    // Page X0 out (again, or for the first time): one slot, rewritten in place.
    write(&x, 0, 6).unwrap();
    assert_eq!(read(&x, 1).unwrap().0, 0);
    assert_eq!(read(&x, 2).unwrap().0, 0);
    assert_eq!(
        swap.in_use(),
        1,
        "S13: X0 was not paged out to exactly one slot"
    );
    assert_eq!(read(&x, 0).unwrap().0, 6);
    assert_conserved(&pages);
    drop(x);
    assert_eq!(swap.in_use(), 0, "S13: the slot outlived its object");
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "S13: the object's frames were not freed: {c:?}");
}

/// S14 last reference dropped vs a concurrent fault: an anonymous object X has two handles (as
/// after fork) and one dirty page on swap. A thread faults X0 back in through the second handle
/// and drops it, while the main thread drops the first, and a fault on another object's page
/// needs the only frame (reclaiming X0, or finding it discarded). The fault through the live
/// handle always sees X0's value; whichever handle goes last discards X's pages; X's frame and
/// its swap slot are freed exactly once (the slot count returns to zero, the census adds up, the
/// other object's page reads right).
pub fn s14_last_drop_vs_fault() {
    let pages = pool(1);
    let (x, swap) = anonymous(&pages, 2, 4);
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    write(&x, 0, 5).unwrap();
    assert_eq!(read(&x, 1).unwrap().0, 0); // X0 paged out to its slot
    assert_eq!(swap.in_use(), 1);
    let t = {
        let x2 = x.clone();
        thread::spawn(move || {
            let v = read(&x2, 0).unwrap().0;
            drop(x2);
            v
        })
    };
    let u = thread::spawn(move || read(&b, 0).unwrap().0);
    drop(x);
    assert_eq!(t.join().unwrap(), 5, "S14: the live handle lost X0");
    assert_eq!(u.join().unwrap(), initial(B, 0));
    assert_eq!(swap.in_use(), 0, "S14: a swap slot outlived its object");
    assert_settled(&pages, "S14");
}

// ----- copy-on-write scenarios (S15, C6, C7) ------------------------------------------------

/// S15 copy-on-write fault vs a reader of the shared page: X0 (written, resident) is copied to Y,
/// so both map X0's old frame through proxies of the frozen layer. A thread reads Y0 while the
/// main thread writes X0, which breaks the copy (a private frame for X, swapped in by one CAS).
/// Y0 reads the old value whatever the interleaving (the shared frame never changes: under loom
/// the break's copy is a tracked shared access beside the reader's); X0 reads the new one; sync
/// stores X's write; the frozen frame stays Y's; census adds up; nothing pinned after; every frame
/// free once both objects are gone.
pub fn s15_cow_fault_vs_reader() {
    let pages = pool(3);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    write(&x, 0, 7).unwrap();
    let y = x.copy().unwrap();
    assert_eq!(s.get(0), 7, "S15: copy did not write the dirty page back");
    let t = {
        let y = y.clone();
        thread::spawn(move || read(&y, 0).unwrap().0)
    };
    write(&x, 0, 8).unwrap();
    let vy = t.join().unwrap();
    assert_eq!(vy, 7, "S15: the copy saw the source's write");
    assert_eq!(read(&x, 0).unwrap().0, 8);
    assert_eq!(read(&y, 0).unwrap().0, 7);
    x.sync().unwrap();
    assert_eq!(
        s.get(0),
        8,
        "S15: the source's write did not reach its store"
    );
    assert_eq!(read(&y, 0).unwrap().0, 7, "S15: the copy lost its snapshot");
    assert_settled(&pages, "S15");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "S15: frames outlived the objects: {c:?}");
}

/// C6 `copy` racing a writer of the source: X0 holds 5; a thread writes 6 into X0 while the main
/// thread copies X. The copy waits for the write guard to go (it marks the page first), so the
/// snapshot holds 5 or 6, whole; X holds 6; a later write to X does not reach the snapshot; the
/// swap slots and frames are freed once both are gone.
pub fn c6_copy_vs_write() {
    let pages = pool(3);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 6).unwrap())
    };
    let y = x.copy().unwrap();
    t.join().unwrap();
    let vy = read(&y, 0).unwrap().0;
    assert!(vy == 5 || vy == 6, "C6: the snapshot holds {vy}");
    assert_eq!(read(&x, 0).unwrap().0, 6);
    write(&x, 0, 9).unwrap();
    assert_eq!(
        read(&y, 0).unwrap().0,
        vy,
        "C6: a later write reached the snapshot"
    );
    assert_eq!(read(&x, 0).unwrap().0, 9);
    assert_conserved(&pages);
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C6: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C6: swap slots outlived the objects");
}

/// C7 a copy-on-write break racing a reclaim that unmaps its proxy: X0 and Y0 are proxies of the
/// frozen layer's frame (two frames in the pool). A thread writes X0 (a break: copy, then one
/// CAS) while a fault on another object needs a frame and may unmap both proxies and take the
/// shared frame, clean (the file still holds it). Whatever the interleaving: the break either
/// publishes or finds its proxy gone and faults again; the layer's page is kept (dirty: swap)
/// before X's file is overwritten; X reads 9 and its store gets 9; Y still reads the original.
pub fn c7_break_vs_reclaim() {
    let pages = pool(2);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    assert_eq!(read(&x, 0).unwrap().0, initial(A, 0));
    let y = x.copy().unwrap();
    assert_eq!(read(&y, 0).unwrap().0, initial(A, 0));
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 9).unwrap())
    };
    let vb = read(&b, 0).unwrap().0;
    t.join().unwrap();
    assert_eq!(vb, initial(B, 0));
    assert_eq!(read(&x, 0).unwrap().0, 9);
    x.sync().unwrap();
    assert_eq!(s.get(0), 9);
    assert_eq!(
        read(&y, 0).unwrap().0,
        initial(A, 0),
        "C7: the copy lost its snapshot"
    );
    assert_settled(&pages, "C7");
}

/// C10 a break waiting for a reader of the same proxy: X0 (written) is copied to Y, so X0 and Y0
/// are proxies of the frozen frame. A thread reads X0 (a read pin on X's proxy) while the main
/// thread writes X0. The write's break must wait for that pin wherever it lands: before the
/// fault's check (the fault waits on the entry), between that check and the break's (the break
/// waits), or between the break's copy and its publishing CAS (the CAS is refused and the break
/// waits, keeping its copy); then it publishes, with no wait bound to hide a lost wake-up. The
/// reader sees the old value or the new, whole; X reads the new one, Y the old; one break; census;
/// nothing pinned; every frame free once both objects go.
pub fn c10_break_vs_reader_of_its_proxy() {
    let pages = pool(3);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    write(&x, 0, 7).unwrap();
    let y = x.copy().unwrap();
    let t = {
        let x = x.clone();
        thread::spawn(move || read(&x, 0).unwrap().0)
    };
    write(&x, 0, 8).unwrap();
    let vx = t.join().unwrap();
    assert!(vx == 7 || vx == 8, "C10: the reader of X0 saw {vx}");
    assert_eq!(read(&x, 0).unwrap().0, 8);
    assert_eq!(read(&y, 0).unwrap().0, 7, "C10: the break reached the copy");
    assert_eq!(pages.stats().unwrap().cow_breaks, 1, "C10: breaks");
    assert_settled(&pages, "C10");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C10: frames outlived the objects: {c:?}");
}

/// EROFS: an unusual write-back error (not EIO, ENOSPC or EDQUOT), which is recorded on the page.
const EROFS: i32 = 30;

/// C11 close vs a writer of a page with an unusual write-back error: A0's write-back failed with
/// EROFS, so the page carries an error record (out of line, skipped by reclaim); the store then
/// recovers. A thread writes A0 while the main thread closes A. Close must wait for the write
/// guard like any pin (not retry the errored page in a loop while it is pinned: a spin, which
/// loom reports), then write the page back itself, which clears the record. Whatever the
/// interleaving: the write succeeds before close or fails `Closed`; close succeeds; the store
/// holds the last value written; no error is left on the page; every frame is free.
pub fn c11_close_vs_writer_of_errored_page() {
    let pages = pool(2);
    let s = Store::new(1, A);
    let a = open(&pages, &s, 1);
    write(&a, 0, 5).unwrap();
    s.fail_flush.store(EROFS, SeqCst);
    assert!(a.sync().is_err(), "C11: the failing write-back succeeded");
    assert!(a.page_error(0).unwrap().is_some(), "C11: no error recorded");
    s.fail_flush.store(0, SeqCst);
    let t = {
        let a = a.clone();
        thread::spawn(move || match write(&a, 0, 6) {
            Ok(()) => true,
            Err(Error::Closed) => false,
            Err(e) => panic!("C11: the write failed with {e}"),
        })
    };
    a.close().unwrap();
    let wrote = t.join().unwrap();
    assert_eq!(
        s.get(0),
        if wrote { 6 } else { 5 },
        "C11: the store lost a write"
    );
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C11: close left frames: {c:?}");
}

/// C12 two faults resolving a copy's page through its layer: X0 is written and copied to Y, so
/// Y maps nothing yet and a fault on Y0 finds X0's old frame in the frozen layer and publishes a
/// proxy for it. Two threads read Y0: one resolves, the other joins its resolution (or finds the
/// proxy published); the proxy is published with one read pin per fault. Both read the old
/// value; X0 the new one after a write; once the guards are gone nothing is pinned (a pin too
/// few would underflow, a pin too many would keep the frame forever); frames free after.
pub fn c12_faults_joining_a_proxy() {
    let pages = pool(3);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    write(&x, 0, 7).unwrap();
    let y = x.copy().unwrap();
    let t = {
        let y = y.clone();
        thread::spawn(move || read(&y, 0).unwrap())
    };
    let (v, f) = read(&y, 0).unwrap();
    let (vt, ft) = t.join().unwrap();
    assert_eq!(
        (v, vt),
        (7, 7),
        "C12: a fault through the layer read the wrong value"
    );
    assert_eq!(f, ft, "C12: two frames for one shared page");
    assert_settled(&pages, "C12");
    write(&x, 0, 8).unwrap();
    assert_eq!(read(&y, 0).unwrap().0, 7, "C12: the copy lost its snapshot");
    assert_eq!(read(&x, 0).unwrap().0, 8);
    assert_settled(&pages, "C12");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C12: frames outlived the objects: {c:?}");
}

/// C13 a fault waiting for the pool while the only frame is shared through a pinned proxy: one
/// frame; X0 is copied to Y (the frame now belongs to the frozen layer, X0 is a proxy of it). A
/// thread reads X0 (pinning the shared frame through the proxy) while the main thread faults an
/// other object's page, which needs that frame: it waits for the pool (marking the pinned proxy
/// so that its last unpin wakes the pool; no wait bound), then unmaps the proxy and takes the
/// frame (the layer's page is clean: the file holds it). Both reads are right; X0 and Y0 read
/// the original again after; census; nothing pinned.
///
/// It found two lost wake-ups (the fault parked forever; loom and shuttle both report it): a
/// proxy whose last pin went between the obtainer's unmap attempt and its mark was left
/// unmarked; and when the obtainer had unmapped the proxy and the reader's own fault resolved the
/// page again, the reader's resolution pin on the marked owner's entry became a new, unmarked
/// proxy's pin.
pub fn c13_pool_wait_on_a_pinned_proxy() {
    let pages = pool(1);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    assert_eq!(read(&x, 0).unwrap().0, initial(A, 0));
    let y = x.copy().unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || read(&x, 0).unwrap().0)
    };
    let vb = read(&b, 0).unwrap().0;
    assert_eq!(t.join().unwrap(), initial(A, 0), "C13: the proxy's reader");
    assert_eq!(vb, initial(B, 0), "C13: the other object's fault");
    assert_eq!(read(&y, 0).unwrap().0, initial(A, 0));
    assert_eq!(read(&x, 0).unwrap().0, initial(A, 0));
    assert_settled(&pages, "C13");
}

/// C14 a copy racing a page-out of the page it freezes: two frames hold X0 and X1 (anonymous,
/// written, X0 older); a thread faults another object's page, which reclaims X0 (a page-out to a
/// swap slot), while
/// the main thread copies X. The copy's freeze finds X0 resident and marks it, or finds it being
/// reclaimed and waits for the reclaim to finish (then starts again, with no wait bound to hide a
/// lost wake-up), or finds it on swap; whatever the interleaving the snapshot holds X0's value,
/// a later write to X does not reach it, the other object's page reads right, and every frame and
/// swap slot is freed once both go.
pub fn c14_copy_vs_page_out() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 2, 8);
    write(&x, 0, 5).unwrap();
    write(&x, 1, 7).unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let t = thread::spawn(move || read(&b, 0).unwrap().0);
    let y = x.copy().unwrap();
    assert_eq!(
        t.join().unwrap(),
        initial(B, 0),
        "C14: the other object's fault"
    );
    assert_eq!(read(&y, 0).unwrap().0, 5, "C14: the snapshot lost X0");
    write(&x, 0, 6).unwrap();
    assert_eq!(
        read(&y, 0).unwrap().0,
        5,
        "C14: a later write reached the snapshot"
    );
    assert_eq!(read(&x, 0).unwrap().0, 6);
    assert_eq!((read(&x, 1).unwrap().0, read(&y, 1).unwrap().0), (7, 7));
    assert_settled(&pages, "C14");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C14: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C14: swap slots outlived the objects");
}

/// C15 a client's request racing a reclaim of the same page: one frame holds A0 (written); a
/// client of A requests A0 for reading while the main thread faults B0, which reclaims A0 (a
/// write-back, then the entry emptied). The
/// request is granted at once, or finds the page being reclaimed (ready as far as arbitration
/// goes, blocked only by the core) and waits on the entry (not in a loop: loom reports a spin),
/// then faults A0 back once B0's guard is gone. Both read their own page's value (A0 the written
/// one, from the frame or the store); arbitration is idle after; nothing pinned.
pub fn c15_request_vs_reclaim() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    write(&a, 0, 5).unwrap();
    let t = {
        let a = a.clone();
        thread::spawn(move || {
            let c = a.register().unwrap();
            let g = c.request(0, Access::Read).unwrap();
            value(&g)
        })
    };
    let vb = read(&b, 0).unwrap().0;
    assert_eq!(t.join().unwrap(), 5, "C15: the client read");
    assert_eq!(vb, initial(B, 0), "C15: the reclaiming fault read");
    assert_arbitration_idle(&a);
    assert_settled(&pages, "C15");
}

/// C16 a failed fill frees the frame another fault waits for: one frame; A's store fails its
/// fills (EIO). A thread faults A0 while the main thread faults B0: whichever takes the only
/// frame first, the other waits for the pool (no wait bound) and must be woken when the frame is
/// free again: by B0's unpin, or by the failed fill giving its frame back. A0's fault gets the
/// fill error; B0 reads right; nothing is recorded; A0 reads once its store recovers; census.
pub fn c16_failed_fill_frees_for_a_waiting_fault() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    sa.fail_fill.store(5, SeqCst);
    let t = {
        let a = a.clone();
        thread::spawn(move || read(&a, 0))
    };
    let vb = read(&b, 0).unwrap().0;
    match t.join().unwrap() {
        Err(Error::Fill { page: 0, source }) => assert_eq!(source.raw_os_error(), Some(5)),
        other => panic!("C16: a fault on a failing page returned {other:?}"),
    }
    assert_eq!(vb, initial(B, 0), "C16: B0");
    assert_settled(&pages, "C16");
    sa.fail_fill.store(0, SeqCst);
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
}

/// C17 a failed write-back puts back the frame another fault waits for: one frame holds A0
/// (written); A's store fails its next write-back (EIO) once. A thread faults B0 while the main
/// thread faults C0: whichever reclaims A0 first has its write-back fail, so the frame goes back
/// to the queue (dirty) and that fault, with every frame tried, reports the error; the other
/// fault, if it waited for the pool meanwhile (no wait bound), must be woken by that revert, and
/// it reclaims A0 again, this time writing it back. Exactly one fault fails (EIO); the other
/// reads its page; A0's write reaches the store and is read back; sync reports the failure once.
pub fn c17_failed_writeback_reverts_for_a_waiting_fault() {
    let pages = pool(1);
    let (sa, sb, sc) = (Store::new(1, A), Store::new(1, B), Store::new(1, C));
    let (a, b, c) = (
        open(&pages, &sa, 1),
        open(&pages, &sb, 1),
        open(&pages, &sc, 1),
    );
    write(&a, 0, 7).unwrap();
    sa.fail_next_flush.store(5, SeqCst);
    let t = thread::spawn(move || read(&b, 0).map(|r| r.0));
    let rc = read(&c, 0).map(|r| r.0);
    let rb = t.join().unwrap();
    let (ok, failed) = match (rb, rc) {
        (Ok(vb), Err(e)) => ((vb, initial(B, 0)), e),
        (Err(e), Ok(vc)) => ((vc, initial(C, 0)), e),
        other => panic!("C17: exactly one fault must fail its write-back, got {other:?}"),
    };
    assert_eq!(ok.0, ok.1, "C17: the other fault read the wrong page");
    match failed {
        Error::WriteBack {
            page: 0, source, ..
        } => assert_eq!(source.raw_os_error(), Some(5)),
        other => panic!("C17: the failing fault returned {other:?}"),
    }
    assert_eq!(sa.get(0), 7, "C17: A0's write did not reach the store");
    assert_eq!(sa.flushes.load(SeqCst), 1, "C17: A0 written back once");
    assert!(
        a.sync().is_err(),
        "C17: sync must report the failed write-back"
    );
    a.sync().expect("C17: reported once");
    assert_eq!(read(&a, 0).unwrap().0, 7);
    assert_settled(&pages, "C17");
}

/// C18 a copy racing faults that bring pages in between its marking and its freeze: X (a file,
/// two pages, neither resident) is copied by the main thread while a thread reads X0 and then
/// writes 9 into X1, each fault filling its page. A page filled after the copy marked X's
/// resident pages reaches the freeze unmarked: the freeze marks it itself if nobody writes it,
/// and starts the copy again if it is being written or dirty (a file's dirty page is written
/// back first), so no writer is left on a frozen frame and no copy loops. The snapshot holds
/// X0's value and X1's old value or 9, whole; X holds both; a later write to X does not reach the
/// snapshot; every frame is free once both are gone.
pub fn c18_copy_vs_faults_between_mark_and_freeze() {
    let pages = pool(3);
    let s = Store::new(2, A);
    let x = open(&pages, &s, 2);
    let t = {
        let x = x.clone();
        thread::spawn(move || {
            let v0 = read(&x, 0).unwrap().0;
            write(&x, 1, 9).unwrap();
            v0
        })
    };
    let y = x.copy().unwrap();
    assert_eq!(t.join().unwrap(), initial(A, 0), "C18: the reader");
    let y1 = read(&y, 1).unwrap().0;
    assert!(
        y1 == initial(A, 1) || y1 == 9,
        "C18: the snapshot holds {y1}"
    );
    assert_eq!(
        read(&y, 0).unwrap().0,
        initial(A, 0),
        "C18: the snapshot's X0"
    );
    assert_eq!(read(&x, 1).unwrap().0, 9, "C18: X lost its write");
    write(&x, 0, 5).unwrap();
    assert_eq!(
        (read(&y, 0).unwrap().0, read(&y, 1).unwrap().0),
        (initial(A, 0), y1),
        "C18: a later write reached the snapshot"
    );
    assert_settled(&pages, "C18");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C18: frames outlived the objects: {c:?}");
    assert_eq!(s.get(1), 9, "C18: X1's write did not reach the file");
}

/// C19 a client's write request racing a plain writer of an absent page: X0 is not resident; a
/// thread writes 5 into it through a plain write guard while a client of X requests X0 for
/// writing and writes 7 through its grant. The request finds no frame and faults the page in
/// itself, or meets the writer's guard and waits on the entry (blocked only by the core: not in
/// a loop, which loom reports), or finds the page the writer left dirty and turns its fault's pin
/// into the grant. The two writes are ordered: the grant sees X0's old value or 5, and X0 ends
/// 5 or 7 to match; arbitration is idle after; the write reaches the store on sync.
pub fn c19_write_request_vs_plain_writer() {
    let pages = pool(1);
    let s = Store::new(1, A);
    let x = open(&pages, &s, 1);
    let t = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 5).unwrap())
    };
    let c = x.register().unwrap();
    let seen = {
        let mut g = c.request(0, Access::Write).unwrap();
        let seen = value(&g);
        put(&mut g, 7);
        seen
    };
    t.join().unwrap();
    let last = match seen {
        v if v == initial(A, 0) => 5,
        5 => 7,
        v => panic!("C19: the grant saw {v}"),
    };
    assert_eq!(read(&x, 0).unwrap().0, last, "C19: a write was lost");
    assert_arbitration_idle(&x);
    x.sync().unwrap();
    assert_eq!(s.get(0), last, "C19: the store");
    assert_settled(&pages, "C19");
}

/// C20 a break publishes a frame a fault waits for: two frames; X0 (anonymous, 5) is copied to
/// Y, and the main thread holds a read guard on Y0 (a proxy of the frozen layer's frame). A
/// thread writes 6 into X0 (a break: it obtains the second frame, copies, publishes it as X0's
/// private page) while another faults B0 of a third object: whichever gets the second frame
/// first, the other waits for the pool (no wait bound), and nothing it marked unpins while the
/// main thread holds its guard; it must be woken by the frame coming back: the break publishing
/// it (unpinned until the writer pins it), or B0's unpin. Y0's guard reads 5 throughout; X0 reads
/// 6 and Y0 5 after; B0 right; census; every frame and swap slot freed once all go.
pub fn c20_break_publishes_for_a_waiting_fault() {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 5).unwrap();
    let y = x.copy().unwrap();
    let g = y.read(0).unwrap();
    let sb = Store::new(1, B);
    let b = open(&pages, &sb, 1);
    let w = {
        let x = x.clone();
        thread::spawn(move || write(&x, 0, 6).unwrap())
    };
    let f = thread::spawn(move || read(&b, 0).unwrap().0);
    w.join().unwrap();
    assert_eq!(
        f.join().unwrap(),
        initial(B, 0),
        "C20: the other object's fault"
    );
    assert_eq!(
        u64::from_le_bytes(g[..8].try_into().unwrap()),
        5,
        "C20: Y0's guard"
    );
    drop(g);
    assert_eq!(read(&x, 0).unwrap().0, 6, "C20: X0 lost its write");
    assert_eq!(read(&y, 0).unwrap().0, 5, "C20: the snapshot");
    assert_settled(&pages, "C20");
    drop((x, y));
    let c = assert_conserved(&pages);
    assert_eq!(c.resident + c.free, 2, "C20: {c:?}");
    assert_eq!(swap.in_use(), 0, "C20: swap slots outlived the objects");
}

/// The start of C21 and C22: in a pool of two frames, X0 (anonymous, 1) is copied to Y, Y0
/// written (2, a break), and X dropped, so Y is the only reader of the frozen layer holding 1.
/// Returns the pool, Y and their swap area.
fn sole_reader_of_a_layer() -> (Pages, PageMapper, ShareArc<SwapArea>) {
    let pages = pool(2);
    let (x, swap) = anonymous(&pages, 1, 8);
    write(&x, 0, 1).unwrap();
    let y = x.copy().unwrap();
    write(&y, 0, 2).unwrap();
    drop(x);
    (pages, y, swap)
}

/// C21 a compaction racing a copy of the same object: X0 (anonymous, 1) is copied to Y, Y0
/// written (2, a break), X dropped, and both frames paged out (two faults of a third object), so
/// Y is the only reader of the frozen layer L, which holds 1 in a swap slot, and Y's own 2 is in
/// Y's slot. A thread compacts Y (collapsing L into Y) while the main thread copies Y to Z (Y's
/// slot moves to a new layer T over L). Whatever the interleaving: Y and Z read 2, never L's 1
/// (a collapse that read Y's backing before the copy and collapsed L into Y after it gave Y L's
/// slot, and dropped T from Y's chain); Y's chain is one layer deep after a compaction (T, read
/// by Y and Z: L collapses into T, or into Y before the copy); census; every frame and swap slot
/// freed once all go.
pub fn c21_compaction_vs_copy() {
    let (pages, y, swap) = sole_reader_of_a_layer();
    let (b, _) = anonymous(&pages, 2, 8);
    write(&b, 0, 3).unwrap();
    write(&b, 1, 4).unwrap();
    drop(b);
    let t = {
        let y = y.clone();
        thread::spawn(move || {
            y.compact();
        })
    };
    let z = y.copy().unwrap();
    t.join().unwrap();
    assert_eq!(
        read(&y, 0).unwrap().0,
        2,
        "C21: Y read its old layer's page"
    );
    assert_eq!(read(&z, 0).unwrap().0, 2, "C21: the copy's snapshot");
    assert_eq!(y.compact(), 1, "C21: Y's chain after a compaction");
    assert_eq!(read(&y, 0).unwrap().0, 2, "C21: Y after the compaction");
    assert_settled(&pages, "C21");
    drop((y, z));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C21: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C21: swap slots outlived the objects");
}

/// C22 a compaction racing a page-out of the object's own page: X0 (anonymous, 1) is copied to
/// Y, Y0 written (2, a break), X dropped, and a fault of a third object's B0 pages the frozen
/// layer L's page out, so Y alone reads L (1, in a swap slot) and holds its own 2 in a frame. A
/// thread faults B1, which pages Y0 out (dirty: to a slot of Y's), while the main thread compacts
/// Y: the collapse must see Y0 as Y's own wherever the page-out is (resident, being reclaimed,
/// or in Y's slot) and free L's slot, never give it to Y (reading the owner of a frame being
/// reclaimed races the reclaimer's clearing of it: loom reports that). Y reads 2; L collapsed
/// (depth 0); B1 reads zeros; census; every frame and swap slot freed once all go.
pub fn c22_compaction_vs_page_out() {
    let (pages, y, swap) = sole_reader_of_a_layer();
    let (b, b_swap) = anonymous(&pages, 2, 8);
    assert_eq!(read(&b, 0).unwrap().0, 0);
    let t = {
        let b = b.clone();
        thread::spawn(move || read(&b, 1).unwrap().0)
    };
    let depth = y.compact();
    assert_eq!(t.join().unwrap(), 0, "C22: B1");
    assert_eq!(depth, 0, "C22: the layer did not collapse");
    assert_eq!(
        read(&y, 0).unwrap().0,
        2,
        "C22: Y read its old layer's page"
    );
    assert_settled(&pages, "C22");
    drop((y, b));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 2, "C22: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C22: swap slots outlived the objects");
    assert_eq!(b_swap.in_use(), 0, "C22: B's swap slots outlived it");
}

/// C8 a collapse racing faults through the chain: a (pages 0 and 1 written) is copied to b, b
/// to c, so c reads through L2 (shared with b) and L1 (under L2); then a goes, leaving L1 read by
/// L2 alone. Two threads fault page 0 of c and page 1 of b: each walk may collapse L1 into L2
/// (pages move up, no byte copied) while the other is between two layers of the same walk. Both
/// read the original values (a walk that found nothing in two layers while a page moved between
/// them re-walks: each layer's moves count), the chain is shorter after, census adds up, and
/// every frame and swap slot is freed once all are gone.
pub fn c8_collapse_vs_fault() {
    let pages = pool(3);
    let (a, swap) = anonymous(&pages, 2, 8);
    write(&a, 0, 10).unwrap();
    write(&a, 1, 11).unwrap();
    let b = a.copy().unwrap();
    let c = b.copy().unwrap();
    drop(a);
    let t = {
        let c = c.clone();
        thread::spawn(move || read(&c, 0).unwrap().0)
    };
    let vb = read(&b, 1).unwrap().0;
    let vc = t.join().unwrap();
    assert_eq!((vb, vc), (11, 10), "C8: a fault missed a page moving up");
    assert_eq!(read(&b, 0).unwrap().0, 10);
    assert_eq!(read(&c, 1).unwrap().0, 11);
    assert_eq!(c.copy_stats().depth, 1, "C8: L1 was not collapsed into L2");
    assert_conserved(&pages);
    drop((b, c));
    let c = assert_conserved(&pages);
    assert_eq!(c.free, 3, "C8: frames outlived the objects: {c:?}");
    assert_eq!(swap.in_use(), 0, "C8: swap slots outlived the objects");
}

/// C9 the SIEVE hand vs hits and unlinks: a pool of two frames under SIEVE holds A0 (older) and
/// B0. A thread hits A0 twice (each pin's CAS sets its REFERENCED bit) while the main thread faults
/// A1, so the hand clears A0's bit and passes it, or evicts it, or evicts B0; then closes B,
/// unlinking B0 wherever the hand points. Every read sees its page's value; the census holds
/// (the queue links exactly the resident frames), and later faults under the hand still find
/// victims (no frame is lost to a stale hand).
pub fn c9_sieve_hand_vs_hits() {
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(2)
        .wait_bound(None)
        .policy(pagecore::Policy::Sieve)
        .build()
        .expect("valid pool");
    let (sa, sb) = (Store::new(3, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 3), open(&pages, &sb, 1));
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    assert_eq!(read(&b, 0).unwrap().0, initial(B, 0));
    let t = {
        let a = a.clone();
        thread::spawn(move || (read(&a, 0).unwrap().0, read(&a, 0).unwrap().0))
    };
    assert_eq!(read(&a, 1).unwrap().0, initial(A, 1));
    b.close().unwrap();
    assert_eq!(t.join().unwrap(), (initial(A, 0), initial(A, 0)));
    assert_conserved(&pages);
    // The hand keeps finding victims among what is left.
    assert_eq!(read(&a, 2).unwrap().0, initial(A, 2));
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    assert_settled(&pages, "C9");
}
