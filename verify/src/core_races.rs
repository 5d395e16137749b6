//! Core races: reclaim, reserve, fill, queue and write-back (S1-S7), close, sync, fill and
//! write-back errors, wake-ups (C1-C5, C9, C11, C16, C17).

use super::*;

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

/// C9 the SIEVE hand vs hits and unlinks: a pool of two frames under SIEVE holds A0 (older) and
/// B0. A thread hits A0 twice (each pin's CAS raises its `FREQ` count) while the main thread faults
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

/// C50 S3-FIFO's promotion and eviction vs hits on the same page: a pool of three frames under
/// S3-FIFO (a small FIFO of one frame, a main FIFO of two, a ghost of two ids; one hit moves a
/// page to main). A0 is in the small FIFO, B0 and B1 in main (the pool filled up before its first
/// eviction). A thread hits A0 twice (each pin's CAS raises its `FREQ` count) while the main
/// thread faults A1 and then A2. The first pick finds A0 at the small FIFO's head: hit, it moves
/// to main with its count cleared (a hit landing between the pick's read and its clear is
/// counted or cleared, never a lost pin); not hit and unpinned, it is evicted and remembered in
/// the ghost; pinned, it rotates. The second pick may find A0 in main and lower its count by one,
/// racing the reader's second hit. Whatever the interleaving: every read sees its page's value;
/// the census holds (both segments link exactly the resident frames); A0 faulted again (through
/// the ghost, into main) reads right; nothing pinned after.
pub fn c50_s3fifo_promotion_vs_hits() {
    let policy = pagecore::Policy::S3Fifo(pagecore::S3Fifo::new(10, 90, 1).expect("in range"));
    let pages = Pages::builder()
        .page_size(PAGE)
        .frames(3)
        .wait_bound(None)
        .policy(policy)
        .build()
        .expect("valid pool");
    let (sa, sb) = (Store::new(3, A), Store::new(2, B));
    let (a, b) = (open(&pages, &sa, 3), open(&pages, &sb, 2));
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0));
    assert_eq!(read(&b, 0).unwrap().0, initial(B, 0));
    assert_eq!(read(&b, 1).unwrap().0, initial(B, 1));
    let t = {
        let a = a.clone();
        thread::spawn(move || (read(&a, 0).unwrap().0, read(&a, 0).unwrap().0))
    };
    assert_eq!(read(&a, 1).unwrap().0, initial(A, 1), "C50: A1");
    assert_eq!(read(&a, 2).unwrap().0, initial(A, 2), "C50: A2");
    assert_eq!(
        t.join().unwrap(),
        (initial(A, 0), initial(A, 0)),
        "C50: A0's hits"
    );
    assert_conserved(&pages);
    assert_eq!(read(&a, 0).unwrap().0, initial(A, 0), "C50: A0 again");
    assert_eq!(read(&b, 0).unwrap().0, initial(B, 0), "C50: B0 again");
    assert_settled(&pages, "C50");
}

/// C48 a fault that waits for the pool after the page in its way was unpinned and pinned again:
/// one frame holds A0, read-pinned by the main thread's guard. A thread faults B0: its first
/// pick (`try_obtain`, without waiting) finds A0 pinned, and it then parks for the pool
/// (no wait bound), marking A0 (`WAIT_POOL`) in the pick it makes under the parker's lock. The
/// main thread meanwhile drops its guard, pins A0 again with a second guard and drops that one
/// too. Whichever of the two unpins falls after the fault's last pick must find A0 marked and
/// wake it: a mark left by the first pick only is consumed by the first unpin, which may come
/// before the fault parks (frames/reclaim.rs, `take_or_mark`: the mark must be made by the pick
/// that parks, not by one that does not wait; the cargo-mutants survivor at :36). The fault
/// reads B0; the second guard reads A0 (a hit, or a fault again if B0's took the frame in
/// between); census; nothing pinned and nobody waiting.
pub fn c48_pool_wait_after_the_page_is_pinned_again() {
    let pages = pool(1);
    let (sa, sb) = (Store::new(1, A), Store::new(1, B));
    let (a, b) = (open(&pages, &sa, 1), open(&pages, &sb, 1));
    let g1 = a.read(0).unwrap();
    let t = {
        let b = b.clone();
        thread::spawn(move || read(&b, 0).unwrap().0)
    };
    drop(g1);
    let va = read(&a, 0).unwrap().0;
    assert_eq!(va, initial(A, 0), "C48: A0");
    assert_eq!(t.join().unwrap(), initial(B, 0), "C48: B0");
    assert_settled(&pages, "C48");
}
